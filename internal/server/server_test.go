package server_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

func TestMetadata(t *testing.T) {
	// One backend is enough: this tests HTTP handling, not storage.
	h := newHarness(t, storetest.Backends()[0])
	req, _ := http.NewRequest(http.MethodGet, h.public.URL+"/.well-known/oauth-authorization-server", nil)
	resp, m := h.do(req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if m["issuer"] != h.cfg.Issuer || m["token_endpoint"] != h.cfg.Issuer+"/oauth2/token" || m["authorization_endpoint"] != h.cfg.Issuer+"/oauth2/authorize" ||
		m["introspection_endpoint"] != h.cfg.Issuer+"/oauth2/introspect" || m["revocation_endpoint"] != h.cfg.Issuer+"/oauth2/revoke" {
		t.Errorf("endpoints: %v", m)
	}
	if got := m["code_challenge_methods_supported"].([]any); len(got) != 1 || got[0] != "S256" {
		t.Errorf("PKCE methods = %v, want only S256", got)
	}
	if m["authorization_response_iss_parameter_supported"] != true {
		t.Error("RFC 9207 iss parameter support not advertised")
	}
	for _, g := range []string{"client_credentials", "refresh_token", "password", "authorization_code"} {
		if !slices.Contains(m["grant_types_supported"].([]any), any(g)) {
			t.Errorf("grant type %s missing", g)
		}
	}
}

func TestClientCredentials(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		svc := h.serviceClient("read write offline_access")

		t.Run("basic auth", func(t *testing.T) {
			resp, m := h.form("/oauth2/token", svc.id, svc.secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"read offline_access"}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d %v", resp.StatusCode, m)
			}
			if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
				t.Errorf("token response cache headers: %v", resp.Header)
			}
			if !strings.EqualFold(m["token_type"].(string), "bearer") || m["access_token"] == "" || m["scope"] != "read offline_access" {
				t.Errorf("token response %v", m)
			}
			if exp := m["expires_in"].(float64); exp < 890 || exp > 900 {
				t.Errorf("expires_in = %v, want about 15m", exp)
			}
			// Never a refresh token for client credentials, whatever the scope.
			if _, ok := m["refresh_token"]; ok {
				t.Error("client credentials issued a refresh token")
			}
			in := h.introspect(svc, m["access_token"].(string))
			if in["active"] != true || in["sub"] != svc.id || in["client_id"] != svc.id || in["iss"] != h.cfg.Issuer ||
				in["token_type"] != "Bearer" || in["scope"] != "read offline_access" || in["jti"] == nil || in["exp"] == nil || in["iat"] == nil {
				t.Errorf("introspection %v", in)
			}
			// No audience asked for: the client's registered audience.
			if aud := in["aud"].([]any); len(aud) != 2 {
				t.Errorf("aud = %v, want the registered audience", aud)
			}
		})

		t.Run("client_secret_post", func(t *testing.T) {
			post := h.serviceClient("read", func(md map[string]any) { md["token_endpoint_auth_method"] = "client_secret_post" })
			resp, m := h.form("/oauth2/token", "", "", url.Values{"grant_type": {"client_credentials"}, "client_id": {post.id}, "client_secret": {post.secret}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("client_secret_post: %d %v", resp.StatusCode, m)
			}
			// A client registered for one method may not use another.
			resp, m = h.form("/oauth2/token", post.id, post.secret, url.Values{"grant_type": {"client_credentials"}})
			wantError(t, resp, m, http.StatusUnauthorized, "invalid_client")
		})

		t.Run("audience and resource", func(t *testing.T) {
			m := h.token(svc, url.Values{"grant_type": {"client_credentials"}, "audience": {"https://api.example"}})
			if aud := h.introspect(svc, m["access_token"].(string))["aud"].([]any); len(aud) != 1 || aud[0] != "https://api.example" {
				t.Errorf("aud = %v", aud)
			}
			m = h.token(svc, url.Values{"grant_type": {"client_credentials"}, "resource": {"https://other.example"}})
			if aud := h.introspect(svc, m["access_token"].(string))["aud"].([]any); len(aud) != 1 || aud[0] != "https://other.example" {
				t.Errorf("RFC 8707 resource: aud = %v", aud)
			}
			resp, body := h.form("/oauth2/token", svc.id, svc.secret, url.Values{"grant_type": {"client_credentials"}, "audience": {"https://evil.example"}})
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("unregistered audience: %d %v", resp.StatusCode, body)
			}
		})

		t.Run("errors", func(t *testing.T) {
			noCC := h.client(map[string]any{"grant_types": []string{"refresh_token"}, "scope": "read"})
			cases := []struct {
				name       string
				user, pass string
				form       url.Values
				status     int
				code       string
			}{
				{"wrong secret", svc.id, "wrong", url.Values{"grant_type": {"client_credentials"}}, 401, "invalid_client"},
				{"unknown client", "nobody", "x", url.Values{"grant_type": {"client_credentials"}}, 401, "invalid_client"},
				{"no credentials", "", "", url.Values{"grant_type": {"client_credentials"}}, 400, "invalid_request"},
				{"unregistered scope", svc.id, svc.secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}, 400, "invalid_scope"},
				{"grant not registered", noCC.id, noCC.secret, url.Values{"grant_type": {"client_credentials"}}, 400, "unauthorized_client"},
				{"unknown grant", svc.id, svc.secret, url.Values{"grant_type": {"urn:example:magic"}}, 400, "unsupported_grant_type"},
				{"missing grant", svc.id, svc.secret, url.Values{"scope": {"read"}}, 400, "invalid_request"},
				{"duplicate parameter", svc.id, svc.secret, url.Values{"grant_type": {"client_credentials", "client_credentials"}}, 400, "invalid_request"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					resp, m := h.form("/oauth2/token", tc.user, tc.pass, tc.form)
					wantError(t, resp, m, tc.status, tc.code)
					if tc.status == 401 && tc.user != "" && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
						t.Errorf("401 without WWW-Authenticate: %v", resp.Header)
					}
				})
			}
			req, _ := http.NewRequest(http.MethodGet, h.public.URL+"/oauth2/token", nil)
			if resp, _ := h.do(req); resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("GET /oauth2/token: %d", resp.StatusCode)
			}
		})

		t.Run("concurrent", func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make(chan string, 32)
			for range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req, _ := http.NewRequest(http.MethodPost, h.public.URL+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.SetBasicAuth(svc.id, svc.secret)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						errs <- err.Error()
						return
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						errs <- resp.Status
					}
				}()
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
		})

		t.Run("no secrets in logs", func(t *testing.T) {
			m := h.token(svc, url.Values{"grant_type": {"client_credentials"}})
			h.form("/oauth2/token", svc.id, "wrong-secret-value", url.Values{"grant_type": {"client_credentials"}})
			logs := h.logs.String()
			for _, s := range []string{svc.secret, m["access_token"].(string), "wrong-secret-value", testAdminToken} {
				if strings.Contains(logs, s) {
					t.Errorf("a secret or token reached the log")
				}
			}
		})
	})
}

