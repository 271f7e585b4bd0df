package server_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// These complement authcode_errors_test.go: there the server is shown to
// refuse; here the tests pin down how (the RFC 6749 §5.2 error code, what
// survives the refusal) and cover the variants an attacker would try next.

// issueCode runs the browser through whatever pages the request needs and
// returns the code that reached the redirect URI.
func issueCode(t *testing.T, br *browser, conf oauth2.Config, verifier, user, pass string) string {
	t.Helper()
	resp, page := br.get(conf.AuthCodeURL("state-negative", oauth2.S256ChallengeOption(verifier)))
	if resp.StatusCode == http.StatusOK && strings.Contains(page, `name="password"`) {
		resp, page = br.login(page, user, pass)
	}
	if resp.StatusCode == http.StatusOK && strings.Contains(page, `value="allow"`) {
		resp, _ = br.consent(page, "allow")
	}
	code := callback(t, resp, conf.RedirectURL).Get("code")
	if code == "" {
		t.Fatalf("no code at %s", resp.Header.Get("Location"))
	}
	return code
}

// redeem exchanges a code by hand: x/oauth2 folds the error body into a
// string, and these tests need the error code and headers.
func redeem(h *harness, c testClient, code, redirectURI, verifier string) (*http.Response, map[string]any) {
	h.t.Helper()
	v := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}}
	if verifier != "" {
		v.Set("code_verifier", verifier)
	}
	if c.secret == "" {
		v.Set("client_id", c.id)
		return h.form("/oauth2/token", "", "", v)
	}
	return h.form("/oauth2/token", c.id, c.secret, v)
}

func wantInvalidGrant(t *testing.T, resp *http.Response, m map[string]any) {
	t.Helper()
	wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("error Cache-Control = %q, want no-store", cc)
	}
}

// confidentialApp is a web app with a secret that uses the code flow.
func confidentialApp(h *harness, redirect string) testClient {
	return h.client(map[string]any{
		"client_name": "Web app", "trusted": true, "grant_types": []string{"authorization_code", "refresh_token"},
		"redirect_uris": []string{redirect}, "scope": "openid offline_access",
	})
}

func TestCodeWrongVerifier(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("vera", "vera-password-1")
		app := h.spa("https://app.example/cb", true, "openid")
		br := h.browser(app.conf.RedirectURL)

		for name, verifier := range map[string]string{
			"another verifier": oauth2.GenerateVerifier(),
			"missing":          "",
			"too short":        "short",
			"the challenge":    oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()),
		} {
			t.Run(name, func(t *testing.T) {
				code := issueCode(t, br, app.conf, oauth2.GenerateVerifier(), "vera", "vera-password-1")
				resp, m := redeem(h, app.testClient, code, app.conf.RedirectURL, verifier)
				wantInvalidGrant(t, resp, m)
			})
		}
	})
}

// RFC 7636 §4.6 and RFC 9700 §2.1.1: a code issued with a code_challenge is
// redeemed only with the matching verifier. A confidential client may skip
// PKCE altogether, so a failed attempt must not turn the code into one that
// was issued without a challenge.
func TestCodeFailedVerifierIsNotADowngrade(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("wade", "wade-password-1")
		web := confidentialApp(h, "https://web.example/cb")
		conf := oauth2.Config{ClientID: web.id, RedirectURL: "https://web.example/cb", Scopes: []string{"openid"},
			Endpoint: oauth2.Endpoint{AuthURL: h.public.URL + "/oauth2/authorize"}}
		br := h.browser(conf.RedirectURL)

		code := issueCode(t, br, conf, oauth2.GenerateVerifier(), "wade", "wade-password-1")
		resp, m := redeem(h, web, code, conf.RedirectURL, oauth2.GenerateVerifier())
		wantInvalidGrant(t, resp, m)
		resp, m = redeem(h, web, code, conf.RedirectURL, "")
		wantInvalidGrant(t, resp, m)
	})
}

