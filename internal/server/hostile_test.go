package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

// hostileValues are what an attacker or a broken client sends.
var hostileValues = map[string]string{
	"sql":          `' OR '1'='1'; DROP TABLE clients; --`,
	"nul":          "abc\x00def",
	"invalid utf8": "\xff\xfe\xfd",
	"huge":         strings.Repeat("A", 1_000_000),
	"control":      "\r\n\t\x1b[31m",
}

// Every endpoint answers hostile values with a clean 4xx (never a 5xx, a
// stack trace or a hang), and nothing is stored.
func TestHostileInput(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		svc := h.serviceClient("read")
		h.user("sam", "sam-password-1")
		pwd := passwordClient(h, true)
		pub := h.spa("https://app.example/cb", false, "openid")
		ctx := context.Background()
		countRows := func() (int, int) {
			cs, _ := h.store.ListClients(ctx)
			us, _ := h.store.ListUsers(ctx)
			return len(cs), len(us)
		}
		clientsBefore, usersBefore := countRows()
		tokensBefore := len(storetest.RawSignatures(t, h.store, "access_tokens"))

		check := func(t *testing.T, resp *http.Response, body []byte) {
			t.Helper()
			if resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Fatalf("status %d: %.200s", resp.StatusCode, body)
			}
			if bytes.Contains(body, []byte("goroutine ")) || bytes.Contains(body, []byte(".go:")) {
				t.Fatalf("internals leaked: %.300s", body)
			}
		}
		send := func(t *testing.T, method, u, contentType string, body []byte, auth func(*http.Request)) {
			t.Helper()
			req, _ := http.NewRequest(method, u, bytes.NewReader(body))
			if contentType != "" {
				req.Header.Set("Content-Type", contentType)
			}
			if auth != nil {
				auth(req)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(resp.Body)
			check(t, resp, buf.Bytes())
		}
		basic := func(c testClient) func(*http.Request) {
			return func(r *http.Request) { r.SetBasicAuth(c.id, c.secret) }
		}
		adminAuth := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+testAdminToken) }
		form := "application/x-www-form-urlencoded"

		for name, v := range hostileValues {
			t.Run(name, func(t *testing.T) {
				cases := []struct {
					name, method, url, ctype string
					body                     []byte
					auth                     func(*http.Request)
				}{
					{"token grant_type", "POST", h.public.URL + "/oauth2/token", form, []byte(url.Values{"grant_type": {v}}.Encode()), basic(svc)},
					{"token scope", "POST", h.public.URL + "/oauth2/token", form, []byte(url.Values{"grant_type": {"client_credentials"}, "scope": {v}}.Encode()), basic(svc)},
					{"token audience", "POST", h.public.URL + "/oauth2/token", form, []byte(url.Values{"grant_type": {"client_credentials"}, "audience": {v}}.Encode()), basic(svc)},
					{"token client id", "POST", h.public.URL + "/oauth2/token", form, []byte(url.Values{"grant_type": {"client_credentials"}, "client_id": {v}, "client_secret": {v}}.Encode()), nil},
					{"token basic auth", "POST", h.public.URL + "/oauth2/token", form, []byte("grant_type=client_credentials"), func(r *http.Request) { r.SetBasicAuth(v, v) }},
					{"password username", "POST", h.public.URL + "/oauth2/token", form, []byte(url.Values{"grant_type": {"password"}, "username": {v}, "password": {v}}.Encode()), basic(pwd)},
					{"refresh token", "POST", h.public.URL + "/oauth2/token", form, []byte(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {v}}.Encode()), basic(pwd)},
					{"code", "POST", h.public.URL + "/oauth2/token", form, []byte(url.Values{"grant_type": {"authorization_code"}, "code": {v}, "redirect_uri": {v}}.Encode()), basic(svc)},
					{"duplicated", "POST", h.public.URL + "/oauth2/token", form, []byte("grant_type=client_credentials&scope=read&scope=" + url.QueryEscape(v)), basic(svc)},
					{"introspect", "POST", h.public.URL + "/oauth2/introspect", form, []byte(url.Values{"token": {v}, "token_type_hint": {v}}.Encode()), func(r *http.Request) { r.SetBasicAuth(v, v) }},
					{"revoke", "POST", h.public.URL + "/oauth2/revoke", form, []byte(url.Values{"token": {v}}.Encode()), func(r *http.Request) { r.SetBasicAuth(v, v) }},
					{"authorize", "GET", h.public.URL + "/oauth2/authorize?" + url.Values{"client_id": {v}, "response_type": {"code"}, "redirect_uri": {v}}.Encode(), "", nil, nil},
					{"authorize POST", "POST", h.public.URL + "/oauth2/authorize", form, []byte(url.Values{"client_id": {v}, "response_type": {"code"}, "redirect_uri": {v}}.Encode()), nil},
					{"par", "POST", h.public.URL + "/oauth2/par", form, []byte(url.Values{"client_id": {v}, "response_type": {"code"}, "redirect_uri": {v}}.Encode()), func(r *http.Request) { r.SetBasicAuth(v, v) }},
					{"par public", "POST", h.public.URL + "/oauth2/par", form, []byte(url.Values{"client_id": {pub.id}, "response_type": {"code"}, "redirect_uri": {v}, "scope": {v}, "state": {v},
						"code_challenge": {v}, "code_challenge_method": {"S256"}, "nonce": {v}, "prompt": {v}, "max_age": {v}, "id_token_hint": {v}, "login_hint": {v}}.Encode()), nil},
					{"par raw", "POST", h.public.URL + "/oauth2/par", form, []byte(v), nil},
					{"authorize request_uri", "GET", h.public.URL + "/oauth2/authorize?" + url.Values{"client_id": {v}, "request_uri": {"urn:ietf:params:oauth:request_uri:" + v}}.Encode(), "", nil, nil},
					{"authorize POST raw", "POST", h.public.URL + "/oauth2/authorize", form, []byte(v), nil},
					{"userinfo bearer", "GET", h.public.URL + "/oauth2/userinfo", "", nil, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+url.QueryEscape(v)) }},
					{"userinfo body", "POST", h.public.URL + "/oauth2/userinfo", form, []byte(url.Values{"access_token": {v}}.Encode()), nil},
					{"userinfo raw body", "POST", h.public.URL + "/oauth2/userinfo", form, []byte(v), nil},
					{"login email", "POST", h.public.URL + "/login", form, []byte(url.Values{"username": {v + "@example.com"}, "password": {v}, "csrf_token": {v}, "return_to": {v}}.Encode()), nil},
					{"login", "POST", h.public.URL + "/login", form, []byte(url.Values{"username": {v}, "password": {v}, "csrf_token": {v}, "return_to": {v}}.Encode()), nil},
					{"consent", "POST", h.public.URL + "/consent", form, []byte(url.Values{"consent": {v}, "csrf_token": {v}, "return_to": {v}}.Encode()), nil},
					{"logout", "POST", h.public.URL + "/logout", form, []byte(url.Values{"csrf_token": {v}, "post_logout_redirect_uri": {v}}.Encode()), nil},
					{"admin client", "POST", h.admin.URL + "/admin/clients", "application/json", mustJSON(map[string]any{"client_name": v, "redirect_uris": []string{v}, "scope": v, "grant_types": []string{"authorization_code"}}), adminAuth},
					{"admin client id", "POST", h.admin.URL + "/admin/clients", "application/json", mustJSON(map[string]any{"client_id": v, "grant_types": []string{"client_credentials"}}), adminAuth},
					{"admin client name", "POST", h.admin.URL + "/admin/clients", "application/json", mustJSON(map[string]any{"client_name": v, "grant_types": []string{"client_credentials"}, "audience": []string{v}}), adminAuth},
					{"admin user", "POST", h.admin.URL + "/admin/users", "application/json", mustJSON(map[string]string{"username": v, "password": v}), adminAuth},
					{"admin raw", "POST", h.admin.URL + "/admin/clients", "application/json", []byte(v), adminAuth},
					{"admin path", "GET", h.admin.URL + "/admin/clients/" + url.PathEscape(v), "", nil, adminAuth},
				}
				for _, c := range cases {
					t.Run(c.name, func(t *testing.T) { send(t, c.method, c.url, c.ctype, c.body, c.auth) })
				}
			})
		}
		if c, u := countRows(); c != clientsBefore || u != usersBefore {
			t.Errorf("hostile input stored rows: clients %d→%d, users %d→%d", clientsBefore, c, usersBefore, u)
		}
		if n := len(storetest.RawSignatures(t, h.store, "access_tokens")); n != tokensBefore {
			t.Errorf("hostile input stored %d tokens", n-tokensBefore)
		}
	})
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
