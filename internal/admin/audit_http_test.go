package admin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/requestid"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// auditServer is the admin API over a fresh database of b, on a fake
// clock, with a key manager and a request id per request as the server's
// middleware gives it.
func auditServer(t *testing.T, b storetest.Backend) (adminServer, *Service, *store.Store, *fakeClock, *logSink) {
	t.Helper()
	clock := &fakeClock{now: time.Now().UTC().Truncate(time.Second)}
	svc, st, _ := serviceAt(t, b, clock.Now)
	km, err := keys.New(context.Background(), st, secrets.ParseSystemSecrets("admin-test-secret-0123456789-0123456789"), keys.Options{Alg: "ES256", Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logSink{}
	mux := http.NewServeMux()
	NewAPI(svc, km, clientsAdminToken, slog.New(slog.NewJSONHandler(logs, nil))).Register(mux)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r.WithContext(requestid.NewContext(r.Context(), requestid.FromHeader(r.Header.Get(requestid.Header)))))
	}))
	t.Cleanup(srv.Close)
	return adminServer{t, srv.URL}, svc, st, clock, logs
}

// as sends a request with a bearer token.
func (s adminServer) as(token, method, path, body string) (int, []byte) {
	s.t.Helper()
	status, _, raw := s.do(method, path, "Bearer "+token, body)
	return status, raw
}

func answer[T any](t *testing.T, raw []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("answer %s: %v", raw, err)
	}
	return v
}

// auditOf lists the whole audit log through the API with the bootstrap
// token, newest first.
func auditOf(t *testing.T, s adminServer, query string) []AuditInfo {
	t.Helper()
	status, raw := s.admin(http.MethodGet, "/admin/audit?limit=1000&"+query, "")
	if status != http.StatusOK {
		t.Fatalf("GET /admin/audit?%s: %d %s", query, status, raw)
	}
	return answer[AuditPage](t, raw).Entries
}