// The reference external client: golang.org/x/oauth2's client credentials
// flow must work against Latchkey unmodified, with both auth styles.
func TestExternalClientCredentials(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		rs := h.serviceClient("introspect")
		for _, style := range []struct {
			name   string
			method string
			style  oauth2.AuthStyle
		}{
			{"header", "client_secret_basic", oauth2.AuthStyleInHeader},
			{"params", "client_secret_post", oauth2.AuthStyleInParams},
		} {
			t.Run(style.name, func(t *testing.T) {
				c := h.serviceClient("read", func(md map[string]any) { md["token_endpoint_auth_method"] = style.method })
				cc := clientcredentials.Config{
					ClientID: c.id, ClientSecret: c.secret, TokenURL: h.public.URL + "/oauth2/token",
					Scopes: []string{"read"}, AuthStyle: style.style,
				}
				tok, err := cc.Token(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if !tok.Valid() || tok.Expiry.Before(time.Now().Add(14*time.Minute)) {
					t.Fatalf("token %+v", tok)
				}
				if in := h.introspect(rs, tok.AccessToken); in["active"] != true {
					t.Fatalf("introspection %v", in)
				}
				bad := cc
				bad.ClientSecret = "wrong"
				if _, err := bad.Token(context.Background()); err == nil {
					t.Fatal("wrong secret accepted")
				}
			})
		}
	})
}

