package server_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// browser is a cookie-keeping HTTP client that stops at the client's
// redirect URI, as a browser handing the code to an app would.
type browser struct {
	t      testing.TB
	client *http.Client
	h      *harness
}

func (h *harness) browser(stopAt string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: h.t, h: h, client: &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), h.public.URL) || strings.HasPrefix(req.URL.String(), stopAt) {
			return http.ErrUseLastResponse
		}
		return nil
	}}}
}

var csrfRe = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
var returnToRe = regexp.MustCompile(`name="return_to" value="([^"]*)"`)

// get follows redirects within Latchkey and returns the last response.
func (b *browser) get(u string) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.client.Get(u)
	if err != nil {
		b.t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.client.PostForm(b.h.public.URL+path, form)
	if err != nil {
		b.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func field(t testing.TB, re *regexp.Regexp, page string) string {
	t.Helper()
	m := re.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no %s in page:\n%s", re, page)
	}
	return html.UnescapeString(m[1])
}

// login submits the login form shown in page.
func (b *browser) login(page, username, password string) (*http.Response, string) {
	return b.post("/login", url.Values{
		"csrf_token": {field(b.t, csrfRe, page)}, "return_to": {field(b.t, returnToRe, page)},
		"username": {username}, "password": {password},
	})
}

func (b *browser) consent(page, answer string) (*http.Response, string) {
	return b.post("/consent", url.Values{
		"csrf_token": {field(b.t, csrfRe, page)}, "return_to": {field(b.t, returnToRe, page)}, "consent": {answer},
	})
}

// callback checks a response is the redirect to the client and returns
// its query.
func callback(t *testing.T, resp *http.Response, redirectURI string) url.Values {
	t.Helper()
	loc := resp.Header.Get("Location")
	if resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, redirectURI) {
		t.Fatalf("want a redirect to %s, got %d %q", redirectURI, resp.StatusCode, loc)
	}
	u, _ := url.Parse(loc)
	return u.Query()
}

type spa struct {
	testClient
	conf oauth2.Config
}

func (h *harness) spa(redirect string, trusted bool, scope string) spa {
	c := h.client(map[string]any{
		"client_name": "Test SPA", "token_endpoint_auth_method": "none", "trusted": trusted,
		"grant_types": []string{"authorization_code", "refresh_token"}, "redirect_uris": []string{redirect}, "scope": scope,
	})
	return spa{testClient: c, conf: oauth2.Config{
		ClientID: c.id, RedirectURL: redirect, Scopes: strings.Fields(scope),
		Endpoint: oauth2.Endpoint{AuthURL: h.public.URL + "/oauth2/authorize", TokenURL: h.public.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams},
	}}
}

