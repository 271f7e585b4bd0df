package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// userinfo calls /oauth2/userinfo; prepare sets the token and the body.
func (h *harness) userinfo(method string, prepare func(*http.Request)) (*http.Response, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.public.URL+"/oauth2/userinfo", nil)
	if prepare != nil {
		prepare(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &m); err != nil {
			h.t.Fatalf("userinfo body %q: %v", body, err)
		}
	}
	return resp, m
}

func withBearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func withForm(v url.Values) func(*http.Request) {
	return func(r *http.Request) {
		r.Body = io.NopCloser(strings.NewReader(v.Encode()))
		r.ContentLength = int64(len(v.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
}

// wantChallenge checks an RFC 6750 §3 refusal: the status and the error in
// WWW-Authenticate (none when code is "").
func wantChallenge(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	ch := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != status || !strings.HasPrefix(ch, "Bearer") {
		t.Fatalf("got %d %q, want %d with a Bearer challenge", resp.StatusCode, ch, status)
	}
	if code == "" && strings.Contains(ch, "error=") {
		t.Fatalf("challenge %q has an error, want none", ch)
	}
	if code != "" && !strings.Contains(ch, `error="`+code+`"`) {
		t.Fatalf("challenge %q, want error=%q", ch, code)
	}
}

// UserInfo (Core §5.3, RFC 6750): the claims of the granted scopes for a
// user's access token with openid, by header or form body, in both token
// formats; every bad token is 401 invalid_token, a token without openid
// 403 insufficient_scope, no token 401 without an error.
func TestUserinfo(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		for _, format := range []string{config.FormatOpaque, config.FormatJWT} {
			t.Run(format, func(t *testing.T) {
				h := newHarness(t, b, func(c *config.Config) { c.AccessTokenFormat = format })
				uid := h.user("uma", "uma-password-1")
				if resp, m := h.adminJSON(http.MethodPatch, "/admin/users/"+uid, map[string]any{
					"email": "uma@example.com", "email_verified": true, "name": "Uma Ueda", "given_name": "Uma",
					"family_name": "Ueda", "locale": "ja-JP", "groups": []string{"staff", "ops"},
				}); resp.StatusCode != http.StatusOK {
					t.Fatalf("patch user: %d %v", resp.StatusCode, m)
				}
				app := h.client(map[string]any{
					"client_name": "first party", "trusted": true, "grant_types": []string{"password", "refresh_token"},
					"scope": "openid profile email groups offline_access read",
				})
				svc := h.serviceClient("read")
				pw := func(scope string) map[string]any {
					return h.token(app, url.Values{"grant_type": {"password"}, "username": {"uma"}, "password": {"uma-password-1"}, "scope": {scope}})
				}
				full := pw("openid profile email groups offline_access")
				at := full["access_token"].(string)

				resp, m := h.userinfo(http.MethodGet, withBearer(at))
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
					t.Fatalf("userinfo: %d %v", resp.StatusCode, m)
				}
				want := map[string]any{"sub": uid, "name": "Uma Ueda", "given_name": "Uma", "family_name": "Ueda",
					"preferred_username": "uma", "locale": "ja-JP", "email": "uma@example.com", "email_verified": true}
				for k, v := range want {
					if m[k] != v {
						t.Errorf("%s = %v, want %v", k, m[k], v)
					}
				}
				if g, _ := m["groups"].([]any); len(g) != 2 || g[0] != "staff" || g[1] != "ops" {
					t.Errorf("groups = %v", m["groups"])
				}
				if _, ok := m["updated_at"].(float64); !ok {
					t.Errorf("updated_at = %v, want a number", m["updated_at"])
				}
				if _, ok := m["picture"]; ok {
					t.Errorf("an empty picture is in the answer: %v", m)
				}

				// Only what the scopes allow.
				resp, m = h.userinfo(http.MethodGet, withBearer(pw("openid email")["access_token"].(string)))
				if resp.StatusCode != http.StatusOK || len(m) != 3 || m["email"] != "uma@example.com" || m["sub"] != uid {
					t.Fatalf("openid email: %d %v", resp.StatusCode, m)
				}
				resp, m = h.userinfo(http.MethodGet, withBearer(pw("openid")["access_token"].(string)))
				if resp.StatusCode != http.StatusOK || len(m) != 1 || m["sub"] != uid {
					t.Fatalf("openid alone: %d %v", resp.StatusCode, m)
				}

				// POST, with the token in the header or in the body.
				if resp, m := h.userinfo(http.MethodPost, withBearer(at)); resp.StatusCode != http.StatusOK || m["sub"] != uid {
					t.Fatalf("POST with header: %d %v", resp.StatusCode, m)
				}
				if resp, m := h.userinfo(http.MethodPost, withForm(url.Values{"access_token": {at}})); resp.StatusCode != http.StatusOK || m["sub"] != uid {
					t.Fatalf("POST with body: %d %v", resp.StatusCode, m)
				}
				// The scheme name is case-insensitive (RFC 7235 §2.1).
				if resp, _ := h.userinfo(http.MethodGet, func(r *http.Request) { r.Header.Set("Authorization", "bearer "+at) }); resp.StatusCode != http.StatusOK {
					t.Fatalf("lower-case scheme: %d", resp.StatusCode)
				}

				// No token at all: a challenge without error (RFC 6750 §3.1).
				resp, _ = h.userinfo(http.MethodGet, nil)
				wantChallenge(t, resp, http.StatusUnauthorized, "")
				resp, _ = h.userinfo(http.MethodGet, func(r *http.Request) { r.SetBasicAuth(app.id, app.secret) })
				wantChallenge(t, resp, http.StatusUnauthorized, "")

				// Badly sent: 400 invalid_request.
				for name, prep := range map[string]func(*http.Request){
					"query": func(r *http.Request) { r.URL.RawQuery = "access_token=" + url.QueryEscape(at) },
					"query and header": func(r *http.Request) {
						r.URL.RawQuery = "access_token=" + url.QueryEscape(at)
						withBearer(at)(r)
					},
					"header and body": func(r *http.Request) {
						withForm(url.Values{"access_token": {at}})(r)
						withBearer(at)(r)
					},
					"repeated in body": func(r *http.Request) { withForm(url.Values{"access_token": {at, at}})(r) },
					"two headers": func(r *http.Request) {
						r.Header.Add("Authorization", "Bearer "+at)
						r.Header.Add("Authorization", "Bearer "+at)
					},
				} {
					method := http.MethodPost
					resp, _ := h.userinfo(method, prep)
					if resp.StatusCode != http.StatusBadRequest {
						t.Errorf("%s: %d, want 400", name, resp.StatusCode)
					}
					wantChallenge(t, resp, http.StatusBadRequest, "invalid_request")
				}

				// Invalid tokens: 401 invalid_token.
				cc := h.token(svc, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})["access_token"].(string)
				noOpenID := pw("read")["access_token"].(string)
				for name, tok := range map[string]string{
					"garbage": "not-a-token", "refresh token": full["refresh_token"].(string),
					"client credentials": cc, "tampered": at[:len(at)-2] + "xx", "empty body token": "",
				} {
					var resp *http.Response
					if tok == "" {
						resp, _ = h.userinfo(http.MethodPost, withForm(url.Values{"access_token": {""}}))
					} else {
						resp, _ = h.userinfo(http.MethodGet, withBearer(tok))
					}
					t.Logf("%s", name)
					wantChallenge(t, resp, http.StatusUnauthorized, "invalid_token")
				}
				resp, _ = h.userinfo(http.MethodGet, withBearer(noOpenID))
				wantChallenge(t, resp, http.StatusForbidden, "insufficient_scope")

				// Revoked: RFC 7009 on the refresh token revokes the grant.
				if resp, _ := h.form("/oauth2/revoke", app.id, app.secret, url.Values{"token": {full["refresh_token"].(string)}}); resp.StatusCode != http.StatusOK {
					t.Fatalf("revoke: %d", resp.StatusCode)
				}
				resp, _ = h.userinfo(http.MethodGet, withBearer(at))
				wantChallenge(t, resp, http.StatusUnauthorized, "invalid_token")

				// Expired.
				later := pw("openid")["access_token"].(string)
				h.clock.advance(h.cfg.AccessTokenTTL + time.Minute)
				resp, _ = h.userinfo(http.MethodGet, withBearer(later))
				wantChallenge(t, resp, http.StatusUnauthorized, "invalid_token")

				// Deleted user.
				fresh := pw("openid")["access_token"].(string)
				if resp, _ := h.adminJSON(http.MethodDelete, "/admin/users/"+uid, nil); resp.StatusCode != http.StatusNoContent {
					t.Fatalf("delete user: %d", resp.StatusCode)
				}
				resp, _ = h.userinfo(http.MethodGet, withBearer(fresh))
				wantChallenge(t, resp, http.StatusUnauthorized, "invalid_token")
			})
		}
	})
}

// Browser apps call userinfo from any origin with a bearer token; the
// preflight allows the Authorization header and no cookies are involved.
func TestUserinfoCORS(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		req, _ := http.NewRequest(http.MethodOptions, h.public.URL+"/oauth2/userinfo", nil)
		req.Header.Set("Origin", "https://spa.example")
		req.Header.Set("Access-Control-Request-Method", "GET")
		req.Header.Set("Access-Control-Request-Headers", "authorization")
		resp, _ := h.do(req)
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") ||
			resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
		}
		resp, _ = h.userinfo(http.MethodGet, func(r *http.Request) { r.Header.Set("Origin", "https://spa.example") })
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") {
			t.Fatalf("error answer without CORS headers: %v", resp.Header)
		}
	})
}
