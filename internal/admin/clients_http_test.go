package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

const clientsAdminToken = "admin-token-for-clients-test-0123456789"

// logSink collects what the server's goroutines log while the test reads it.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type adminServer struct {
	t   *testing.T
	url string
}

// do sends a request with the given Authorization header ("" for none) and
// checks what every answer owes: a JSON body labelled application/json, or
// no body at all for 204.
func (s adminServer) do(method, path, auth, body string) (int, http.Header, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	if resp.StatusCode == http.StatusNoContent {
		if len(raw) != 0 {
			s.t.Errorf("%s %s: 204 with body %q", method, path, raw)
		}
		return resp.StatusCode, resp.Header, raw
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		s.t.Errorf("%s %s: %d with Content-Type %q, want application/json", method, path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !json.Valid(raw) {
		s.t.Errorf("%s %s: %d with a body that is not JSON: %q", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, resp.Header, raw
}

// admin is do with the admin token. Answers carry secrets, so no cache may
// keep them.
func (s adminServer) admin(method, path, body string) (int, []byte) {
	s.t.Helper()
	status, h, raw := s.do(method, path, "Bearer "+clientsAdminToken, body)
	if h.Get("Cache-Control") != "no-store" {
		s.t.Errorf("%s %s: Cache-Control %q, want no-store", method, path, h.Get("Cache-Control"))
	}
	return status, raw
}

// wantAPIError checks an error answer: {"error": code, "error_description": …}.
func wantAPIError(t *testing.T, what string, status int, raw []byte, wantStatus int, code string) {
	t.Helper()
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(raw, &e)
	if status != wantStatus || e.Error != code || e.Description == "" {
		t.Errorf("%s: %d %s, want %d with error %q and a description", what, status, raw, wantStatus, code)
	}
}

func decodeMetadata(t *testing.T, raw []byte) *ClientMetadata {
	t.Helper()
	var md ClientMetadata
	if err := json.Unmarshal(raw, &md); err != nil {
		t.Fatalf("answer %s: %v", raw, err)
	}
	return &md
}

// The admin client API end to end: the bearer token guards every route,
// registration answers the secret once, bad bodies are 400 and store
// nothing, and read, replace, rotate and delete answer as the contract says.
func TestClientsAPI(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		svc, st, h := service(t, b)
		ctx := context.Background()
		logs := &logSink{}
		mux := http.NewServeMux()
		NewAPI(svc, nil, clientsAdminToken, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))).Register(mux)
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		s := adminServer{t, srv.URL}
		var issued []string // every secret the API showed, for the log check

		// An existing client the unauthenticated calls aim at.
		victim, err := svc.CreateClient(ctx, &ClientMetadata{ClientName: "victim", GrantTypes: []string{"client_credentials"}})
		if err != nil {
			t.Fatal(err)
		}
		issued = append(issued, victim.ClientSecret)
		victimPath := "/admin/clients/" + victim.ClientID

		t.Run("no or wrong token", func(t *testing.T) {
			routes := []struct{ method, path, body string }{
				{http.MethodPost, "/admin/clients", `{"grant_types":["client_credentials"]}`},
				{http.MethodGet, "/admin/clients", ""},
				{http.MethodGet, victimPath, ""},
				{http.MethodPut, victimPath, `{"client_name":"mallory","token_endpoint_auth_method":"none","redirect_uris":["https://evil.example/cb"]}`},
				{http.MethodDelete, victimPath, ""},
				{http.MethodPost, victimPath + "/secret", ""},
			}
			auths := map[string]string{
				"no header":        "",
				"wrong token":      "Bearer not-the-admin-token",
				"token and more":   "Bearer " + clientsAdminToken + "x",
				"token, not basic": "Basic " + clientsAdminToken,
				"token, no scheme": clientsAdminToken,
				"scheme, no token": "Bearer ",
				"scheme run into":  "Bearer" + clientsAdminToken,
			}
			for _, r := range routes {
				for name, auth := range auths {
					status, hdr, raw := s.do(r.method, r.path, auth, r.body)
					wantAPIError(t, r.method+" "+r.path+" with "+name, status, raw, http.StatusUnauthorized, "invalid_token")
					if !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
						t.Errorf("%s %s with %s: WWW-Authenticate %q, want Bearer", r.method, r.path, name, hdr.Get("WWW-Authenticate"))
					}
					if strings.Contains(string(raw), victim.ClientID) {
						t.Errorf("%s %s with %s: answered about the client: %s", r.method, r.path, name, raw)
					}
				}
			}
			if n := countClients(t, st); n != 1 {
				t.Errorf("%d clients after unauthenticated calls, want 1", n)
			}
			row := findClient(t, st, victim.ClientID)
			if row.Name != "victim" || row.Public || h.Compare(ctx, row.SecretHash, []byte(victim.ClientSecret)) != nil {
				t.Errorf("an unauthenticated call changed the client: %+v", row)
			}
		})

		// RFC 7235 §2.1: the scheme is case-insensitive, so an HTTP library
		// that writes "bearer" is not locked out (issue 11 item 15).
		t.Run("scheme in any case", func(t *testing.T) {
			for _, scheme := range []string{"Bearer", "bearer", "BEARER", "bEaReR"} {
				status, _, raw := s.do(http.MethodGet, victimPath, scheme+" "+clientsAdminToken, "")
				if status != http.StatusOK {
					t.Errorf("%s: %d %s, want 200", scheme, status, raw)
				}
			}
		})

		// A confidential client, registered.
		status, raw := s.admin(http.MethodPost, "/admin/clients", `{"client_name":"billing","grant_types":["client_credentials"],"scope":"read write","trusted":true}`)
		if status != http.StatusCreated {
			t.Fatalf("POST /admin/clients: %d %s", status, raw)
		}
		created := decodeMetadata(t, raw)
		wantSecret(t, created)
		issued = append(issued, created.ClientSecret)
		if !generatedID.MatchString(created.ClientID) || created.ClientName != "billing" || created.Scope != "read write" || !created.Trusted {
			t.Errorf("POST answered %s", raw)
		}
		if err := h.Compare(ctx, findClient(t, st, created.ClientID).SecretHash, []byte(created.ClientSecret)); err != nil {
			t.Errorf("the stored hash does not verify the secret answered: %v", err)
		}
		path := "/admin/clients/" + created.ClientID

		t.Run("invalid registrations", func(t *testing.T) {
			before := countClients(t, st)
			cases := []struct{ name, body, code string }{
				{"empty body", ``, badMetadata},
				{"not JSON", `client_name=billing&grant_types=client_credentials`, badMetadata},
				{"trailing garbage", `{"grant_types":["client_credentials"]} garbage`, badMetadata},
				{"two objects", `{"grant_types":["client_credentials"]}{"grant_types":["client_credentials"]}`, badMetadata},
				{"redirect_uris a string", `{"token_endpoint_auth_method":"none","redirect_uris":"https://app.example/cb"}`, badMetadata},
				{"trusted a string", `{"grant_types":["client_credentials"],"trusted":"yes"}`, badMetadata},
				{"an array", `[{"grant_types":["client_credentials"]}]`, badMetadata},
				{"public with client_credentials", `{"token_endpoint_auth_method":"none","grant_types":["client_credentials"]}`, badMetadata},
				{"redirect with fragment", `{"redirect_uris":["https://app.example/cb#x"]}`, badRedirect},
				{"duplicate client_id", `{"client_id":"` + created.ClientID + `","grant_types":["client_credentials"]}`, badMetadata},
			}
			for _, tc := range cases {
				status, raw := s.admin(http.MethodPost, "/admin/clients", tc.body)
				wantAPIError(t, tc.name, status, raw, http.StatusBadRequest, tc.code)
			}
			if after := countClients(t, st); after != before {
				t.Errorf("refused registrations were stored: %d clients, then %d", before, after)
			}
			if err := h.Compare(ctx, findClient(t, st, created.ClientID).SecretHash, []byte(created.ClientSecret)); err != nil {
				t.Errorf("the refused duplicate changed the first client's secret: %v", err)
			}
		})

		t.Run("read", func(t *testing.T) {
			status, raw := s.admin(http.MethodGet, "/admin/clients", "")
			var list []*ClientMetadata
			if err := json.Unmarshal(raw, &list); status != http.StatusOK || err != nil || len(list) != 2 {
				t.Fatalf("GET /admin/clients: %d %s", status, raw)
			}
			wantNoSecret(t, "GET /admin/clients", list)
			var found bool
			for _, md := range list {
				found = found || md.ClientID == created.ClientID
			}
			if !found {
				t.Errorf("the list %s lacks %s", raw, created.ClientID)
			}

			status, raw = s.admin(http.MethodGet, path, "")
			if status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, status, raw)
			}
			got := decodeMetadata(t, raw)
			wantNoSecret(t, "GET "+path, got)
			if got.ClientID != created.ClientID || got.ClientName != "billing" || got.Scope != "read write" || !got.Trusted ||
				got.TokenEndpointAuthMethod != AuthSecretBasic {
				t.Errorf("GET %s answered %s", path, raw)
			}

			status, raw = s.admin(http.MethodGet, "/admin/clients/nobody", "")
			wantAPIError(t, "GET an unknown client", status, raw, http.StatusNotFound, "not_found")
		})

		t.Run("replace", func(t *testing.T) {
			hash := string(findClient(t, st, created.ClientID).SecretHash)
			status, raw := s.admin(http.MethodPut, path, `{"client_name":"billing v2","grant_types":["client_credentials"],"scope":"read"}`)
			if status != http.StatusOK {
				t.Fatalf("PUT %s: %d %s", path, status, raw)
			}
			got := decodeMetadata(t, raw)
			wantNoSecret(t, "PUT "+path, got)
			if got.ClientID != created.ClientID || got.ClientName != "billing v2" || got.Scope != "read" || got.Trusted {
				t.Errorf("PUT answered %s", raw)
			}
			row := findClient(t, st, created.ClientID)
			if row.Name != "billing v2" || string(row.SecretHash) != hash {
				t.Errorf("after PUT: name %q, secret hash changed %v", row.Name, string(row.SecretHash) != hash)
			}

			refused := []struct {
				name, path, body string
				status           int
				code             string
			}{
				{"client_id differs from the path", path, `{"client_id":"other","grant_types":["client_credentials"]}`, http.StatusBadRequest, badMetadata},
				{"not JSON", path, `{"client_name":`, http.StatusBadRequest, badMetadata},
				{"breaks a rule", path, `{"redirect_uris":["http://app.example/cb"]}`, http.StatusBadRequest, badRedirect},
				{"unknown client", "/admin/clients/nobody", `{"grant_types":["client_credentials"]}`, http.StatusNotFound, "not_found"},
			}
			for _, tc := range refused {
				status, raw := s.admin(http.MethodPut, tc.path, tc.body)
				wantAPIError(t, "PUT, "+tc.name, status, raw, tc.status, tc.code)
			}
			if row := findClient(t, st, created.ClientID); row.Name != "billing v2" || string(row.SecretHash) != hash {
				t.Errorf("a refused PUT changed the client: %+v", row)
			}
			if n := countClients(t, st); n != 2 {
				t.Errorf("%d clients after PUTs, want 2", n)
			}
		})

		t.Run("rotate", func(t *testing.T) {
			status, raw := s.admin(http.MethodPost, path+"/secret", "")
			if status != http.StatusOK {
				t.Fatalf("POST %s/secret: %d %s", path, status, raw)
			}
			rotated := decodeMetadata(t, raw)
			wantSecret(t, rotated)
			issued = append(issued, rotated.ClientSecret)
			if rotated.ClientID != created.ClientID || rotated.ClientSecret == created.ClientSecret {
				t.Errorf("rotation answered %s", raw)
			}
			row := findClient(t, st, created.ClientID)
			if h.Compare(ctx, row.SecretHash, []byte(created.ClientSecret)) == nil {
				t.Error("the old secret still verifies after rotation")
			}
			if err := h.Compare(ctx, row.SecretHash, []byte(rotated.ClientSecret)); err != nil {
				t.Errorf("the new secret does not verify: %v", err)
			}

			status, raw = s.admin(http.MethodPost, "/admin/clients", `{"token_endpoint_auth_method":"none","redirect_uris":["https://app.example/cb"]}`)
			if status != http.StatusCreated || bytes.Contains(raw, []byte(`"client_secret`)) {
				t.Fatalf("POST a public client: %d %s", status, raw)
			}
			pub := decodeMetadata(t, raw)
			status, raw = s.admin(http.MethodPost, "/admin/clients/"+pub.ClientID+"/secret", "")
			wantAPIError(t, "rotating a public client's secret", status, raw, http.StatusBadRequest, "invalid_request")
			if hash := findClient(t, st, pub.ClientID).SecretHash; len(hash) != 0 {
				t.Errorf("a refused rotation gave a public client hash %x", hash)
			}

			status, raw = s.admin(http.MethodPost, "/admin/clients/nobody/secret", "")
			wantAPIError(t, "rotating an unknown client's secret", status, raw, http.StatusNotFound, "not_found")
		})

		t.Run("delete", func(t *testing.T) {
			before := countClients(t, st)
			if status, raw := s.admin(http.MethodDelete, path, ""); status != http.StatusNoContent {
				t.Fatalf("DELETE %s: %d %s", path, status, raw)
			}
			status, raw := s.admin(http.MethodGet, path, "")
			wantAPIError(t, "GET a deleted client", status, raw, http.StatusNotFound, "not_found")
			status, raw = s.admin(http.MethodDelete, path, "")
			wantAPIError(t, "DELETE a deleted client", status, raw, http.StatusNotFound, "not_found")
			status, raw = s.admin(http.MethodPost, path+"/secret", "")
			wantAPIError(t, "rotating a deleted client's secret", status, raw, http.StatusNotFound, "not_found")
			if after := countClients(t, st); after != before-1 {
				t.Errorf("%d clients, then %d after DELETE", before, after)
			}
			if _, err := svc.GetClient(ctx, victim.ClientID); err != nil {
				t.Errorf("deleting one client touched another: %v", err)
			}
		})

		for _, secret := range issued {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("a client secret reached the log: %s", logs.String())
			}
		}
	})
}
