package server_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/oauth"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// Pushed authorization requests (RFC 9126): the endpoint, single use of the
// request_uri, require_pushed_authorization_requests and the resume after
// the login and consent pages.

// pushedRequest is an authorization request for app at rpRedirect with
// PKCE (verifier) and state "state-oidc", plus kv.
func pushedRequest(clientID, verifier string, kv ...string) url.Values {
	v := url.Values{
		"client_id": {clientID}, "response_type": {"code"}, "redirect_uri": {rpRedirect},
		"scope": {"openid profile"}, "state": {"state-oidc"},
	}
	if verifier != "" {
		v.Set("code_challenge", oauth2.S256ChallengeFromVerifier(verifier))
		v.Set("code_challenge_method", "S256")
	}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// push POSTs v to the PAR endpoint, with Basic auth when c has a secret,
// and returns the request_uri of a 201.
func (h *harness) push(t *testing.T, c testClient, v url.Values) string {
	t.Helper()
	resp, m := h.form(oauth.PathPAR, c.secretID(), c.secret, v)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push: %d %v", resp.StatusCode, m)
	}
	uri, _ := m["request_uri"].(string)
	if !strings.HasPrefix(uri, oauth.RequestURIPrefix) || len(uri) < len(oauth.RequestURIPrefix)+22 || m["expires_in"] != float64(60) {
		t.Fatalf("push answer %v", m)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
	return uri
}

// secretID is the Basic user of a confidential client, empty for a public one.
func (c testClient) secretID() string {
	if c.secret == "" {
		return ""
	}
	return c.id
}

func (h *harness) pushedURL(clientID, requestURI string) string {
	return h.public.URL + oauth.PathAuthorize + "?" + url.Values{"client_id": {clientID}, "request_uri": {requestURI}}.Encode()
}

func (h *harness) confidentialRP(extra map[string]any) testClient {
	md := map[string]any{"client_name": "Portal", "grant_types": []string{"authorization_code"},
		"redirect_uris": []string{rpRedirect}, "scope": "openid profile"}
	for k, v := range extra {
		md[k] = v
	}
	return h.client(md)
}

func wantRequestURIError(t *testing.T, resp *http.Response) {
	t.Helper()
	q := callback(t, resp, rpRedirect)
	if q.Get("error") != "invalid_request_uri" || q.Get("code") != "" {
		t.Fatalf("want error=invalid_request_uri, got %v", q)
	}
}

func TestPushedAuthorizationRequests(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("paula", "paula-password-1")
		pub := h.spa(rpRedirect, false, "openid profile")
		conf := h.confidentialRP(nil)
		br := h.browser(rpRedirect)

		// A public client, through the login page and consent, with the
		// OpenID parameters carried by the pushed form.
		verifier := oauth2.GenerateVerifier()
		uri := h.push(t, pub.testClient, pushedRequest(pub.id, verifier, "nonce", "n-0S6_WzA2Mj", "login_hint", "paula"))
		resp, page := br.get(h.pushedURL(pub.id, uri))
		if !isLoginPage(resp, page) {
			t.Fatalf("pushed request: %d, want the login page", resp.StatusCode)
		}
		if m := usernameRe.FindStringSubmatch(page); m == nil || m[1] != "paula" {
			t.Errorf("login_hint from the pushed form not prefilled: %v", m)
		}
		resp, page = br.login(page, "paula", "paula-password-1")
		if !isConsentPage(resp, page) {
			t.Fatalf("after login: %d, want the consent page", resp.StatusCode)
		}
		resp, _ = br.consent(page, "allow")
		q := callback(t, resp, rpRedirect)
		if q.Get("state") != "state-oidc" || q.Get("iss") != h.cfg.Issuer {
			t.Fatalf("callback %v", q)
		}
		tok, err := pub.conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		if _, claims := h.verifyJWT(t, idTokenOf(tok), "JWT"); claims["nonce"] != "n-0S6_WzA2Mj" {
			t.Errorf("ID token nonce %v", claims["nonce"])
		}
		// Used once: the same request_uri again is refused.
		resp, _ = br.get(h.pushedURL(pub.id, uri))
		wantRequestURIError(t, resp)

		// A confidential client, signed in already: consent, then a code
		// redeemed with its secret. Parameters in the URL besides client_id
		// and request_uri are ignored (RFC 9126 §4).
		uri = h.push(t, conf, pushedRequest(conf.id, ""))
		evil := h.pushedURL(conf.id, uri) + "&redirect_uri=" + url.QueryEscape("https://evil.example/cb") + "&scope=openid"
		resp, page = br.get(evil)
		if !isConsentPage(resp, page) {
			t.Fatalf("confidential pushed request: %d, want the consent page", resp.StatusCode)
		}
		resp, _ = br.consent(page, "allow")
		code := wantCode(t, resp)
		resp, m := h.form(oauth.PathToken, conf.id, conf.secret, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect}})
		if resp.StatusCode != http.StatusOK || m["access_token"] == nil || m["id_token"] == nil {
			t.Fatalf("token: %d %v", resp.StatusCode, m)
		}

		// Another client's request_uri: refused, and left to its owner.
		uri = h.push(t, conf, pushedRequest(conf.id, ""))
		resp, _ = br.get(h.pushedURL(pub.id, uri))
		wantRequestURIError(t, resp)
		resp, _ = br.get(h.pushedURL(conf.id, uri))
		wantCode(t, resp)

		// Expired after 60 s.
		uri = h.push(t, pub.testClient, pushedRequest(pub.id, verifier))
		h.clock.advance(61 * time.Second)
		resp, _ = br.get(h.pushedURL(pub.id, uri))
		wantRequestURIError(t, resp)

		// Redeemed in parallel: one code.
		uri = h.push(t, pub.testClient, pushedRequest(pub.id, verifier))
		var mu sync.Mutex
		codes, refused := 0, 0
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := br.client.Get(h.pushedURL(pub.id, uri))
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				loc, _ := url.Parse(resp.Header.Get("Location"))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case loc != nil && loc.Query().Get("code") != "":
					codes++
				case loc != nil && loc.Query().Get("error") == "invalid_request_uri":
					refused++
				default:
					t.Errorf("parallel redemption: %d %q", resp.StatusCode, resp.Header.Get("Location"))
				}
			}()
		}
		wg.Wait()
		if codes != 1 || refused != 7 {
			t.Fatalf("%d codes, %d refused; want 1 and 7", codes, refused)
		}

		// Neither the request_uri nor a client secret sent in the body is
		// stored.
		postClient := h.confidentialRP(map[string]any{"token_endpoint_auth_method": "client_secret_post"})
		post := pushedRequest(postClient.id, "")
		post.Set("client_secret", postClient.secret)
		resp, m = h.form(oauth.PathPAR, "", "", post)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("client_secret_post push: %d %v", resp.StatusCode, m)
		}
		for _, id := range storetest.RawColumn(t, h.store, "pushed_requests", "id") {
			if strings.Contains(id, "request_uri") || strings.Contains(m["request_uri"].(string), id) {
				t.Errorf("a request_uri stored as is: %q", id)
			}
		}
		for _, form := range storetest.RawColumn(t, h.store, "pushed_requests", "form") {
			if strings.Contains(form, "client_secret") || strings.Contains(form, url.QueryEscape(postClient.secret)) {
				t.Errorf("a client secret stored with a pushed request: %q", form)
			}
		}

		// Requests with request_uri that cannot be trusted: the error page.
		for name, u := range map[string]string{
			"no client_id":   h.public.URL + oauth.PathAuthorize + "?request_uri=" + url.QueryEscape(oauth.RequestURIPrefix+"x"),
			"unknown client": h.pushedURL("nobody", oauth.RequestURIPrefix+"x"),
		} {
			if resp, _ := br.get(u); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s: %d, want the error page", name, resp.StatusCode)
			}
		}
	})
}

