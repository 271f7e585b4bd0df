package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// Errors a client can be told about go back to its redirect URI, with
// state and iss, before any page is shown.
func TestAuthorizeErrorsRedirect(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		app := h.spa("https://app.example/cb", false, "openid")
		br := h.browser(app.conf.RedirectURL)
		challenge := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
		cases := map[string]struct {
			opts []oauth2.AuthCodeOption
			want string
		}{
			"public client without PKCE": {nil, "invalid_request"},
			"plain PKCE": {[]oauth2.AuthCodeOption{oauth2.SetAuthURLParam("code_challenge", challenge),
				oauth2.SetAuthURLParam("code_challenge_method", "plain")}, "invalid_request"},
			"unknown scope": {[]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
				oauth2.SetAuthURLParam("scope", "admin")}, "invalid_scope"},
			"token response type": {[]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
				oauth2.SetAuthURLParam("response_type", "token")}, "unsupported_response_type"},
			"bad prompt": {[]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
				oauth2.SetAuthURLParam("prompt", "bogus")}, "invalid_request"},
		}
		for name, tc := range cases {
			t.Run(name, func(t *testing.T) {
				resp, _ := br.get(app.conf.AuthCodeURL("state-errors", tc.opts...))
				q := callback(t, resp, app.conf.RedirectURL)
				if q.Get("error") != tc.want || q.Get("state") != "state-errors" || q.Get("iss") != h.cfg.Issuer {
					t.Fatalf("got %v, want error=%s with state and iss", q, tc.want)
				}
			})
		}
	})
}

// An unknown client or an unregistered redirect URI must never redirect:
// that would make Latchkey an open redirector.
func TestAuthorizeNeverRedirectsUntrusted(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		app := h.spa("https://app.example/cb", false, "openid")
		challenge := oauth2.S256ChallengeOption(oauth2.GenerateVerifier())
		bad := func(mut func(*oauth2.Config)) string {
			c := app.conf
			mut(&c)
			return c.AuthCodeURL("state-untrusted", challenge)
		}
		for name, u := range map[string]string{
			"unknown client":      bad(func(c *oauth2.Config) { c.ClientID = "nobody" }),
			"other redirect":      bad(func(c *oauth2.Config) { c.RedirectURL = "https://evil.example/cb" }),
			"other path":          bad(func(c *oauth2.Config) { c.RedirectURL = "https://app.example/cb2" }),
			"extra query":         bad(func(c *oauth2.Config) { c.RedirectURL = "https://app.example/cb?x=1" }),
			"http instead of tls": bad(func(c *oauth2.Config) { c.RedirectURL = "http://app.example/cb" }),
		} {
			t.Run(name, func(t *testing.T) {
				resp, page := h.browser("never").get(u)
				if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(page, "not valid") {
					t.Fatalf("got %d Location=%q", resp.StatusCode, resp.Header.Get("Location"))
				}
			})
		}
	})
}

// RFC 8252 §7.3: a loopback redirect matches on any port; the code arrives
// on the port the app listens on.
func TestLoopbackRedirectAnyPort(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("lou", "lou-password-1")
		app := h.spa("http://127.0.0.1/cb", true, "openid")
		app.conf.RedirectURL = "http://127.0.0.1:53123/cb"
		br := h.browser(app.conf.RedirectURL)
		verifier := oauth2.GenerateVerifier()
		_, page := br.get(app.conf.AuthCodeURL("state-loopback", oauth2.S256ChallengeOption(verifier)))
		resp, _ := br.login(page, "lou", "lou-password-1")
		q := callback(t, resp, "http://127.0.0.1:53123/cb")
		if _, err := app.conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier)); err != nil {
			t.Fatal(err)
		}
	})
}

// A code is single use: the second redemption fails and takes down what the
// first one issued. A code is also bound to its client.
func TestCodeReuseAndBinding(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("ned", "ned-password-1")
		app := h.spa("https://app.example/cb", true, "openid offline_access")
		other := h.spa("https://app.example/cb", true, "openid offline_access")
		rs := h.serviceClient("introspect")
		br := h.browser(app.conf.RedirectURL)
		code := func(v string) string {
			resp, page := br.get(app.conf.AuthCodeURL("state-reuse01", oauth2.S256ChallengeOption(v)))
			if resp.StatusCode == http.StatusOK {
				resp, _ = br.login(page, "ned", "ned-password-1")
			}
			return callback(t, resp, app.conf.RedirectURL).Get("code")
		}

		v1 := oauth2.GenerateVerifier()
		c1 := code(v1)
		tok, err := app.conf.Exchange(context.Background(), c1, oauth2.VerifierOption(v1))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := app.conf.Exchange(context.Background(), c1, oauth2.VerifierOption(v1)); err == nil {
			t.Fatal("a code was redeemed twice")
		}
		for name, tk := range map[string]string{"access": tok.AccessToken, "refresh": tok.RefreshToken} {
			if h.introspect(rs, tk)["active"] != false {
				t.Errorf("%s token of a reused code is still active", name)
			}
		}

		v2 := oauth2.GenerateVerifier()
		c2 := code(v2)
		if _, err := other.conf.Exchange(context.Background(), c2, oauth2.VerifierOption(v2)); err == nil {
			t.Fatal("another client redeemed the code")
		}
	})
}