// Authorization codes are single use; the second redemption must not only
// fail but take down what the first one issued (RFC 6749 §4.1.2), since
// the code may have been stolen and raced.
func TestCodeRedeemedTwice(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("xena", "xena-password-1")
		app := h.spa("https://app.example/cb", true, "openid offline_access")
		rs := h.serviceClient("introspect")
		br := h.browser(app.conf.RedirectURL)

		verifier := oauth2.GenerateVerifier()
		code := issueCode(t, br, app.conf, verifier, "xena", "xena-password-1")
		resp, first := redeem(h, app.testClient, code, app.conf.RedirectURL, verifier)
		if resp.StatusCode != http.StatusOK || first["refresh_token"] == nil {
			t.Fatalf("first redemption: %d %v", resp.StatusCode, first)
		}
		resp, m := redeem(h, app.testClient, code, app.conf.RedirectURL, verifier)
		wantInvalidGrant(t, resp, m)
		for _, kind := range []string{"access_token", "refresh_token"} {
			if in := h.introspect(rs, first[kind].(string)); in["active"] != false {
				t.Errorf("%s of the first redemption still active: %v", kind, in)
			}
		}
		resp, m = h.form("/oauth2/token", "", "", url.Values{"grant_type": {"refresh_token"}, "client_id": {app.id},
			"refresh_token": {first["refresh_token"].(string)}})
		wantInvalidGrant(t, resp, m)
	})
}

// RFC 6749 §4.1.3: the code must have been issued to the client that
// redeems it, whether that client is public or authenticates.
func TestCodeRedeemedByAnotherClient(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("yuri", "yuri-password-1")
		app := h.spa("https://app.example/cb", true, "openid")
		others := map[string]testClient{
			"public":       h.spa("https://app.example/cb", true, "openid").testClient,
			"confidential": confidentialApp(h, "https://app.example/cb"),
		}
		br := h.browser(app.conf.RedirectURL)
		for name, other := range others {
			t.Run(name, func(t *testing.T) {
				verifier := oauth2.GenerateVerifier()
				code := issueCode(t, br, app.conf, verifier, "yuri", "yuri-password-1")
				resp, m := redeem(h, other, code, app.conf.RedirectURL, verifier)
				wantInvalidGrant(t, resp, m)
				// Whether the code survives for its own client is the
				// server's choice; record it rather than assert it.
				resp, _ = redeem(h, app.testClient, code, app.conf.RedirectURL, verifier)
				t.Logf("its own client afterwards: %d", resp.StatusCode)
			})
		}
	})
}

// RFC 6749 §4.1.3: redirect_uri at the token endpoint must be the one of
// the authorization request, character for character; for a loopback
// redirect that includes the port.
func TestCodeRedirectURIMismatch(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("zoe", "zoe-password-1")
		app := h.spa("http://127.0.0.1/cb", true, "openid")
		app.conf.RedirectURL = "http://127.0.0.1:53123/cb"
		br := h.browser(app.conf.RedirectURL)
		for _, other := range []string{"http://127.0.0.1:53124/cb", "http://127.0.0.1/cb", ""} {
			verifier := oauth2.GenerateVerifier()
			code := issueCode(t, br, app.conf, verifier, "zoe", "zoe-password-1")
			resp, m := redeem(h, app.testClient, code, other, verifier)
			if resp.StatusCode != http.StatusBadRequest || m["error"] != "invalid_grant" {
				t.Errorf("redirect_uri %q: %d %v, want invalid_grant", other, resp.StatusCode, m)
			}
		}
	})
}

// The contract refuses the password grant to public clients at
// registration, trusted or not: there is no secret to make it safe.
func TestPublicPasswordClientRefused(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		_, before := h.adminList("/admin/clients")
		for name, md := range map[string]map[string]any{
			"untrusted": {"token_endpoint_auth_method": "none", "grant_types": []string{"password"}},
			"trusted":   {"token_endpoint_auth_method": "none", "grant_types": []string{"password"}, "trusted": true},
			"with code": {"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "password"},
				"redirect_uris": []string{"https://app.example/cb"}, "trusted": true},
		} {
			resp, m := h.adminJSON(http.MethodPost, "/admin/clients", md)
			if resp.StatusCode != http.StatusBadRequest || m["error"] != "invalid_client_metadata" {
				t.Errorf("%s: %d %v, want 400 invalid_client_metadata", name, resp.StatusCode, m)
			}
		}
		if _, after := h.adminList("/admin/clients"); len(after) != len(before) {
			t.Errorf("refused registrations were stored: %d clients, then %d", len(before), len(after))
		}
	})
}

