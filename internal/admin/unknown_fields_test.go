package admin

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

// Issue 13: `email` on a user or `logo_uri` on a client was dropped in
// silence and the call answered 201. Unknown fields are refused, 400 with
// invalid_client_metadata for clients and invalid_request for users, the
// description naming every one of them, and nothing is stored.
func TestUnknownFieldsRefused(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		svc, _, _ := service(t, b)
		mux := http.NewServeMux()
		NewAPI(svc, nil, clientsAdminToken, slog.New(slog.DiscardHandler)).Register(mux)
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		s := adminServer{t, srv.URL}
		existing, err := svc.CreateClient(context.Background(), &ClientMetadata{ClientName: "c", GrantTypes: []string{"client_credentials"}})
		if err != nil {
			t.Fatal(err)
		}

		cases := []struct {
			name, method, path, body, code string
			named                          []string
		}{
			{"client tos_uri", http.MethodPost, "/admin/clients", `{"grant_types":["client_credentials"],"tos_uri":"https://x/tos"}`, "invalid_client_metadata", []string{`"tos_uri"`}},
			{"client misspelt redirect", http.MethodPost, "/admin/clients", `{"grant_types":["authorization_code"],"redirect_uri":["https://a/cb"],"tos_uri":"x"}`, "invalid_client_metadata", []string{`"redirect_uri"`, `"tos_uri"`}},
			{"client replace", http.MethodPut, "/admin/clients/" + existing.ClientID, `{"grant_types":["client_credentials"],"contacts":["a@b"]}`, "invalid_client_metadata", []string{`"contacts"`}},
			{"user nickname", http.MethodPost, "/admin/users", `{"username":"ursula","password":"ursula-password-1","email":"u@example.com","nickname":"u"}`, "invalid_request", []string{`"nickname"`}},
			{"user patch", http.MethodPatch, "/admin/users/x", `{"name":"U","phone_number":"+1"}`, "invalid_request", []string{`"phone_number"`}},
			{"password with extra", http.MethodPut, "/admin/users/x/password", `{"password":"ursula-password-2","old_password":"x"}`, "invalid_request", []string{`"old_password"`}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				status, raw := s.admin(tc.method, tc.path, tc.body)
				wantAPIError(t, tc.name, status, raw, http.StatusBadRequest, tc.code)
				var e struct {
					Description string `json:"error_description"`
				}
				_ = json.Unmarshal(raw, &e)
				for _, n := range tc.named {
					if !strings.Contains(e.Description, n) {
						t.Errorf("description %q does not name %s", e.Description, n)
					}
				}
			})
		}
		if us, err := svc.ListUsers(context.Background()); err != nil || len(us) != 0 {
			t.Errorf("a refused user was stored: %v %v", us, err)
		}
		if cs, err := svc.ListClients(context.Background()); err != nil || len(cs) != 1 {
			t.Errorf("a refused client was stored: %d %v", len(cs), err)
		}

		// Known fields in any case, as encoding/json matches them, pass; so
		// does a client as GET answers it (client_id, client_id_issued_at).
		status, raw := s.admin(http.MethodGet, "/admin/clients/"+existing.ClientID, "")
		if status != http.StatusOK {
			t.Fatalf("get: %d %s", status, raw)
		}
		if status, raw := s.admin(http.MethodPut, "/admin/clients/"+existing.ClientID, string(raw)); status != http.StatusOK {
			t.Fatalf("replace with what GET answered: %d %s", status, raw)
		}
		if status, raw := s.admin(http.MethodPost, "/admin/users", `{"Username":"ursula","password":"ursula-password-1"}`); status != http.StatusCreated {
			t.Fatalf("user with a capitalised known field: %d %s", status, raw)
		}
	})
}