func TestAuthorizationCodeFlow(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		userID := h.user("dana", "dana-password-1")
		app := h.spa("https://app.example/cb", false, "openid profile offline_access")
		rs := h.serviceClient("introspect")
		br := h.browser(app.conf.RedirectURL)

		verifier := oauth2.GenerateVerifier()
		authURL := app.conf.AuthCodeURL("state-123456", oauth2.S256ChallengeOption(verifier))

		resp, page := br.get(authURL)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="password"`) || !strings.Contains(page, "Test SPA") {
			t.Fatalf("login page: %d\n%s", resp.StatusCode, page)
		}
		for k, want := range map[string]string{"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src") {
			t.Errorf("CSP = %q", csp)
		}

		resp, page = br.login(page, "dana", "dana-password-1")
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, `value="allow"`) || !strings.Contains(page, "offline_access") {
			t.Fatalf("consent page: %d\n%s", resp.StatusCode, page)
		}
		resp, _ = br.consent(page, "allow")
		q := callback(t, resp, app.conf.RedirectURL)
		if q.Get("state") != "state-123456" || q.Get("iss") != h.cfg.Issuer || q.Get("code") == "" {
			t.Fatalf("authorization response %v", q)
		}

		tok, err := app.conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		if tok.RefreshToken == "" {
			t.Fatal("no refresh token with offline_access")
		}
		in := h.introspect(rs, tok.AccessToken)
		if in["active"] != true || in["sub"] != userID || in["username"] != "dana" || in["client_id"] != app.id {
			t.Fatalf("introspection %v", in)
		}

		// Single sign-on and remembered consent: straight back with a code.
		verifier2 := oauth2.GenerateVerifier()
		resp, _ = br.get(app.conf.AuthCodeURL("state-abcdefg", oauth2.S256ChallengeOption(verifier2)))
		q = callback(t, resp, app.conf.RedirectURL)
		if _, err := app.conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier2)); err != nil {
			t.Fatal(err)
		}

		// Silent re-authentication after a reload (prompt=none).
		verifier3 := oauth2.GenerateVerifier()
		resp, _ = br.get(app.conf.AuthCodeURL("state-silent1", oauth2.S256ChallengeOption(verifier3), oauth2.SetAuthURLParam("prompt", "none")))
		if q = callback(t, resp, app.conf.RedirectURL); q.Get("code") == "" {
			t.Fatalf("prompt=none with a session: %v", q)
		}

		// A fresh browser with prompt=none: login_required, no page.
		resp, _ = h.browser(app.conf.RedirectURL).get(app.conf.AuthCodeURL("state-silent2", oauth2.S256ChallengeOption(verifier3), oauth2.SetAuthURLParam("prompt", "none")))
		if q = callback(t, resp, app.conf.RedirectURL); q.Get("error") != "login_required" || q.Get("iss") != h.cfg.Issuer {
			t.Fatalf("prompt=none without a session: %v", q)
		}

		// prompt=login shows the login page despite the session, once.
		resp, page = br.get(app.conf.AuthCodeURL("state-relogin", oauth2.S256ChallengeOption(verifier3), oauth2.SetAuthURLParam("prompt", "login")))
		if !strings.Contains(page, `name="password"`) {
			t.Fatalf("prompt=login did not ask to sign in: %d", resp.StatusCode)
		}
		resp, _ = br.login(page, "dana", "dana-password-1")
		if q = callback(t, resp, app.conf.RedirectURL); q.Get("code") == "" {
			t.Fatalf("after prompt=login: %v", q)
		}

		// Logout ends the session and revokes the grants issued under it.
		resp, page = br.get(h.public.URL + "/logout")
		resp, _ = br.post("/logout", url.Values{"csrf_token": {field(t, csrfRe, page)}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("logout: %d", resp.StatusCode)
		}
		for name, tk := range map[string]string{"access": tok.AccessToken, "refresh": tok.RefreshToken} {
			if in := h.introspect(rs, tk); in["active"] != false {
				t.Errorf("%s token active after logout: %v", name, in)
			}
		}
		resp, _ = br.get(app.conf.AuthCodeURL("state-after-logout", oauth2.S256ChallengeOption(verifier3)))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("after logout the login page should show: %d", resp.StatusCode)
		}
	})
}

func TestTrustedClientSkipsConsent(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("erin", "erin-password-1")
		app := h.spa("com.example.app:/callback", true, "openid")
		br := h.browser(app.conf.RedirectURL)
		verifier := oauth2.GenerateVerifier()
		_, page := br.get(app.conf.AuthCodeURL("state-trusted", oauth2.S256ChallengeOption(verifier)))
		resp, _ := br.login(page, "erin", "erin-password-1")
		q := callback(t, resp, app.conf.RedirectURL)
		if _, err := app.conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestConsentDenied(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("finn", "finn-password-1")
		app := h.spa("https://app.example/cb", false, "openid")
		br := h.browser(app.conf.RedirectURL)
		_, page := br.get(app.conf.AuthCodeURL("state-deny12", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		_, page = br.login(page, "finn", "finn-password-1")
		resp, _ := br.consent(page, "deny")
		if q := callback(t, resp, app.conf.RedirectURL); q.Get("error") != "access_denied" || q.Get("state") != "state-deny12" {
			t.Fatalf("deny: %v", q)
		}
	})
}

// PKCE is really checked at the token endpoint: the code alone, or with
// another verifier, gets nothing.
func TestPKCEVerifierChecked(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("gus", "gus-password-1")
		app := h.spa("https://app.example/cb", true, "openid")
		br := h.browser(app.conf.RedirectURL)
		verifier := oauth2.GenerateVerifier()
		_, page := br.get(app.conf.AuthCodeURL("state-pkce01", oauth2.S256ChallengeOption(verifier)))
		resp, _ := br.login(page, "gus", "gus-password-1")
		code := callback(t, resp, app.conf.RedirectURL).Get("code")
		for name, opts := range map[string][]oauth2.AuthCodeOption{
			"no verifier":    nil,
			"wrong verifier": {oauth2.VerifierOption(oauth2.GenerateVerifier())},
		} {
			if _, err := app.conf.Exchange(context.Background(), code, opts...); err == nil {
				t.Fatalf("%s: the code was exchanged", name)
			}
		}
	})
}
