package admin

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

// TestScopeAPI: PUT creates (201) then replaces (200), GET and the list
// answer it, DELETE forgets it (204, then 404); bad names and bodies are
// 400 invalid_request, never a 500, and change nothing.
func TestScopeAPI(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		svc, _, _ := service(t, b)
		mux := http.NewServeMux()
		NewAPI(svc, nil, clientsAdminToken, slog.New(slog.DiscardHandler)).Register(mux)
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		s := adminServer{t, srv.URL}

		if status, raw := s.admin(http.MethodPut, "/admin/scopes/invoices:read", `{"description":"Read your invoices"}`); status != http.StatusCreated {
			t.Fatalf("first PUT: %d %s", status, raw)
		}
		status, raw := s.admin(http.MethodPut, "/admin/scopes/invoices:read", `{"description":"  Read and download your invoices "}`)
		var sc ScopeInfo
		if err := json.Unmarshal(raw, &sc); status != http.StatusOK || err != nil || sc.Name != "invoices:read" || sc.Description != "Read and download your invoices" {
			t.Fatalf("second PUT: %d %s", status, raw)
		}
		if status, raw := s.admin(http.MethodGet, "/admin/scopes/invoices:read", ""); status != http.StatusOK || !strings.Contains(string(raw), "Read and download") {
			t.Errorf("GET: %d %s", status, raw)
		}
		var list []ScopeInfo
		status, raw = s.admin(http.MethodGet, "/admin/scopes", "")
		if err := json.Unmarshal(raw, &list); status != http.StatusOK || err != nil || len(list) != 1 {
			t.Errorf("list: %d %s", status, raw)
		}

		for _, tc := range []struct {
			name, method, path, body string
			status                   int
			code                     string
		}{
			{"no description", http.MethodPut, "/admin/scopes/x", `{}`, 400, "invalid_request"},
			{"blank description", http.MethodPut, "/admin/scopes/x", `{"description":"   "}`, 400, "invalid_request"},
			{"control characters", http.MethodPut, "/admin/scopes/x", `{"description":"a\u0000b"}`, 400, "invalid_request"},
			{"too long", http.MethodPut, "/admin/scopes/x", `{"description":"` + strings.Repeat("é", 301) + `"}`, 400, "invalid_request"},
			{"not JSON", http.MethodPut, "/admin/scopes/x", `description=x`, 400, "invalid_request"},
			{"wrong type", http.MethodPut, "/admin/scopes/x", `{"description":7}`, 400, "invalid_request"},
			{"unknown field", http.MethodPut, "/admin/scopes/x", `{"description":"x","title":"y"}`, 400, "invalid_request"},
			{"name with a quote", http.MethodPut, `/admin/scopes/a"b`, `{"description":"x"}`, 400, "invalid_request"},
			{"name with a space", http.MethodPut, "/admin/scopes/a%20b", `{"description":"x"}`, 400, "invalid_request"},
			{"non-ASCII name", http.MethodPut, "/admin/scopes/%C3%A9", `{"description":"x"}`, 400, "invalid_request"},
			{"long name", http.MethodPut, "/admin/scopes/" + strings.Repeat("a", 129), `{"description":"x"}`, 400, "invalid_request"},
			{"built-in scope", http.MethodPut, "/admin/scopes/email", `{"description":"x"}`, 400, "invalid_request"},
			{"GET bad name", http.MethodGet, "/admin/scopes/a%5Cb", "", 400, "invalid_request"},
			{"GET unknown", http.MethodGet, "/admin/scopes/nothing", "", 404, "not_found"},
			{"DELETE unknown", http.MethodDelete, "/admin/scopes/nothing", "", 404, "not_found"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, raw := s.admin(tc.method, tc.path, tc.body)
				wantAPIError(t, tc.name, status, raw, tc.status, tc.code)
			})
		}
		if status, _, _ := s.do(http.MethodPut, "/admin/scopes/y", "", `{"description":"y"}`); status != http.StatusUnauthorized {
			t.Errorf("PUT without the admin token: %d", status)
		}
		if status, raw := s.admin(http.MethodDelete, "/admin/scopes/invoices:read", ""); status != http.StatusNoContent {
			t.Errorf("DELETE: %d %s", status, raw)
		}
		if status, raw := s.admin(http.MethodGet, "/admin/scopes", ""); status != http.StatusOK || strings.TrimSpace(string(raw)) != "[]" {
			t.Errorf("list after delete: %d %s", status, raw)
		}
	})
}

// TestClientBrandingMetadata: logo_uri and client_uri are stored and
// answered; anything but https (or http to a loopback host) is refused.
func TestClientBrandingMetadata(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		svc, _, _ := service(t, b)
		mux := http.NewServeMux()
		NewAPI(svc, nil, clientsAdminToken, slog.New(slog.DiscardHandler)).Register(mux)
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		s := adminServer{t, srv.URL}
		const base = `{"grant_types":["authorization_code"],"redirect_uris":["https://app.example/cb"],`
		status, raw := s.admin(http.MethodPost, "/admin/clients", base+`"logo_uri":"https://app.example/logo.png","client_uri":"http://127.0.0.1:3000/"}`)
		var md ClientMetadata
		if err := json.Unmarshal(raw, &md); status != http.StatusCreated || err != nil || md.LogoURI != "https://app.example/logo.png" || md.ClientURI != "http://127.0.0.1:3000/" {
			t.Fatalf("create: %d %s", status, raw)
		}
		if got, err := svc.GetClient(t.Context(), md.ClientID); err != nil || got.LogoURI != md.LogoURI || got.ClientURI != md.ClientURI {
			t.Errorf("get: %+v %v", got, err)
		}
		for _, bad := range []string{
			`"logo_uri":"javascript:alert(1)"`, `"logo_uri":"data:image/png;base64,AAAA"`, `"client_uri":"http://app.example/"`,
			`"client_uri":"/relative"`, `"logo_uri":"https://user:pw@app.example/l.png"`, `"client_uri":"https://app.example/#x"`,
			`"logo_uri":"https://app.example;script-src/l.png"`,
		} {
			if status, raw := s.admin(http.MethodPost, "/admin/clients", base+bad+`}`); status != http.StatusBadRequest || !strings.Contains(string(raw), "invalid_client_metadata") {
				t.Errorf("%s: %d %s", bad, status, raw)
			}
		}
	})
}