// A loopback or private-use redirect is matched exactly but for the
// loopback port: everything else about it must be registered.
func TestNativeRedirectURIs(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("nate", "nate-password-1")
		native := h.client(map[string]any{
			"client_name": "Native", "token_endpoint_auth_method": "none", "trusted": true, "scope": "openid",
			"grant_types": []string{"authorization_code"}, "redirect_uris": []string{"com.example.app:/callback", "http://127.0.0.1/cb", "http://[::1]/cb"},
		})
		base := oauth2.Config{ClientID: native.id, Scopes: []string{"openid"}, Endpoint: oauth2.Endpoint{AuthURL: h.public.URL + "/oauth2/authorize"}}
		br := h.browser("never")

		for _, ok := range []string{"com.example.app:/callback", "http://127.0.0.1:53123/cb", "http://[::1]:61234/cb", "http://127.0.0.1/cb"} {
			t.Run("accepted "+ok, func(t *testing.T) {
				conf := base
				conf.RedirectURL = ok
				b := h.browser(ok)
				verifier := oauth2.GenerateVerifier()
				code := issueCode(t, b, conf, verifier, "nate", "nate-password-1")
				if resp, m := redeem(h, native, code, ok, verifier); resp.StatusCode != http.StatusOK {
					t.Fatalf("exchange: %d %v", resp.StatusCode, m)
				}
			})
		}
		for _, bad := range []string{
			"com.example.app:/callback/x", "com.example.app:/callback?x=1", "com.example.app:/other",
			"com.example.evil:/callback", "com.example.app://callback",
			"http://127.0.0.1:53123/other", "http://127.0.0.1:53123/cb?x=1", "http://127.0.0.1:53123/cb/",
			"https://127.0.0.1:53123/cb", "http://localhost:53123/cb", "http://127.0.0.2:53123/cb", "http://[::1]:53123/other",
		} {
			t.Run("refused "+bad, func(t *testing.T) {
				conf := base
				conf.RedirectURL = bad
				resp, page := br.get(conf.AuthCodeURL("state-native", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
				wantErrorPage(t, resp, page, bad)
			})
		}
	})
}

// wantErrorPage: 400, HTML, no redirect, and no link to the refused URI a
// user could be talked into following.
func wantErrorPage(t *testing.T, resp *http.Response, page, refused string) {
	t.Helper()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Fatalf("got %d Location=%q, want a 400 page", resp.StatusCode, resp.Header.Get("Location"))
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type = %q", ct)
	}
	if refused != "" && strings.Contains(page, refused) {
		t.Errorf("the page repeats the refused URI %q", refused)
	}
}

func TestAuthorizeUnknownClientPage(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		for name, q := range map[string]url.Values{
			"unknown client with redirect": {"response_type": {"code"}, "client_id": {"nobody"}, "redirect_uri": {"https://evil.example/cb"}, "state": {"s1"}},
			"unknown client, no redirect":  {"response_type": {"code"}, "client_id": {"nobody"}},
			"no client_id":                 {"response_type": {"code"}, "redirect_uri": {"https://evil.example/cb"}},
		} {
			t.Run(name, func(t *testing.T) {
				resp, page := h.browser("never").get(h.public.URL + "/oauth2/authorize?" + q.Encode())
				wantErrorPage(t, resp, page, "evil.example")
			})
		}
	})
}

