package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// nativeApp registers a public client with the given metadata on top of
// the code flow defaults.
func nativeApp(h *harness, md map[string]any) spa {
	full := map[string]any{"client_name": "Desktop app", "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code"}, "scope": "openid"}
	for k, v := range md {
		full[k] = v
	}
	c := h.client(full)
	return spa{testClient: c, conf: oauth2.Config{ClientID: c.id, Scopes: []string{"openid"},
		Endpoint: oauth2.Endpoint{AuthURL: h.public.URL + "/oauth2/authorize", TokenURL: h.public.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}}
}

// RFC 8252 §8.6: a program on the user's machine can use a public native
// app's client_id and any loopback port. Remembered consent and a live
// login session must not hand it a code without the user seeing a page:
// prompt=none answers interaction_required, and without it the consent
// page shows, trusted client or not. Browser apps keep silent
// re-authentication.
func TestNativeAppNeedsInteraction(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("tia", "tia-password-1")
		cases := []struct {
			name     string
			md       map[string]any
			redirect string // what the app asks for
			native   bool
		}{
			{"loopback, untrusted", map[string]any{"redirect_uris": []string{"http://127.0.0.1/cb"}}, "http://127.0.0.1:53123/cb", true},
			{"loopback, trusted", map[string]any{"redirect_uris": []string{"http://127.0.0.1/cb"}, "trusted": true}, "http://127.0.0.1:53124/cb", true},
			{"private-use scheme", map[string]any{"redirect_uris": []string{"com.example.app:/cb"}}, "com.example.app:/cb", true},
			{"claimed https, registered native", map[string]any{"redirect_uris": []string{"https://app.example/native"}, "application_type": "native"}, "https://app.example/native", true},
			{"browser app", map[string]any{"redirect_uris": []string{"https://app.example/cb"}}, "https://app.example/cb", false},
			{"browser app on loopback, registered web", map[string]any{"redirect_uris": []string{"http://127.0.0.1:5173/cb"}, "application_type": "web"}, "http://127.0.0.1:5173/cb", false},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				app := nativeApp(h, tc.md)
				app.conf.RedirectURL = tc.redirect
				br := h.browser(tc.redirect)
				// Consent given once, through the pages.
				verifier := oauth2.GenerateVerifier()
				code := issueCode(t, br, app.conf, verifier, "tia", "tia-password-1")
				if resp, m := redeem(h, app.testClient, code, tc.redirect, verifier); resp.StatusCode != http.StatusOK {
					t.Fatalf("first code: %d %v", resp.StatusCode, m)
				}

				// Then another program opens the same browser, signed in
				// and with consent remembered.
				resp, page := br.get(app.conf.AuthCodeURL("state-silent", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none")))
				if !tc.native {
					if q := callback(t, resp, tc.redirect); q.Get("code") == "" {
						t.Fatalf("a browser app lost silent re-authentication: %v", q)
					}
					return
				}
				if q := callback(t, resp, tc.redirect); q.Get("error") != "interaction_required" || q.Get("code") != "" {
					t.Fatalf("prompt=none: %v, want interaction_required", q)
				}
				resp, page = br.get(app.conf.AuthCodeURL("state-silent", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
				if !isConsentPage(resp, page) {
					t.Fatalf("want the consent page, got %d Location=%q", resp.StatusCode, resp.Header.Get("Location"))
				}
				// A proof the program makes up does not pass for the page.
				for _, forged := range []string{"consent.9999999999.AAAA", "login.9999999999.AAAA", "consent", "x.y.z"} {
					u := app.conf.AuthCodeURL("state-silent", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("interaction", forged))
					if resp, page := br.get(u); !isConsentPage(resp, page) {
						t.Fatalf("forged interaction %q: %d Location=%q", forged, resp.StatusCode, resp.Header.Get("Location"))
					}
				}
				// Allowing on the page issues the code.
				verifier = oauth2.GenerateVerifier()
				resp, page = br.get(app.conf.AuthCodeURL("state-silent", oauth2.S256ChallengeOption(verifier)))
				resp, _ = br.consent(page, "allow")
				code = callback(t, resp, tc.redirect).Get("code")
				if resp, m := redeem(h, app.testClient, code, tc.redirect, verifier); resp.StatusCode != http.StatusOK {
					t.Fatalf("code after the page: %d %v", resp.StatusCode, m)
				}
			})
		}
	})
}

// The proof the consent page adds covers the whole request: moved onto
// another request (another port, challenge or state) it proves nothing.
func TestNativeInteractionProofIsBound(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("uma", "uma-password-1")
		app := nativeApp(h, map[string]any{"redirect_uris": []string{"http://127.0.0.1/cb"}})
		app.conf.RedirectURL = "http://127.0.0.1:53123/cb"
		br := h.browser("http://127.0.0.1:53123/")
		signIn(t, br, "uma", "uma-password-1")
		resp, page := br.get(app.conf.AuthCodeURL("state-bound", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if !isConsentPage(resp, page) {
			t.Fatalf("want the consent page, got %d", resp.StatusCode)
		}
		// The same browser, stopping at the first redirect.
		stop := &browser{t: t, h: h, client: &http.Client{Jar: br.client.Jar,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
		resp, _ = stop.consent(page, "allow")
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || !strings.HasPrefix(loc.Path, "/oauth2/authorize") || loc.Query().Get("interaction") == "" {
			t.Fatalf("consent did not lead back with a proof: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		proof := loc.Query().Get("interaction")
		for name, change := range map[string]func(url.Values){
			"another port": func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:6666/cb") },
			"another challenge": func(q url.Values) {
				q.Set("code_challenge", oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()))
			},
			"another state": func(q url.Values) { q.Set("state", "state-other") },
		} {
			t.Run(name, func(t *testing.T) {
				q := loc.Query()
				change(q)
				q.Set("interaction", proof)
				resp, page := br.get(h.public.URL + "/oauth2/authorize?" + q.Encode())
				if !isConsentPage(resp, page) {
					t.Fatalf("a moved proof passed: %d Location=%q", resp.StatusCode, resp.Header.Get("Location"))
				}
			})
		}
		// In another browser (another login session) it proves nothing either.
		other := h.browser("http://127.0.0.1:53123/")
		signIn(t, other, "uma", "uma-password-1")
		if resp, page := other.get(h.public.URL + loc.String()); !isConsentPage(resp, page) {
			t.Fatalf("the proof passed in another session: %d Location=%q", resp.StatusCode, resp.Header.Get("Location"))
		}
		// Where it was made, it works.
		if resp, _ := br.get(h.public.URL + loc.String()); callback(t, resp, "http://127.0.0.1:53123/cb").Get("code") == "" {
			t.Fatal("no code with the proof")
		}
	})
}