func TestCSRFRequired(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("olga", "olga-password-1")
		app := h.spa("https://app.example/cb", false, "openid")
		br := h.browser(app.conf.RedirectURL)
		_, page := br.get(app.conf.AuthCodeURL("state-csrf001", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		returnTo := field(t, returnToRe, page)
		for name, token := range map[string]string{"missing": "", "wrong": "AAAA" + field(t, csrfRe, page)[4:]} {
			resp, _ := br.post("/login", url.Values{"csrf_token": {token}, "return_to": {returnTo}, "username": {"olga"}, "password": {"olga-password-1"}})
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("login with %s CSRF token: %d", name, resp.StatusCode)
			}
			for _, c := range resp.Cookies() {
				if strings.Contains(c.Name, "session") && c.Value != "" {
					t.Errorf("login with %s CSRF token set a session", name)
				}
			}
		}
		_, page = br.login(page, "olga", "olga-password-1") // now the consent page
		for _, path := range []string{"/consent", "/logout"} {
			resp, _ := br.post(path, url.Values{"csrf_token": {"forged"}, "return_to": {returnTo}, "consent": {"allow"}})
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s with a forged CSRF token: %d", path, resp.StatusCode)
			}
		}
		if s, _ := h.store.ConsentedScopes(context.Background(), "user-olga", app.id); len(s) != 0 {
			t.Error("a forged consent was stored")
		}
	})
}

// Repeated failures lock the username out, even for the right password,
// and an unknown user gets the same words as a wrong password.
func TestLoginLockout(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("pat", "pat-password-1")
		br := h.browser("never")
		_, page := br.get(h.public.URL + "/login")
		_, unknown := br.login(page, "nobody-here", "whatever-1")
		_, wrong := br.login(page, "pat", "wrong-password")
		if msg := "Invalid username or password."; !strings.Contains(unknown, msg) || !strings.Contains(wrong, msg) {
			t.Fatal("unknown user and wrong password answer differently")
		}
		for range 4 {
			br.login(page, "pat", "wrong-password")
		}
		resp, body := br.login(page, "pat", "pat-password-1")
		if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "Too many") {
			t.Fatalf("after 5 failures the right password got %d", resp.StatusCode)
		}
		// The password grant shares the lock.
		c := passwordClient(h, true)
		r, m := h.form("/oauth2/token", c.id, c.secret, url.Values{"grant_type": {"password"}, "username": {"pat"}, "password": {"pat-password-1"}})
		wantError(t, r, m, http.StatusBadRequest, "invalid_grant")
	})
}

func TestPromptNoneNeedsConsent(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("ray", "ray-password-1")
		app := h.spa("https://app.example/cb", false, "openid")
		br := h.browser(app.conf.RedirectURL)
		_, page := br.get(h.public.URL + "/login")
		br.login(page, "ray", "ray-password-1")
		resp, _ := br.get(app.conf.AuthCodeURL("state-none-01", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none")))
		if q := callback(t, resp, app.conf.RedirectURL); q.Get("error") != "consent_required" {
			t.Fatalf("prompt=none without consent: %v", q)
		}
	})
}

func TestPostLogoutRedirect(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		app := h.client(map[string]any{"token_endpoint_auth_method": "none", "redirect_uris": []string{"https://app.example/cb"},
			"post_logout_redirect_uris": []string{"https://app.example/bye"}})
		br := h.browser("https://app.example/")
		_, page := br.get(h.public.URL + "/logout")
		csrf := field(t, csrfRe, page)
		resp, _ := br.post("/logout", url.Values{"csrf_token": {csrf}, "client_id": {app.id}, "post_logout_redirect_uri": {"https://evil.example/"}})
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Fatalf("unregistered post_logout_redirect_uri: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		resp, _ = br.post("/logout", url.Values{"csrf_token": {csrf}, "client_id": {app.id}, "post_logout_redirect_uri": {"https://app.example/bye"}, "state": {"s1"}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "https://app.example/bye?state=s1" {
			t.Fatalf("registered post_logout_redirect_uri: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
}