// The PAR endpoint: client authentication as at the token endpoint, the
// authorization endpoint's checks, RFC 6749 §5.2 errors, never a 5xx.
func TestPushedAuthorizationRequestErrors(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		pub := h.spa(rpRedirect, false, "openid profile")
		conf := h.confidentialRP(nil)
		verifier := oauth2.GenerateVerifier()

		resp, m := h.form(oauth.PathPAR, "", "", pushedRequest(conf.id, ""))
		wantError(t, resp, m, http.StatusUnauthorized, "invalid_client")
		resp, m = h.form(oauth.PathPAR, conf.id, "wrong-secret", pushedRequest(conf.id, ""))
		wantError(t, resp, m, http.StatusUnauthorized, "invalid_client")
		resp, m = h.form(oauth.PathPAR, "", "", pushedRequest("nobody", verifier))
		wantError(t, resp, m, http.StatusUnauthorized, "invalid_client")

		for _, c := range []struct {
			name string
			v    url.Values
			code string
		}{
			{"unregistered redirect_uri", pushedRequest(pub.id, verifier, "redirect_uri", "https://evil.example/cb"), "invalid_request"},
			{"public without PKCE", pushedRequest(pub.id, ""), "invalid_request"},
			{"plain PKCE", pushedRequest(pub.id, verifier, "code_challenge_method", "plain"), "invalid_request"},
			{"unregistered scope", pushedRequest(pub.id, verifier, "scope", "openid admin"), "invalid_scope"},
			{"response_type token", pushedRequest(pub.id, verifier, "response_type", "token"), "unsupported_response_type"},
			{"bad prompt", pushedRequest(pub.id, verifier, "prompt", "none login"), "invalid_request"},
			{"bad max_age", pushedRequest(pub.id, verifier, "max_age", "-1"), "invalid_request"},
			{"foreign id_token_hint", pushedRequest(pub.id, verifier, "id_token_hint", "a.b.c"), "invalid_request"},
			{"request_uri inside", pushedRequest(pub.id, verifier, "request_uri", oauth.RequestURIPrefix+"x"), "invalid_request"},
			{"request object", pushedRequest(pub.id, verifier, "request", "eyJhbGciOiJub25lIn0.e30."), "invalid_request"},
			{"another client_id", pushedRequest(conf.id, verifier, "client_id", conf.id), "invalid_client"},
			{"no state without PKCE", func() url.Values { v := pushedRequest(conf.id, ""); v.Del("state"); return v }(), "invalid_state"},
		} {
			t.Run(c.name, func(t *testing.T) {
				user, pass := "", ""
				if c.v.Get("client_id") == conf.id && c.name != "another client_id" {
					user, pass = conf.id, conf.secret
				}
				resp, m := h.form(oauth.PathPAR, user, pass, c.v)
				if resp.StatusCode >= 500 || m["error"] != c.code || resp.Header.Get("Location") != "" {
					t.Fatalf("got %d %v, want error=%s", resp.StatusCode, m, c.code)
				}
			})
		}
		// The authenticated client must be the one the request names.
		resp, m = h.form(oauth.PathPAR, conf.id, conf.secret, pushedRequest(pub.id, verifier))
		wantError(t, resp, m, http.StatusBadRequest, "invalid_request")

		// Strict form parsing, as at the token endpoint.
		v := pushedRequest(pub.id, verifier)
		for name, req := range map[string]*http.Request{
			"query string": func() *http.Request {
				r, _ := http.NewRequest(http.MethodPost, h.public.URL+oauth.PathPAR+"?scope=openid", strings.NewReader(v.Encode()))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				return r
			}(),
			"repeated parameter": func() *http.Request {
				r, _ := http.NewRequest(http.MethodPost, h.public.URL+oauth.PathPAR, strings.NewReader(v.Encode()+"&scope=openid"))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				return r
			}(),
			"JSON body": func() *http.Request {
				r, _ := http.NewRequest(http.MethodPost, h.public.URL+oauth.PathPAR, strings.NewReader(`{"client_id":"x"}`))
				r.Header.Set("Content-Type", "application/json")
				return r
			}(),
		} {
			resp, m := h.do(req)
			if resp.StatusCode != http.StatusBadRequest || m["error"] != "invalid_request" {
				t.Errorf("%s: %d %v", name, resp.StatusCode, m)
			}
		}

		// Hostile request_uri values at the authorization endpoint.
		br := h.browser(rpRedirect)
		for _, bad := range []string{"", oauth.RequestURIPrefix, "https://rp.example/r", oauth.RequestURIPrefix + strings.Repeat("A", 8000),
			oauth.RequestURIPrefix + "\x00\n", "urn:ietf:params:oauth:request_uri:../../etc"} {
			resp, _ := br.get(h.pushedURL(pub.id, bad))
			if resp.StatusCode >= 500 {
				t.Errorf("request_uri %.40q: %d", bad, resp.StatusCode)
			}
		}
		resp, _ = br.get(h.pushedURL(pub.id, oauth.RequestURIPrefix+"x") + "&request_uri=" + url.QueryEscape(oauth.RequestURIPrefix+"y"))
		if resp.StatusCode >= 500 {
			t.Errorf("repeated request_uri: %d", resp.StatusCode)
		}
	})
}

