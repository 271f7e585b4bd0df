package server_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// Token, introspection, revocation, pushed and device authorization
// requests and device page forms of any shape get an answer below 500, and the token endpoint never issues a
// token to fuzzed credentials. Each input runs in process against a real
// SQLite store.
func FuzzEndpoints(f *testing.F) {
	for _, seed := range []struct{ path, auth, body string }{
		{"/oauth2/token", "Basic Y2xpZW50OnNlY3JldA==", "grant_type=client_credentials&scope=read"},
		{"/oauth2/token", "Basic %%%", "grant_type=password&username=a&password=b"},
		{"/oauth2/token", "", "grant_type=refresh_token&refresh_token=a.b.c&client_id=x"},
		{"/oauth2/token", "Bearer x", "grant_type=authorization_code&code=a.b&code_verifier=x"},
		{"/oauth2/introspect", "Basic Og==", "token=eyJhbGciOiJub25lIn0.e30.&token_type_hint=access_token"},
		{"/oauth2/revoke", "Basic YTpi", "token=x&token=y"},
		{"/oauth2/par", "", "client_id=x&response_type=code&redirect_uri=https%3A%2F%2Fa.example%2Fcb&code_challenge=x&code_challenge_method=S256"},
		{"/oauth2/device_authorization", "Basic Y2xpZW50OnNlY3JldA==", "scope=read&resource=https%3A%2F%2Fapi.example"},
		{"/oauth2/token", "", "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=abc&client_id=x"},
		{"/device", "", "csrf_token=x&user_code=BBBB-BBBB"},
	} {
		f.Add(seed.path, seed.auth, []byte(seed.body))
	}
	// One backend is enough: this tests HTTP handling, not storage.
	h := newHarness(f, storetest.Backends()[0], func(c *config.Config) { c.AccessTokenFormat = config.FormatJWT })
	h.serviceClient("read")
	handler := h.public.Config.Handler
	f.Fuzz(func(t *testing.T, path, auth string, body []byte) {
		switch path {
		case "/oauth2/token", "/oauth2/introspect", "/oauth2/revoke", "/oauth2/par", "/oauth2/device_authorization", "/device":
		default:
			path = "/oauth2/token"
		}
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s answered %d: %s", path, rec.Code, rec.Body.String())
		}
		if path == "/oauth2/token" && rec.Code == http.StatusOK {
			t.Fatalf("a token was issued to fuzzed credentials: %s", rec.Body.String())
		}
	})
}