// Named admin tokens end to end: two tokens work side by side, a revoked
// one is refused on its very next request, rotation retires the old value,
// an expired token is refused, the bootstrap token keeps working, and
// every change is in the audit log under the actor that made it.
func TestAdminTokensAPI(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s, _, _, clock, logs := auditServer(t, b)
		status, raw := s.admin(http.MethodPost, "/admin/tokens", `{"name":"ci"}`)
		if status != http.StatusCreated {
			t.Fatalf("create ci: %d %s", status, raw)
		}
		ci := answer[AdminTokenInfo](t, raw)
		random, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(ci.Token, adminTokenPrefix))
		if !strings.HasPrefix(ci.Token, adminTokenPrefix) || err != nil || len(random) != 32 || ci.ExpiresAt != nil {
			t.Fatalf("ci token %+v: want %s and 32 random bytes, no expiry", ci, adminTokenPrefix)
		}
		status, raw = s.admin(http.MethodPost, "/admin/tokens", `{"name":"ops","expires_in":3600}`)
		ops := answer[AdminTokenInfo](t, raw)
		if status != http.StatusCreated || ops.ExpiresAt == nil || !ops.ExpiresAt.Equal(clock.Now().Add(time.Hour)) {
			t.Fatalf("create ops: %d %s", status, raw)
		}
		for _, tok := range []string{ci.Token, ops.Token, clientsAdminToken} {
			if status, raw := s.as(tok, http.MethodGet, "/admin/clients", ""); status != http.StatusOK {
				t.Errorf("token %.12s…: %d %s", tok, status, raw)
			}
		}

		t.Run("bad requests", func(t *testing.T) {
			status, raw := s.as(ci.Token, http.MethodPost, "/admin/tokens", `{"name":"ops"}`)
			wantAPIError(t, "duplicate name", status, raw, http.StatusConflict, "conflict")
			for _, body := range []string{`{"name":"bootstrap"}`, `{"name":"cli:alice"}`, `{"name":""}`, `{"name":"x","expires_in":-1}`, `{"name":"x","scope":"all"}`} {
				status, raw := s.admin(http.MethodPost, "/admin/tokens", body)
				wantAPIError(t, body, status, raw, http.StatusBadRequest, "invalid_request")
			}
			status, raw = s.admin(http.MethodDelete, "/admin/tokens/nobody", "")
			wantAPIError(t, "revoke unknown", status, raw, http.StatusNotFound, "not_found")
		})

		status, raw = s.as(ci.Token, http.MethodGet, "/admin/tokens", "")
		if status != http.StatusOK || strings.Contains(string(raw), `"token"`) || strings.Contains(string(raw), hashAdminToken(ci.Token)) {
			t.Errorf("list shows a token or its hash: %s", raw)
		}
		if list := answer[[]AdminTokenInfo](t, raw); len(list) != 2 || list[0].Name != "ci" || list[1].Name != "ops" {
			t.Errorf("list: %s", raw)
		}

		// Revoked by another token: refused on the next request.
		if status, raw := s.as(ci.Token, http.MethodDelete, "/admin/tokens/ops", ""); status != http.StatusNoContent {
			t.Fatalf("revoke ops: %d %s", status, raw)
		}
		status, raw = s.as(ops.Token, http.MethodGet, "/admin/clients", "")
		wantAPIError(t, "revoked token", status, raw, http.StatusUnauthorized, "invalid_token")

		// Rotated by itself: the old value is refused, the new one works.
		status, raw = s.as(ci.Token, http.MethodPost, "/admin/tokens/ci/rotate", "")
		if status != http.StatusOK {
			t.Fatalf("rotate ci: %d %s", status, raw)
		}
		ci2 := answer[AdminTokenInfo](t, raw)
		if ci2.Token == "" || ci2.Token == ci.Token || ci2.RotatedAt == nil {
			t.Fatalf("rotated: %+v", ci2)
		}
		status, raw = s.as(ci.Token, http.MethodGet, "/admin/clients", "")
		wantAPIError(t, "old value after rotation", status, raw, http.StatusUnauthorized, "invalid_token")
		if status, raw := s.as(ci2.Token, http.MethodGet, "/admin/clients", ""); status != http.StatusOK {
			t.Errorf("new value: %d %s", status, raw)
		}

		// Expiry, on the injected clock; rotation keeps the lifetime.
		status, raw = s.admin(http.MethodPost, "/admin/tokens", `{"name":"short","expires_in":60}`)
		short := answer[AdminTokenInfo](t, raw)
		clock.advance(59 * time.Second)
		if status, raw := s.as(short.Token, http.MethodGet, "/admin/tokens", ""); status != http.StatusOK {
			t.Errorf("before expiry: %d %s", status, raw)
		}
		clock.advance(time.Second)
		status, raw = s.as(short.Token, http.MethodGet, "/admin/tokens", "")
		wantAPIError(t, "expired token", status, raw, http.StatusUnauthorized, "invalid_token")
		status, raw = s.admin(http.MethodPost, "/admin/tokens/short/rotate", "")
		if short2 := answer[AdminTokenInfo](t, raw); status != http.StatusOK || short2.ExpiresAt == nil || !short2.ExpiresAt.Equal(clock.Now().Add(time.Minute)) {
			t.Errorf("rotate an expired token: %d %s, want a fresh minute", status, raw)
		}

		if status, raw := s.admin(http.MethodGet, "/admin/tokens", ""); status != http.StatusOK {
			t.Errorf("bootstrap token after all that: %d %s", status, raw)
		}

		// The audit log: who did what, newest first.
		var got []string
		for _, e := range auditOf(t, s, "target=admin_token") {
			got = append(got, e.Actor+" "+e.Action+" "+e.TargetID)
			if e.RequestID == "" || e.At.IsZero() {
				t.Errorf("entry without request id or time: %+v", e)
			}
		}
		want := []string{
			"bootstrap admin_token.rotate short", "bootstrap admin_token.create short",
			"ci admin_token.rotate ci", "ci admin_token.revoke ops",
			"bootstrap admin_token.create ops", "bootstrap admin_token.create ci",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("audit entries:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if es := auditOf(t, s, "actor=ci"); len(es) != 2 {
			t.Errorf("actor=ci: %d entries, want 2", len(es))
		}

		// The admin log lines carry the actor.
		var revoked map[string]any
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `"admin token revoked"`) {
				revoked = answer[map[string]any](t, []byte(line))
			}
		}
		if revoked["actor"] != "ci" || revoked["admin_token"] != "ops" {
			t.Errorf("log line of the revocation: %v", revoked)
		}
		for _, tok := range []string{ci.Token, ci2.Token, ops.Token, short.Token, clientsAdminToken} {
			if strings.Contains(logs.String(), tok) {
				t.Errorf("a token is in the log")
			}
		}
	})
}

