package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"github.com/ory/fosite"
	"golang.org/x/oauth2"
)

// A failed redemption changes nothing (RFC 7636 §4.6): whoever holds a
// public client's code and tries wrong verifiers cannot break the real
// app's redemption, one after the other or all at once.
func TestPKCEFailedRedemptionChangesNothing(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("pia", "pia-password-1")
		app := h.spa("https://app.example/cb", true, "openid")
		br := h.browser(app.conf.RedirectURL)

		t.Run("in turn", func(t *testing.T) {
			verifier := oauth2.GenerateVerifier()
			code := issueCode(t, br, app.conf, verifier, "pia", "pia-password-1")
			for _, wrong := range []string{oauth2.GenerateVerifier(), "", "short"} {
				resp, m := redeem(h, app.testClient, code, app.conf.RedirectURL, wrong)
				wantInvalidGrant(t, resp, m)
			}
			if resp, m := redeem(h, app.testClient, code, app.conf.RedirectURL, verifier); resp.StatusCode != http.StatusOK {
				t.Fatalf("the real app's redemption after failed attempts: %d %v", resp.StatusCode, m)
			}
		})

		t.Run("in parallel", func(t *testing.T) {
			verifier := oauth2.GenerateVerifier()
			code := issueCode(t, br, app.conf, verifier, "pia", "pia-password-1")
			const attackers = 8
			statuses := make([]int, attackers+1)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range attackers + 1 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					v := oauth2.GenerateVerifier()
					if i == attackers {
						v = verifier
					}
					<-start
					statuses[i] = postCode(h, app.id, code, app.conf.RedirectURL, v)
				}()
			}
			close(start)
			wg.Wait()
			for i, s := range statuses[:attackers] {
				if s != http.StatusBadRequest {
					t.Errorf("attacker %d: %d, want 400", i, s)
				}
			}
			if statuses[attackers] != http.StatusOK {
				t.Errorf("the real app racing the attackers: %d, want 200", statuses[attackers])
			}
		})
	})
}

// postCode redeems a public client's code without the harness's t.Fatal,
// so that goroutines may call it; it returns the status (0 on a transport
// error).
func postCode(h *harness, clientID, code, redirectURI, verifier string) int {
	v := url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {code},
		"redirect_uri": {redirectURI}, "code_verifier": {verifier}}
	resp, err := http.Post(h.public.URL+"/oauth2/token", "application/x-www-form-urlencoded", strings.NewReader(v.Encode()))
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode
}

// The code's own stored request carries its code_challenge: even with the
// PKCE row gone (a bug, an operator's cleanup), a code issued with a
// challenge never redeems without its verifier.
func TestPKCEMissingRowIsNotADowngrade(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("quin", "quin-password-1")
		web := confidentialApp(h, "https://web.example/cb")
		conf := oauth2.Config{ClientID: web.id, RedirectURL: "https://web.example/cb", Scopes: []string{"openid"},
			Endpoint: oauth2.Endpoint{AuthURL: h.public.URL + "/oauth2/authorize"}}
		br := h.browser(conf.RedirectURL)

		verifier := oauth2.GenerateVerifier()
		code := issueCode(t, br, conf, verifier, "quin", "quin-password-1")
		// fosite's HMAC codes are KEY.SIGNATURE; rows are keyed by the signature.
		sig := code[strings.IndexByte(code, '.')+1:]
		if _, err := h.store.GetPKCERequestSession(context.Background(), sig, nil); err != nil {
			t.Fatalf("no PKCE row under the code's signature to delete: %v", err)
		}
		if err := h.store.DeletePKCERequestSession(context.Background(), sig); err != nil {
			t.Fatal(err)
		}
		if _, err := h.store.GetPKCERequestSession(context.Background(), sig, nil); !errors.Is(err, fosite.ErrNotFound) {
			t.Fatalf("the PKCE row is still there: %v", err)
		}
		resp, m := redeem(h, web, code, conf.RedirectURL, "")
		wantInvalidGrant(t, resp, m)
		resp, m = redeem(h, web, code, conf.RedirectURL, oauth2.GenerateVerifier())
		wantInvalidGrant(t, resp, m)
		if resp, m := redeem(h, web, code, conf.RedirectURL, verifier); resp.StatusCode != http.StatusOK {
			t.Fatalf("redemption with the verifier: %d %v", resp.StatusCode, m)
		}
	})
}

// LATCHKEY_PKCE_REQUIRED=all (OAuth 2.1 §4.1.1): a confidential client
// without a code_challenge is refused before any page, by redirect; with
// the default, it may skip PKCE.
func TestPKCERequiredForAll(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		for _, tc := range []struct {
			name     string
			setting  string
			refusing bool
		}{
			{"public (default)", config.PKCEPublic, false},
			{"all", config.PKCEAll, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := newHarness(t, b, func(c *config.Config) { c.PKCERequired = tc.setting })
				h.user("rex", "rex-password-1")
				web := confidentialApp(h, "https://web.example/cb")
				conf := oauth2.Config{ClientID: web.id, RedirectURL: "https://web.example/cb", Scopes: []string{"openid"},
					Endpoint: oauth2.Endpoint{AuthURL: h.public.URL + "/oauth2/authorize"}}
				br := h.browser(conf.RedirectURL)
				resp, page := br.get(conf.AuthCodeURL("state-pkce-all"))
				if !tc.refusing {
					if resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="password"`) {
						t.Fatalf("want the login page, got %d", resp.StatusCode)
					}
					return
				}
				q := callback(t, resp, conf.RedirectURL)
				if q.Get("error") != "invalid_request" || q.Get("state") != "state-pkce-all" {
					t.Fatalf("want invalid_request with state, got %v", q)
				}
				// With a challenge the flow works, and the verifier is required.
				verifier := oauth2.GenerateVerifier()
				code := issueCode(t, br, conf, verifier, "rex", "rex-password-1")
				resp, m := redeem(h, web, code, conf.RedirectURL, "")
				wantInvalidGrant(t, resp, m)
				if resp, m := redeem(h, web, code, conf.RedirectURL, verifier); resp.StatusCode != http.StatusOK {
					t.Fatalf("redemption with the verifier: %d %v", resp.StatusCode, m)
				}
			})
		}
	})
}