// require_pushed_authorization_requests, per client and server-wide: a
// plain request is refused, a pushed one works through the login page,
// and the request resumed after the page cannot be forged into one that
// counts as pushed.
func TestRequirePushedAuthorizationRequests(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("rita", "rita-password-1")
		strict := h.client(map[string]any{"client_name": "Strict", "token_endpoint_auth_method": "none", "trusted": true,
			"grant_types": []string{"authorization_code"}, "redirect_uris": []string{rpRedirect}, "scope": "openid profile",
			"require_pushed_authorization_requests": true})
		verifier := oauth2.GenerateVerifier()
		plain := h.public.URL + oauth.PathAuthorize + "?" + pushedRequest(strict.id, verifier).Encode()
		br := h.browser(rpRedirect)
		resp, _ := br.get(plain)
		wantRedirectError(t, h, resp, "invalid_request")

		// Pushed: login page, then the code.
		resp, page := br.get(h.pushedURL(strict.id, h.push(t, strict, pushedRequest(strict.id, verifier))))
		if !isLoginPage(resp, page) {
			t.Fatalf("pushed: %d, want the login page", resp.StatusCode)
		}
		sealed := field(t, returnToRe, page)
		if !strings.Contains(sealed, "pushed=") {
			t.Fatalf("resume URL without the seal: %s", sealed)
		}
		resp, _ = br.login(page, "rita", "rita-password-1")
		wantCode(t, resp)

		// The signed-in browser replays a sealed URL with one parameter
		// changed, or with a made-up seal, or goes through the login page
		// with a plain request of its own: each time refused.
		attacker := oauth2.GenerateVerifier()
		changed := strings.Replace(sealed, url.QueryEscape(oauth2.S256ChallengeFromVerifier(verifier)), url.QueryEscape(oauth2.S256ChallengeFromVerifier(attacker)), 1)
		if changed == sealed {
			t.Fatal("the code_challenge is not in the resume URL")
		}
		forgedSeal := plain + "&pushed=" + url.QueryEscape("9999999999.AAAA")
		for name, u := range map[string]string{"changed": h.public.URL + changed, "made-up seal": forgedSeal} {
			resp, _ := br.get(u)
			if q := callback(t, resp, rpRedirect); q.Get("error") != "invalid_request" {
				t.Errorf("%s: %v, want invalid_request", name, q)
			}
		}
		fresh := h.browser(rpRedirect)
		_, page = fresh.get(h.public.URL + "/login?" + url.Values{"return_to": {changed}}.Encode())
		resp, _ = fresh.login(page, "rita", "rita-password-1")
		if q := callback(t, resp, rpRedirect); q.Get("error") != "invalid_request" {
			t.Errorf("changed request through the login page: %v, want invalid_request", q)
		}
		// The unchanged sealed URL still counts as pushed (its parameters
		// are the client's), until the seal expires.
		resp, _ = br.get(h.public.URL + sealed)
		wantCode(t, resp)
		h.clock.advance(31 * time.Minute)
		resp, _ = br.get(h.public.URL + sealed)
		if q := callback(t, resp, rpRedirect); q.Get("error") != "invalid_request" {
			t.Errorf("expired seal: %v, want invalid_request", q)
		}
	})
}

