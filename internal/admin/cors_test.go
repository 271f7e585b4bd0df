package admin

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

// TestClientCORSOriginsMetadata: allowed_cors_origins (issue 18) is stored
// as browsers send origins, shown in answers, absent when none were
// registered (the redirect URIs' origins apply) and [] when registered as
// none; anything that is not an origin is invalid_client_metadata.
func TestClientCORSOriginsMetadata(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		svc, _, _ := service(t, b)
		mux := http.NewServeMux()
		NewAPI(svc, nil, clientsAdminToken, slog.New(slog.DiscardHandler)).Register(mux)
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		s := adminServer{t, srv.URL}
		const base = `{"token_endpoint_auth_method":"none","redirect_uris":["https://app.example/cb"]`
		decode := func(raw []byte) (md ClientMetadata, fields map[string]any) {
			t.Helper()
			if err := json.Unmarshal(raw, &md); err != nil {
				t.Fatal(err)
			}
			_ = json.Unmarshal(raw, &fields)
			return md, fields
		}

		status, raw := s.admin(http.MethodPost, "/admin/clients", base+`,"allowed_cors_origins":["HTTPS://SPA.example:443/","http://localhost:5173","https://spa.example"]}`)
		md, _ := decode(raw)
		if status != http.StatusCreated || md.AllowedCORSOrigins == nil || !slices.Equal(*md.AllowedCORSOrigins, []string{"https://spa.example", "http://localhost:5173"}) {
			t.Fatalf("create: %d %s", status, raw)
		}
		if _, raw := s.admin(http.MethodGet, "/admin/clients/"+md.ClientID, ""); func() bool {
			got, _ := decode(raw)
			return got.AllowedCORSOrigins == nil || !slices.Equal(*got.AllowedCORSOrigins, []string{"https://spa.example", "http://localhost:5173"})
		}() {
			t.Errorf("GET does not show the origins: %s", raw)
		}
		status, raw = s.admin(http.MethodPut, "/admin/clients/"+md.ClientID, base+`,"allowed_cors_origins":[]}`)
		if got, fields := decode(raw); status != http.StatusOK || got.AllowedCORSOrigins == nil || len(*got.AllowedCORSOrigins) != 0 || fields["allowed_cors_origins"] == nil {
			t.Errorf("PUT []: %d %s", status, raw)
		}
		status, raw = s.admin(http.MethodPut, "/admin/clients/"+md.ClientID, base+`}`)
		if _, fields := decode(raw); status != http.StatusOK || fields["allowed_cors_origins"] != nil {
			t.Errorf("PUT without the field: %d %s; want it absent (derived)", status, raw)
		}
		if c, err := svc.store.FindClient(t.Context(), md.ClientID); err != nil || c.AllowedCORSOrigins != nil || !slices.Equal(c.CORSOrigins(), []string{"https://app.example"}) {
			t.Errorf("stored after PUT without the field: %+v %v", c, err)
		}

		for _, bad := range []string{`"https://app.example/spa"`, `"https://*.example.com"`, `"app.example"`, `"null"`, `"ftp://app.example"`,
			`"https://app.example?x"`, `"https://user@app.example"`, `"https://app.example:99999"`, `""`, `"https://app.example\u0000"`} {
			if status, raw := s.admin(http.MethodPost, "/admin/clients", base+`,"allowed_cors_origins":[`+bad+`]}`); status != http.StatusBadRequest || !strings.Contains(string(raw), "invalid_client_metadata") || !strings.Contains(string(raw), "allowed_cors_origins") {
				t.Errorf("%s: %d %s", bad, status, raw)
			}
		}
	})
}