// A valid CSRF token of another browser is what a cross-site attacker
// actually has; a missing or damaged one is the easy case.
func TestCSRFTokensRefused(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("cleo", "cleo-password-1")
		app := h.spa("https://app.example/cb", false, "openid")
		authURL := func() string {
			return app.conf.AuthCodeURL("state-csrf", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none"))
		}
		// prompt=none tells what the server remembers about this browser
		// without showing a page.
		silent := func(br *browser) string {
			resp, _ := br.get(authURL())
			return callback(t, resp, app.conf.RedirectURL).Get("error")
		}

		attacker := h.browser(app.conf.RedirectURL)
		_, page := attacker.get(h.public.URL + "/login")
		foreign := field(t, csrfRe, page)

		br := h.browser(app.conf.RedirectURL)
		_, page = br.get(app.conf.AuthCodeURL("state-csrf", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		own, returnTo := field(t, csrfRe, page), field(t, returnToRe, page)
		tokens := map[string][]string{"missing": nil, "empty": {""}, "damaged": {own[:len(own)-1] + "A"}, "another browser's": {foreign}}
		if strings.HasSuffix(own, "A") {
			tokens["damaged"] = []string{own[:len(own)-1] + "B"}
		}
		refused := func(t *testing.T, resp *http.Response) {
			t.Helper()
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Location") != "" {
				t.Errorf("got %d Location=%q, want 403", resp.StatusCode, resp.Header.Get("Location"))
			}
		}
		pub, _ := url.Parse(h.public.URL)

		for name, tok := range tokens {
			t.Run("login "+name, func(t *testing.T) {
				resp, _ := br.post("/login", url.Values{"csrf_token": tok, "return_to": {returnTo}, "username": {"cleo"}, "password": {"cleo-password-1"}})
				refused(t, resp)
				for _, c := range br.client.Jar.Cookies(pub) {
					if strings.Contains(c.Name, "session") {
						t.Errorf("session cookie %s set", c.Name)
					}
				}
				if e := silent(br); e != "login_required" {
					t.Errorf("after a refused login prompt=none says %q", e)
				}
			})
		}
		// The attacker's token is refused even on a browser with no CSRF
		// cookie at all, the state of a victim who never opened the form.
		t.Run("login without cookie", func(t *testing.T) {
			resp, _ := h.browser("never").post("/login", url.Values{"csrf_token": {foreign}, "return_to": {returnTo}, "username": {"cleo"}, "password": {"cleo-password-1"}})
			refused(t, resp)
		})

		resp, page := br.login(page, "cleo", "cleo-password-1")
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, `value="allow"`) {
			t.Fatalf("consent page: %d", resp.StatusCode)
		}
		consentReturnTo := field(t, returnToRe, page)
		for name, tok := range tokens {
			t.Run("consent "+name, func(t *testing.T) {
				resp, _ := br.post("/consent", url.Values{"csrf_token": tok, "return_to": {consentReturnTo}, "consent": {"allow"}})
				refused(t, resp)
				if s, _ := h.store.ConsentedScopes(context.Background(), "user-cleo", app.id); len(s) != 0 {
					t.Errorf("consent stored: %v", s)
				}
			})
			t.Run("logout "+name, func(t *testing.T) {
				resp, _ := br.post("/logout", url.Values{"csrf_token": tok})
				refused(t, resp)
				if e := silent(br); e != "consent_required" {
					t.Errorf("after a refused logout prompt=none says %q, want consent_required (still signed in)", e)
				}
			})
		}
	})
}

func hiddenRe(name string) *regexp.Regexp {
	return regexp.MustCompile(`name="` + name + `" value="([^"]*)"`)
}

// The sign-out page carries the client's parameters into its form, and
// only the URIs registered by the client named there are followed.
func TestPostLogoutRedirectFromPage(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		reg := func(bye string) testClient {
			return h.client(map[string]any{"token_endpoint_auth_method": "none", "redirect_uris": []string{"https://app.example/cb"},
				"post_logout_redirect_uris": []string{bye}})
		}
		app := reg("https://app.example/bye")
		reg("https://other.example/bye")
		br := h.browser("https://")
		submit := func(q url.Values) (*http.Response, string) {
			_, page := br.get(h.public.URL + "/logout?" + q.Encode())
			form := url.Values{}
			for _, name := range []string{"csrf_token", "client_id", "post_logout_redirect_uri", "state"} {
				form.Set(name, field(t, hiddenRe(name), page))
			}
			return br.post("/logout", form)
		}

		resp, _ := submit(url.Values{"client_id": {app.id}, "post_logout_redirect_uri": {"https://app.example/bye"}, "state": {"xyz 1&2"}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "https://app.example/bye?state=xyz+1%262" {
			t.Fatalf("registered: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		for name, q := range map[string]url.Values{
			"another client's URI": {"client_id": {app.id}, "post_logout_redirect_uri": {"https://other.example/bye"}},
			"no client_id":         {"post_logout_redirect_uri": {"https://app.example/bye"}},
			"unknown client":       {"client_id": {"nobody"}, "post_logout_redirect_uri": {"https://app.example/bye"}},
			"extra query":          {"client_id": {app.id}, "post_logout_redirect_uri": {"https://app.example/bye?next=https://evil.example"}},
		} {
			t.Run(name, func(t *testing.T) {
				resp, page := submit(q)
				wantErrorPage(t, resp, page, "")
			})
		}
	})
}