func TestIntrospection(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		svc := h.serviceClient("read")
		rs := h.serviceClient("introspect")
		spa := h.client(map[string]any{"token_endpoint_auth_method": "none", "redirect_uris": []string{"https://app.example/cb"}})
		at := h.token(svc, url.Values{"grant_type": {"client_credentials"}})["access_token"].(string)

		// Any confidential client may introspect, not only the token's own.
		if in := h.introspect(rs, at); in["active"] != true || in["client_id"] != svc.id {
			t.Fatalf("introspection by a resource server: %v", in)
		}
		// An unknown hint is ignored; a wrong hint still finds the token.
		if in := h.introspect(rs, at, "token_type_hint", "refresh_token"); in["active"] != true {
			t.Errorf("wrong hint: %v", in)
		}
		if in := h.introspect(rs, at, "token_type_hint", "banana"); in["active"] != true {
			t.Errorf("unknown hint: %v", in)
		}
		for name, tok := range map[string]string{"unknown": "not-a-token", "garbage": "a.b.c.d", "tampered": at[:len(at)-2] + "xx"} {
			if in := h.introspect(rs, tok); len(in) != 1 || in["active"] != false {
				t.Errorf("%s token: %v, want exactly {active:false}", name, in)
			}
		}

		resp, m := h.form("/oauth2/introspect", "", "", url.Values{"token": {at}})
		wantError(t, resp, m, http.StatusUnauthorized, "invalid_client")
		resp, m = h.form("/oauth2/introspect", rs.id, "wrong", url.Values{"token": {at}})
		wantError(t, resp, m, http.StatusUnauthorized, "invalid_client")
		resp, m = h.form("/oauth2/introspect", "", "", url.Values{"token": {at}, "client_id": {spa.id}})
		wantError(t, resp, m, http.StatusUnauthorized, "invalid_client")
		resp, m = h.form("/oauth2/introspect", rs.id, rs.secret, url.Values{})
		wantError(t, resp, m, http.StatusBadRequest, "invalid_request")
	})
}

func TestIntrospectionExpired(t *testing.T) {
	h := newHarness(t, storetest.Backends()[0])
	svc := h.serviceClient("read")
	at := h.token(svc, url.Values{"grant_type": {"client_credentials"}})["access_token"].(string)
	if h.introspect(svc, at)["active"] != true {
		t.Fatal("a fresh token is not active")
	}
	h.clock.advance(h.cfg.AccessTokenTTL + time.Second)
	if in := h.introspect(svc, at); in["active"] != false {
		t.Fatalf("token still active after its lifetime: %v", in)
	}
}

func TestRevocation(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		svc := h.serviceClient("read")
		other := h.serviceClient("read")

		at := h.token(svc, url.Values{"grant_type": {"client_credentials"}})["access_token"].(string)
		// Another client cannot revoke it (RFC 7009 §2.1).
		resp, m := h.form("/oauth2/revoke", other.id, other.secret, url.Values{"token": {at}})
		wantError(t, resp, m, http.StatusBadRequest, "unauthorized_client")
		if h.introspect(svc, at)["active"] != true {
			t.Fatal("token revoked by a foreign client")
		}
		resp, m = h.form("/oauth2/revoke", svc.id, "wrong", url.Values{"token": {at}})
		wantError(t, resp, m, http.StatusUnauthorized, "invalid_client")

		resp, _ = h.form("/oauth2/revoke", svc.id, svc.secret, url.Values{"token": {at}, "token_type_hint": {"access_token"}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke: %d", resp.StatusCode)
		}
		if in := h.introspect(svc, at); in["active"] != false {
			t.Fatalf("revoked token introspects %v", in)
		}
		// Unknown and already revoked tokens: 200 (RFC 7009 §2.2).
		for _, tok := range []string{at, "never-issued"} {
			if resp, _ := h.form("/oauth2/revoke", svc.id, svc.secret, url.Values{"token": {tok}}); resp.StatusCode != http.StatusOK {
				t.Errorf("revoke %q: %d", tok, resp.StatusCode)
			}
		}
	})
}

func passwordClient(h *harness, trusted bool) testClient {
	return h.client(map[string]any{
		"grant_types": []string{"password", "refresh_token"}, "scope": "read offline_access", "trusted": trusted,
	})
}