// Every kind of admin change writes one audit entry, in the same
// transaction, with before and after as they should be; failed changes
// write none; and no secret (client secret, password, its hash, key
// material, admin token or its hash) is in any entry.
func TestAuditEntriesOfEveryChange(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s, _, st, _, _ := auditServer(t, b)
		ctx := context.Background()
		var secretsShown []string
		post := func(path, body string, want int) []byte {
			t.Helper()
			status, raw := s.admin(http.MethodPost, path, body)
			if status != want {
				t.Fatalf("POST %s: %d %s", path, status, raw)
			}
			return raw
		}
		send := func(method, path, body string, want int) []byte {
			t.Helper()
			status, raw := s.admin(method, path, body)
			if status != want {
				t.Fatalf("%s %s: %d %s", method, path, status, raw)
			}
			return raw
		}

		md := decodeMetadata(t, post("/admin/clients", `{"client_id":"billing","client_name":"Billing","grant_types":["client_credentials"]}`, http.StatusCreated))
		secretsShown = append(secretsShown, md.ClientSecret)
		send(http.MethodPut, "/admin/clients/billing", `{"client_name":"Billing v2","grant_types":["client_credentials"]}`, http.StatusOK)
		md = decodeMetadata(t, post("/admin/clients/billing/secret", "", http.StatusOK))
		secretsShown = append(secretsShown, md.ClientSecret)
		send(http.MethodDelete, "/admin/clients/billing", "", http.StatusNoContent)

		const password, password2 = "first-password-123", "second-password-456"
		secretsShown = append(secretsShown, password, password2)
		u := answer[UserInfo](t, post("/admin/users", `{"username":"alice","password":"`+password+`","email":"alice@example.com"}`, http.StatusCreated))
		send(http.MethodPatch, "/admin/users/"+u.ID, `{"name":"Alice"}`, http.StatusOK)
		send(http.MethodPut, "/admin/users/"+u.ID+"/password", `{"password":"`+password2+`"}`, http.StatusNoContent)
		post("/admin/users/"+u.ID+"/revoke-tokens", "", http.StatusNoContent)
		send(http.MethodDelete, "/admin/users/"+u.ID+"/factors", "", http.StatusNoContent)
		send(http.MethodDelete, "/admin/users/"+u.ID, "", http.StatusNoContent)

		send(http.MethodPut, "/admin/scopes/invoices:read", `{"description":"Read invoices"}`, http.StatusCreated)
		send(http.MethodPut, "/admin/scopes/invoices:read", `{"description":"Read your invoices"}`, http.StatusOK)
		send(http.MethodDelete, "/admin/scopes/invoices:read", "", http.StatusNoContent)

		rotated := answer[keys.Info](t, post("/admin/keys/rotate", "", http.StatusOK))
		post("/admin/keys/"+rotated.KID+"/revoke", "", http.StatusOK)

		tok := answer[AdminTokenInfo](t, post("/admin/tokens", `{"name":"ci"}`, http.StatusCreated))
		tok2 := answer[AdminTokenInfo](t, post("/admin/tokens/ci/rotate", "", http.StatusOK))
		send(http.MethodDelete, "/admin/tokens/ci", "", http.StatusNoContent)
		secretsShown = append(secretsShown, tok.Token, tok2.Token, hashAdminToken(tok.Token), hashAdminToken(tok2.Token))

		// Refused changes leave no entry.
		before := len(auditOf(t, s, ""))
		s.admin(http.MethodPost, "/admin/clients", `{"grant_types":["bogus"]}`)
		s.admin(http.MethodDelete, "/admin/users/nobody", "")
		s.admin(http.MethodPut, "/admin/users/nobody/password", `{"password":"long-enough-password"}`)
		s.admin(http.MethodDelete, "/admin/scopes/nothing", "")
		if after := len(auditOf(t, s, "")); after != before {
			t.Errorf("refused changes wrote %d entries", after-before)
		}

		entries := auditOf(t, s, "")
		type shape struct{ action, target string }
		want := []struct {
			shape
			before, after bool
		}{
			{shape{ActionAdminTokenRevoke, "ci"}, true, false},
			{shape{ActionAdminTokenRotate, "ci"}, true, true},
			{shape{ActionAdminTokenCreate, "ci"}, false, true},
			{shape{ActionKeyRevoke, rotated.KID}, false, true},
			{shape{ActionKeyRotate, rotated.KID}, false, true},
			{shape{ActionScopeDelete, "invoices:read"}, true, false},
			{shape{ActionScopePut, "invoices:read"}, true, true},
			{shape{ActionScopePut, "invoices:read"}, false, true},
			{shape{ActionUserDelete, u.ID}, true, false},
			{shape{ActionUserResetFactors, u.ID}, true, true},
			{shape{ActionUserRevokeTokens, u.ID}, false, true},
			{shape{ActionUserSetPassword, u.ID}, false, true},
			{shape{ActionUserUpdate, u.ID}, true, true},
			{shape{ActionUserCreate, u.ID}, false, true},
			{shape{ActionClientDelete, "billing"}, true, false},
			{shape{ActionClientRotateSecret, "billing"}, false, true},
			{shape{ActionClientUpdate, "billing"}, true, true},
			{shape{ActionClientCreate, "billing"}, false, true},
		}
		if len(entries) != len(want) {
			t.Fatalf("%d entries, want %d: %+v", len(entries), len(want), entries)
		}
		for i, w := range want {
			e := entries[i]
			if (shape{e.Action, e.TargetID}) != w.shape || (e.Before != nil) != w.before || (e.After != nil) != w.after || e.Actor != "bootstrap" {
				t.Errorf("entry %d: %s %s by %s before=%s after=%s, want %v before %v after %v", i, e.Action, e.TargetID, e.Actor, e.Before, e.After, w.shape, w.before, w.after)
			}
		}
		// An update's before and after say what changed.
		compact := func(raw json.RawMessage) string {
			var buf bytes.Buffer
			_ = json.Compact(&buf, raw)
			return buf.String()
		}
		upd := entries[12]
		if !strings.Contains(compact(upd.After), `"name":"Alice"`) || strings.Contains(compact(upd.Before), `"name":"Alice"`) {
			t.Errorf("user update before %s after %s", upd.Before, upd.After)
		}
		if !strings.Contains(compact(entries[16].Before), `"client_name":"Billing"`) || !strings.Contains(compact(entries[16].After), `"client_name":"Billing v2"`) {
			t.Errorf("client update before %s after %s", entries[16].Before, entries[16].After)
		}

		// No secret anywhere, by value or by field name.
		all, err := json.Marshal(entries)
		if err != nil {
			t.Fatal(err)
		}
		for _, sec := range secretsShown {
			if sec != "" && strings.Contains(string(all), sec) {
				t.Errorf("the audit log contains a secret %.8s…", sec)
			}
		}
		for _, field := range []string{`"client_secret"`, `secret_hash`, `"password"`, `password_hash`, `"token"`, `token_hash`, `"d"`, `private`, `$argon2`} {
			if strings.Contains(strings.ToLower(string(all)), strings.ToLower(field)) {
				t.Errorf("the audit log has %s: %s", field, all)
			}
		}
		// And nothing of the rows' secrets: the stored hashes of the client
		// and the sealed private key.
		sealed, err := st.RawColumn(ctx, "signing_keys", "private_key")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range sealed {
			if len(k) > 16 && strings.Contains(string(all), k[:16]) {
				t.Error("the audit log contains sealed key material")
			}
		}
	})
}

