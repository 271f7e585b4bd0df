package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// RFC 9700 §2.1: with PKCE, state is not what stops CSRF, and libraries such
// as openid-client and Auth.js send none; fosite refused them, and refused
// any state under 8 characters, which no specification asks. Without PKCE
// the state is the only defence and stays required.
func TestStateRules(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("stella", "stella-password-1")
		app := h.spa("https://app.example/cb", true, "openid")

		for name, state := range map[string]string{"no state with PKCE": "", "a short state": "x1"} {
			t.Run(name, func(t *testing.T) {
				br := h.browser(app.conf.RedirectURL)
				verifier := oauth2.GenerateVerifier()
				u := app.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))
				if state == "" {
					u = strings.Replace(u, "&state=", "&", 1) // x/oauth2 writes an empty state
				}
				resp, page := br.get(u)
				if resp.StatusCode == http.StatusOK && strings.Contains(page, `name="password"`) {
					resp, _ = br.login(page, "stella", "stella-password-1")
				}
				q := callback(t, resp, app.conf.RedirectURL)
				if q.Get("code") == "" || q.Get("state") != state || (state == "" && q.Has("state")) {
					t.Fatalf("callback %v, want a code and state %q (none when none was sent)", q, state)
				}
				tok, err := app.conf.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
				if err != nil || tok.AccessToken == "" {
					t.Fatalf("exchange: %v", err)
				}
			})
		}

		t.Run("no state without PKCE", func(t *testing.T) {
			web := confidentialApp(h, "https://web.example/cb")
			br := h.browser("https://web.example/cb")
			resp, _ := br.get(h.public.URL + "/oauth2/authorize?" + url.Values{
				"response_type": {"code"}, "client_id": {web.id}, "redirect_uri": {"https://web.example/cb"}, "scope": {"openid"},
			}.Encode())
			q := callback(t, resp, "https://web.example/cb")
			if q.Get("error") != "invalid_state" || q.Get("code") != "" {
				t.Fatalf("callback %v, want error=invalid_state", q)
			}
		})
	})
}