func TestPasswordGrant(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		userID := h.user("alice", "correct horse battery")
		trusted, untrusted := passwordClient(h, true), passwordClient(h, false)
		form := func(user, pass string) url.Values {
			return url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass}, "scope": {"read"}}
		}

		m := h.token(trusted, form("alice", "correct horse battery"))
		in := h.introspect(trusted, m["access_token"].(string))
		if in["sub"] != userID || in["username"] != "alice" {
			t.Fatalf("password grant introspection %v", in)
		}

		resp, body := h.form("/oauth2/token", untrusted.id, untrusted.secret, form("alice", "correct horse battery"))
		wantError(t, resp, body, http.StatusBadRequest, "unauthorized_client")

		// Wrong password and unknown user: the same answer.
		r1, b1 := h.form("/oauth2/token", trusted.id, trusted.secret, form("alice", "wrong"))
		r2, b2 := h.form("/oauth2/token", trusted.id, trusted.secret, form("mallory", "wrong"))
		wantError(t, r1, b1, http.StatusBadRequest, "invalid_grant")
		wantError(t, r2, b2, http.StatusBadRequest, "invalid_grant")
		if b1["error_description"] != b2["error_description"] {
			t.Errorf("unknown user and wrong password differ: %v vs %v", b1, b2)
		}
		if strings.Contains(h.logs.String(), "correct horse battery") {
			t.Error("a password reached the log")
		}
	})
}

func TestRefreshRotationAndRevocation(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("bob", "pa55word-pa55word")
		c := passwordClient(h, true)
		login := url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"pa55word-pa55word"}}

		// No offline_access, no refresh token.
		login.Set("scope", "read")
		if m := h.token(c, login); m["refresh_token"] != nil {
			t.Fatal("refresh token issued without offline_access")
		}
		login.Set("scope", "read offline_access")
		first := h.token(c, login)
		rt1 := first["refresh_token"].(string)

		second := h.token(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}})
		rt2 := second["refresh_token"].(string)
		if rt2 == "" || rt2 == rt1 {
			t.Fatal("refresh did not rotate")
		}
		if in := h.introspect(c, rt2); in["active"] != true || in["token_type"] != "refresh_token" {
			t.Fatalf("new refresh token: %v", in)
		}
		// The access token the refresh replaced stays valid until it expires.
		if h.introspect(c, first["access_token"].(string))["active"] != true {
			t.Error("refresh killed the previous access token")
		}

		// Revoking the refresh token revokes the grant's access tokens too.
		if resp, _ := h.form("/oauth2/revoke", c.id, c.secret, url.Values{"token": {rt2}}); resp.StatusCode != http.StatusOK {
			t.Fatal("revoke refresh token failed")
		}
		for name, tok := range map[string]string{"refresh": rt2, "access": second["access_token"].(string), "first access": first["access_token"].(string)} {
			if h.introspect(c, tok)["active"] != false {
				t.Errorf("%s token still active after revoking the grant", name)
			}
		}
		resp, m := h.form("/oauth2/token", c.id, c.secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt2}})
		wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")
	})
}

func TestBodyLimits(t *testing.T) {
	// One backend is enough: this tests HTTP handling, not storage.
	h := newHarness(t, storetest.Backends()[0])
	svc := h.serviceClient("read")
	big := "grant_type=client_credentials&pad=" + strings.Repeat("a", 2<<20)
	for _, path := range []string{"/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"} {
		req, _ := http.NewRequest(http.MethodPost, h.public.URL+path, strings.NewReader(big))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(svc.id, svc.secret)
		resp, m := h.do(req)
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%s with 2 MiB body: %d %v", path, resp.StatusCode, m)
		}
	}
	// A 10 MB body announced by Content-Length is refused before it is read.
	req, _ := http.NewRequest(http.MethodPost, h.admin.URL+"/admin/clients", strings.NewReader(strings.Repeat("x", 10<<20)))
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, _ := h.do(req)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("admin 10 MB body: %d", resp.StatusCode)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		for _, base := range []string{h.public.URL, h.admin.URL} {
			for _, path := range []string{"/healthz", "/readyz"} {
				req, _ := http.NewRequest(http.MethodGet, base+path, nil)
				if resp, m := h.do(req); resp.StatusCode != http.StatusOK || m["status"] != "ok" {
					t.Errorf("%s%s: %d %v", base, path, resp.StatusCode, m)
				}
			}
		}
		svc := h.serviceClient("read")
		h.token(svc, url.Values{"grant_type": {"client_credentials"}})
		h.form("/oauth2/token", svc.id, "wrong", url.Values{"grant_type": {"client_credentials"}})

		req, _ := http.NewRequest(http.MethodGet, h.admin.URL+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var sb strings.Builder
		_, _ = io.Copy(&sb, resp.Body)
		body := sb.String()
		for _, want := range []string{
			`latchkey_tokens_issued_total{grant_type="client_credentials",token_type="access_token"} 1`,
			`latchkey_token_requests_total{grant_type="client_credentials",outcome="invalid_client"} 1`,
			`latchkey_oauth_errors_total{endpoint="/oauth2/token",error="invalid_client"} 1`,
			`latchkey_http_requests_total{code="200",route="POST /oauth2/token"}`,
			`latchkey_token_request_duration_seconds_bucket`,
			`latchkey_client_cache_mode{mode="off"}`, // how clients are cached (docs/operations.md)
			`latchkey_revocations_in_memory`,         // whether "not revoked" costs a query
		} {
			if !strings.Contains(body, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		// The public listener does not serve the admin API or metrics.
		for _, path := range []string{"/metrics", "/admin/clients"} {
			req, _ := http.NewRequest(http.MethodGet, h.public.URL+path, nil)
			if resp, _ := h.do(req); resp.StatusCode != http.StatusNotFound {
				t.Errorf("public %s: %d", path, resp.StatusCode)
			}
		}

		// Readiness follows the database, and a request that needs it gets a
		// 503 with Retry-After rather than a 500 or a wrong answer.
		_ = h.store.Close()
		req, _ = http.NewRequest(http.MethodGet, h.public.URL+"/readyz", nil)
		if resp, _ := h.do(req); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("readyz with the database closed: %d", resp.StatusCode)
		}
		resp, m := h.form("/oauth2/introspect", svc.id, svc.secret, url.Values{"token": {"some-token"}})
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || m["error"] != "temporarily_unavailable" {
			t.Errorf("introspection with the database closed: %d %v", resp.StatusCode, m)
		}
	})
}

