package admin

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

// The OpenID Connect client metadata (issue 14) over the admin API: POST
// stores and answers it, GET answers it under its registered names, PUT
// replaces it (a field left out goes back to its default), and a value that
// breaks a rule is 400 invalid_client_metadata and changes nothing.
func TestClientsAPIOpenIDMetadata(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		svc, st, _ := service(t, b)
		mux := http.NewServeMux()
		NewAPI(svc, nil, clientsAdminToken, slog.New(slog.DiscardHandler)).Register(mux)
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		s := adminServer{t, srv.URL}

		// The answer read as a plain object, so that the JSON names are
		// what is checked, not the Go struct's.
		fields := func(raw []byte) map[string]any {
			t.Helper()
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("answer %s: %v", raw, err)
			}
			return m
		}

		status, raw := s.admin(http.MethodPost, "/admin/clients", `{"client_name":"rp","redirect_uris":["https://rp.example/cb"],
			"post_logout_redirect_uris":["https://rp.example/bye"],"id_token_signed_response_alg":"ES256",
			"backchannel_logout_uri":"https://rp.example/bcl","backchannel_logout_session_required":true}`)
		if status != http.StatusCreated {
			t.Fatalf("POST: %d %s", status, raw)
		}
		id, _ := fields(raw)["client_id"].(string)
		path := "/admin/clients/" + id
		want := map[string]any{"id_token_signed_response_alg": "ES256", "backchannel_logout_uri": "https://rp.example/bcl",
			"backchannel_logout_session_required": true, "post_logout_redirect_uris": []any{"https://rp.example/bye"}}
		for _, what := range []string{"POST", "GET"} {
			if what == "GET" {
				if status, raw = s.admin(http.MethodGet, path, ""); status != http.StatusOK {
					t.Fatalf("GET: %d %s", status, raw)
				}
			}
			got := fields(raw)
			for k, v := range want {
				if b1, _ := json.Marshal(got[k]); string(b1) != mustJSON(t, v) {
					t.Errorf("%s answered %s = %s, want %s", what, k, b1, mustJSON(t, v))
				}
			}
		}
		row := findClient(t, st, id)
		if row.IDTokenSignedResponseAlg != "ES256" || row.BackchannelLogoutURI != "https://rp.example/bcl" || !row.BackchannelLogoutSessionRequired {
			t.Errorf("stored %+v", row)
		}

		// PUT replaces: what it leaves out returns to the default.
		status, raw = s.admin(http.MethodPut, path, `{"client_name":"rp","redirect_uris":["https://rp.example/cb"],"id_token_signed_response_alg":"EdDSA"}`)
		if status != http.StatusOK {
			t.Fatalf("PUT: %d %s", status, raw)
		}
		got := fields(raw)
		if got["id_token_signed_response_alg"] != "EdDSA" || got["backchannel_logout_uri"] != nil || got["backchannel_logout_session_required"] != nil || got["post_logout_redirect_uris"] != nil {
			t.Errorf("PUT answered %s", raw)
		}
		status, raw = s.admin(http.MethodPut, path, `{"client_name":"rp","redirect_uris":["https://rp.example/cb"],"backchannel_logout_uri":"http://127.0.0.1:7000/bcl"}`)
		if got = fields(raw); status != http.StatusOK || got["id_token_signed_response_alg"] != "RS256" || got["backchannel_logout_uri"] != "http://127.0.0.1:7000/bcl" {
			t.Errorf("PUT without an algorithm: %d %s, want RS256", status, raw)
		}
		before := *findClient(t, st, id)

		refused := map[string]string{
			"alg none":              `{"redirect_uris":["https://rp.example/cb"],"id_token_signed_response_alg":"none"}`,
			"alg HS256":             `{"redirect_uris":["https://rp.example/cb"],"id_token_signed_response_alg":"HS256"}`,
			"alg not a string":      `{"redirect_uris":["https://rp.example/cb"],"id_token_signed_response_alg":256}`,
			"logout over http":      `{"redirect_uris":["https://rp.example/cb"],"backchannel_logout_uri":"http://rp.example/bcl"}`,
			"logout with fragment":  `{"redirect_uris":["https://rp.example/cb"],"backchannel_logout_uri":"https://rp.example/bcl#f"}`,
			"session, no logout":    `{"redirect_uris":["https://rp.example/cb"],"backchannel_logout_session_required":true}`,
			"session not a boolean": `{"redirect_uris":["https://rp.example/cb"],"backchannel_logout_uri":"https://rp.example/bcl","backchannel_logout_session_required":"yes"}`,
		}
		n := countClients(t, st)
		for name, body := range refused {
			status, raw := s.admin(http.MethodPost, "/admin/clients", body)
			wantAPIError(t, "POST, "+name, status, raw, http.StatusBadRequest, badMetadata)
			status, raw = s.admin(http.MethodPut, path, body)
			wantAPIError(t, "PUT, "+name, status, raw, http.StatusBadRequest, badMetadata)
		}
		after := findClient(t, st, id)
		if after.IDTokenSignedResponseAlg != before.IDTokenSignedResponseAlg || after.BackchannelLogoutURI != before.BackchannelLogoutURI ||
			after.BackchannelLogoutSessionRequired != before.BackchannelLogoutSessionRequired || !after.UpdatedAt.Equal(before.UpdatedAt) {
			t.Errorf("a refused PUT changed the client: %+v, was %+v", after, before)
		}
		if m := countClients(t, st); m != n {
			t.Errorf("refused registrations were stored: %d clients, then %d", n, m)
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
