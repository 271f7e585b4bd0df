package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// signIn signs br in on the bare login page, outside any authorization
// request: a remembered login session, as single sign-on leaves it.
func signIn(t *testing.T, br *browser, user, pass string) {
	t.Helper()
	_, page := br.get(br.h.public.URL + "/login")
	if resp, _ := br.login(page, user, pass); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
}

// isConsentPage reports whether the authorization request stopped on the
// consent page.
func isConsentPage(resp *http.Response, page string) bool {
	return resp.StatusCode == http.StatusOK && strings.Contains(page, `value="allow"`)
}

// An untrusted client that asks for no scope still meets the consent page
// (consent_required with prompt=none) until the user has consented to it:
// no stored consent is not consent to nothing.
func TestConsentRequiredWithoutScope(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("sam", "sam-password-1")
		rs := h.serviceClient("introspect")
		web := h.client(map[string]any{
			"client_name": "Untrusted web app", "grant_types": []string{"authorization_code"},
			"redirect_uris": []string{"https://web.example/cb"}, "audience": []string{"https://api.web.example"},
		})
		spa := h.spa("https://app.example/cb", false, "")
		for _, tc := range []struct {
			name   string
			client testClient
			conf   oauth2.Config
		}{
			{"confidential", web, oauth2.Config{ClientID: web.id, RedirectURL: "https://web.example/cb",
				Endpoint: oauth2.Endpoint{AuthURL: h.public.URL + "/oauth2/authorize"}}},
			{"public", spa.testClient, spa.conf},
		} {
			t.Run(tc.name, func(t *testing.T) {
				conf := tc.conf
				conf.Scopes = nil
				br := h.browser(conf.RedirectURL)
				signIn(t, br, "sam", "sam-password-1")
				verifier := oauth2.GenerateVerifier()

				resp, _ := br.get(conf.AuthCodeURL("state-noscope", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "none")))
				if q := callback(t, resp, conf.RedirectURL); q.Get("error") != "consent_required" || q.Get("code") != "" {
					t.Fatalf("prompt=none without consent: %v", q)
				}
				resp, page := br.get(conf.AuthCodeURL("state-noscope", oauth2.S256ChallengeOption(verifier)))
				if !isConsentPage(resp, page) {
					t.Fatalf("no consent page for a request without scope: %d %q", resp.StatusCode, resp.Header.Get("Location"))
				}
				resp, page = br.consent(page, "allow")
				if resp.StatusCode != http.StatusSeeOther {
					t.Fatalf("consent: %d\n%s", resp.StatusCode, page)
				}
				code := callback(t, resp, conf.RedirectURL).Get("code")
				tok := h.token(tc.client, url.Values{"grant_type": {"authorization_code"}, "code": {code},
					"redirect_uri": {conf.RedirectURL}, "code_verifier": {verifier}, "client_id": {tc.client.id}})
				if in := h.introspect(rs, tok["access_token"].(string)); in["active"] != true || in["username"] != "sam" {
					t.Fatalf("token after consent: %v", in)
				}

				// Remembered now: a browser app re-authenticates silently.
				resp, _ = br.get(conf.AuthCodeURL("state-noscope", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "none")))
				if q := callback(t, resp, conf.RedirectURL); q.Get("code") == "" {
					t.Fatalf("prompt=none after consent: %v", q)
				}
			})
		}
	})
}