// Browser apps may read metadata and keys from anywhere, and call the token
// and revocation endpoints only from allowed origins: here
// LATCHKEY_CORS_ORIGINS (per-client origins: cors_test.go).
func TestCORS(t *testing.T) {
	// One backend is enough: this tests HTTP handling, not storage.
	h := newHarness(t, storetest.Backends()[0], func(c *config.Config) { c.CORSOrigins = "https://app.example" })
	preflight := func(origin, path string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, h.public.URL+path, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, _ := h.do(req)
		return resp
	}
	for _, path := range []string{"/oauth2/token", "/oauth2/revoke"} {
		if resp := preflight("https://app.example", path); resp.StatusCode != http.StatusNoContent ||
			resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("preflight to %s from an allowed origin: %d %v", path, resp.StatusCode, resp.Header)
		}
		if resp := preflight("https://evil.example", path); resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight to %s from another origin was allowed", path)
		}
	}
	if resp := preflight("https://app.example", "/oauth2/introspect"); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("introspection is for servers, not browsers")
	}
	req, _ := http.NewRequest(http.MethodGet, h.public.URL+"/.well-known/jwks.json", nil)
	req.Header.Set("Origin", "https://anyone.example")
	if resp, _ := h.do(req); resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Error("the JWKS is not readable cross-origin")
	}
}

// Issue 12 item 8: /metrics and /debug/pprof on the admin listener answered
// anyone who could reach it, and a CPU profile or trace could be started
// over and over. They need the admin token like the API.
func TestAdminListenerExtrasNeedTheToken(t *testing.T) {
	// One backend is enough: this tests HTTP handling, not storage.
	h := newHarness(t, storetest.Backends()[0], func(c *config.Config) { c.Pprof = true })
	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/symbol", "/debug/pprof/profile?seconds=1", "/debug/pprof/trace?seconds=1"} {
		for name, auth := range map[string]string{"none": "", "wrong": "Bearer not-the-admin-token", "basic": "Basic " + testAdminToken} {
			req, _ := http.NewRequest(http.MethodGet, h.admin.URL+path, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, _ := h.do(req)
			if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s with %s token: %d, want 401 with a Bearer challenge", path, name, resp.StatusCode)
			}
		}
	}
	for _, path := range []string{"/metrics", "/debug/pprof/"} {
		req, _ := http.NewRequest(http.MethodGet, h.admin.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		if resp, _ := h.do(req); resp.StatusCode != http.StatusOK {
			t.Errorf("%s with the admin token: %d", path, resp.StatusCode)
		}
	}
	// Health stays open: orchestrators probe it without credentials.
	req, _ := http.NewRequest(http.MethodGet, h.admin.URL+"/healthz", nil)
	if resp, _ := h.do(req); resp.StatusCode != http.StatusOK {
		t.Errorf("admin /healthz: %d", resp.StatusCode)
	}
}