// GET /admin/audit's filters and cursor, and its answers to bad ones.
func TestAuditListFilters(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s, _, _, clock, _ := auditServer(t, b)
		start := clock.Now()
		for i := range 5 {
			s.admin(http.MethodPut, fmt.Sprintf("/admin/scopes/s%d", i), `{"description":"d"}`)
			clock.advance(time.Minute)
		}
		if es := auditOf(t, s, "target=scope:s3"); len(es) != 1 || es[0].TargetID != "s3" {
			t.Errorf("target=scope:s3: %+v", es)
		}
		if es := auditOf(t, s, "target=client"); len(es) != 0 {
			t.Errorf("target=client: %+v", es)
		}
		if es := auditOf(t, s, "since="+url.QueryEscape(start.Add(2*time.Minute).Format(time.RFC3339))); len(es) != 3 || es[2].TargetID != "s2" {
			t.Errorf("since: %+v", es)
		}
		if es := auditOf(t, s, "actor=someone"); len(es) != 0 {
			t.Errorf("actor=someone: %+v", es)
		}
		var walked []string
		cursor := ""
		for range 5 {
			status, raw := s.admin(http.MethodGet, "/admin/audit?limit=2&cursor="+cursor, "")
			if status != http.StatusOK {
				t.Fatalf("page: %d %s", status, raw)
			}
			page := answer[AuditPage](t, raw)
			for _, e := range page.Entries {
				walked = append(walked, e.TargetID)
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		if strings.Join(walked, ",") != "s4,s3,s2,s1,s0" {
			t.Errorf("pages walked %v", walked)
		}
		for _, q := range []string{"limit=0", "limit=1001", "limit=x", "cursor=abc", "cursor=-3", "since=yesterday", "target=:x"} {
			status, raw := s.admin(http.MethodGet, "/admin/audit?"+q, "")
			wantAPIError(t, q, status, raw, http.StatusBadRequest, "invalid_request")
		}
		status, _, raw := s.do(http.MethodGet, "/admin/audit", "", "")
		wantAPIError(t, "no token", status, raw, http.StatusUnauthorized, "invalid_token")
	})
}