func TestRequirePushedAuthorizationRequestsServerWide(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, func(c *config.Config) { c.RequirePAR = true })
		h.user("sam", "sam-password-1")
		app := h.rp()
		for _, path := range []string{oauth.PathMetadata, oauth.PathOpenIDConfiguration} {
			req, _ := http.NewRequest(http.MethodGet, h.public.URL+path, nil)
			_, md := h.do(req)
			if md["pushed_authorization_request_endpoint"] != h.public.URL+oauth.PathPAR || md["require_pushed_authorization_requests"] != true {
				t.Errorf("%s: %v %v", path, md["pushed_authorization_request_endpoint"], md["require_pushed_authorization_requests"])
			}
		}
		br := h.browser(rpRedirect)
		resp, _ := br.get(oidcURL(app.conf))
		wantRedirectError(t, h, resp, "invalid_request")
		verifier := oauth2.GenerateVerifier()
		resp, page := br.get(h.pushedURL(app.id, h.push(t, app.testClient, pushedRequest(app.id, verifier))))
		if !isLoginPage(resp, page) {
			t.Fatalf("pushed: %d, want the login page", resp.StatusCode)
		}
		resp, _ = br.login(page, "sam", "sam-password-1")
		code := wantCode(t, resp)
		if _, err := app.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier)); err != nil {
			t.Fatal(err)
		}
	})
}
