package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"github.com/ory/fosite"
)

// Every rule CreateUser applies, each with what it answers: nil, a 400
// (*InputError) or a 409 (ErrUsernameTaken). A refused user is not stored.
func TestCreateUserRules(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		svc, st, _ := service(t, b)
		ctx := context.Background()
		if _, err := svc.CreateUser(ctx, "taken", "password-1"); err != nil {
			t.Fatal(err)
		}
		const (
			ok       = ""
			badInput = "input"
			conflict = "conflict"
		)
		cases := []struct {
			name, username, password string
			want                     string
			stored                   string // the username kept, when accepted
		}{
			{"plain", "alice", "password-1", ok, "alice"},
			{"trimmed", "  \tbob\n ", "password-1", ok, "bob"},
			{"128 characters", strings.Repeat("c", 128), "password-1", ok, strings.Repeat("c", 128)},
			{"email-like", "dora@example.com", "password-1", ok, "dora@example.com"},
			{"8-byte password", "erin", "12345678", ok, "erin"},
			{"8 bytes in 4 characters", "fay", "éééé", ok, "fay"},
			{"1024-byte password", "gus", strings.Repeat("p", 1024), ok, "gus"},
			{"empty username", "", "password-1", badInput, ""},
			{"blank username", " \t ", "password-1", badInput, ""},
			{"129 characters", strings.Repeat("c", 129), "password-1", badInput, ""},
			{"space inside", "a b", "password-1", badInput, ""},
			{"tab inside", "a\tb", "password-1", badInput, ""},
			{"newline inside", "a\nb", "password-1", badInput, ""},
			{"no-break space inside", "a\u00a0b", "password-1", badInput, ""},
			{"NUL", "a\x00b", "password-1", badInput, ""},
			{"DEL", "a\x7fb", "password-1", badInput, ""},
			{"escape sequence", "a\x1b[31mb", "password-1", badInput, ""},
			{"invalid UTF-8", "a\xffb", "password-1", badInput, ""},
			{"7-byte password", "hal", "1234567", badInput, ""},
			{"empty password", "ida", "", badInput, ""},
			{"1025-byte password", "jon", strings.Repeat("p", 1025), badInput, ""},
			{"duplicate", "taken", "password-2", conflict, ""},
			{"duplicate once trimmed", " taken ", "password-2", conflict, ""},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before, _ := st.ListUsers(ctx)
				u, err := svc.CreateUser(ctx, tc.username, tc.password)
				after, _ := st.ListUsers(ctx)
				switch tc.want {
				case ok:
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					if u.Username != tc.stored || u.ID == "" || u.CreatedAt.IsZero() {
						t.Fatalf("got %+v, want username %q with an ID and a creation time", u, tc.stored)
					}
					row, err := st.FindUser(ctx, u.ID)
					if err != nil || row.Username != tc.stored {
						t.Fatalf("stored %+v, %v", row, err)
					}
					return
				case badInput:
					var ie *InputError
					if !errors.As(err, &ie) || ie.Description == "" {
						t.Fatalf("got %v, want an *InputError", err)
					}
				case conflict:
					if !errors.Is(err, ErrUsernameTaken) {
						t.Fatalf("got %v, want ErrUsernameTaken", err)
					}
				}
				if len(after) != len(before) {
					t.Fatal("a refused user was stored")
				}
			})
		}
	})
}

// The password is stored only as argon2id and never as itself; IDs are
// hex so that none starts with '-' and reads as a flag on the command line.
func TestUserPasswordHash(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		svc, st, _ := service(t, b)
		ctx := context.Background()
		const password = "correct horse battery staple"
		u, err := svc.CreateUser(ctx, "kim", password)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(u.ID) {
			t.Errorf("ID %q is not 128 bits of hex", u.ID)
		}
		row, err := st.FindUser(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(row.PasswordHash, "$argon2id$") || strings.Contains(row.PasswordHash, password) {
			t.Fatalf("stored hash %q is not argon2id, or holds the password", row.PasswordHash)
		}
		if ok, err := secrets.VerifyPassword(row.PasswordHash, password); err != nil || !ok {
			t.Fatalf("the stored hash does not verify the password: %v", err)
		}
		other, _ := svc.CreateUser(ctx, "lee", password)
		if again, _ := st.FindUser(ctx, other.ID); again.PasswordHash == row.PasswordHash {
			t.Fatal("two users with one password got the same hash: no salt")
		}

		if err := svc.SetPassword(ctx, u.ID, "a new password"); err != nil {
			t.Fatal(err)
		}
		row, _ = st.FindUser(ctx, u.ID)
		if ok, _ := secrets.VerifyPassword(row.PasswordHash, password); ok {
			t.Fatal("the old password still verifies after SetPassword")
		}
		if ok, _ := secrets.VerifyPassword(row.PasswordHash, "a new password"); !ok {
			t.Fatal("the new password does not verify")
		}

		list, err := svc.ListUsers(ctx)
		if err != nil || len(list) != 2 || list[0].Username != "kim" || list[1].Username != "lee" {
			t.Fatalf("ListUsers = %+v, %v", list, err)
		}
		out, _ := json.Marshal(list)
		if bytes.Contains(out, []byte("argon2")) || bytes.Contains(out, []byte("password")) {
			t.Fatalf("ListUsers shows a hash: %s", out)
		}
	})
}

// holdings is what a user holds once signed in: a login session, and a
// grant with a refresh token and an opaque access token.
type holdings struct {
	cookie, refresh, access string
}

// signIn makes those holdings; tag tells apart two sign-ins of one user.
func signIn(t *testing.T, st *store.Store, userID, tag string) holdings {
	t.Helper()
	ctx := context.Background()
	key := userID + "-" + tag
	clientID := "client-" + key
	c := &store.Client{
		ID: clientID, SecretHash: []byte("hash"), GrantTypes: []string{"authorization_code", "refresh_token"},
		ResponseTypes: []string{"code"}, RedirectURIs: []string{"https://app.example/cb"},
		Scopes: []string{"openid", "offline_access"}, TokenEndpointAuthMethod: AuthSecretBasic,
	}
	if err := st.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	h := holdings{cookie: "cookie-" + key, refresh: "refresh-" + key, access: "access-" + key}
	now := time.Now()
	if err := st.CreateLoginSession(ctx, h.cookie, &store.LoginSession{UserID: userID, AuthTime: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	r := fosite.NewRequest()
	r.ID = "grant-" + key
	r.RequestedAt = now.UTC().Truncate(time.Second)
	r.Client = c
	r.GrantedScope = fosite.Arguments{"openid", "offline_access"}
	s := grantsession.New(userID)
	s.SetExpiresAt(fosite.AccessToken, now.Add(15*time.Minute))
	s.SetExpiresAt(fosite.RefreshToken, now.Add(time.Hour))
	r.Session = s
	if err := st.CreateAccessTokenSession(ctx, h.access, r); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateRefreshTokenSession(ctx, h.refresh, h.access, r); err != nil {
		t.Fatal(err)
	}
	return h
}

// revoked reports which of a user's holdings are gone, and fails the test
// on any answer that is neither "live" nor "revoked".
func revoked(t *testing.T, st *store.Store, userID string, h holdings) (login, refresh, access, jwt bool) {
	t.Helper()
	ctx := context.Background()
	_, err := st.TouchLoginSession(ctx, h.cookie, time.Hour)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("login session: %v", err)
	}
	login = err != nil
	_, err = st.GetRefreshTokenSession(ctx, h.refresh, grantsession.New(""))
	if err != nil && !errors.Is(err, fosite.ErrInactiveToken) {
		t.Fatalf("refresh token: %v (want it live or fosite.ErrInactiveToken)", err)
	}
	refresh = err != nil
	_, err = st.GetAccessTokenSession(ctx, h.access, grantsession.New(""))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("access token: %v", err)
	}
	access = err != nil
	// A JWT access token issued a minute ago, of some grant never revoked
	// on its own: only the subject's revocation can catch it.
	jwt, err = st.IsRevoked(ctx, "any-jti", "any-grant", userID, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return login, refresh, access, jwt
}

// Changing a password, revoking a user's tokens and deleting a user each
// end everything that user holds, and nothing anyone else holds.
func TestUserRevocation(t *testing.T) {
	ops := map[string]func(*Service, string) error{
		"set password":  func(s *Service, id string) error { return s.SetPassword(context.Background(), id, "new-password-1") },
		"revoke tokens": func(s *Service, id string) error { return s.RevokeUserTokens(context.Background(), id) },
		"delete":        func(s *Service, id string) error { return s.DeleteUser(context.Background(), id) },
	}
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		for name, op := range ops {
			t.Run(name, func(t *testing.T) {
				svc, st, _ := service(t, b)
				ctx := context.Background()
				victim, err := svc.CreateUser(ctx, "victim", "password-1")
				if err != nil {
					t.Fatal(err)
				}
				bystander, err := svc.CreateUser(ctx, "bystander", "password-1")
				if err != nil {
					t.Fatal(err)
				}
				vh, bh := signIn(t, st, victim.ID, "1"), signIn(t, st, bystander.ID, "1")
				if l, r, a, j := revoked(t, st, victim.ID, vh); l || r || a || j {
					t.Fatalf("revoked before anything happened: login %v refresh %v access %v jwt %v", l, r, a, j)
				}

				if err := op(svc, victim.ID); err != nil {
					t.Fatal(err)
				}
				if l, r, a, j := revoked(t, st, victim.ID, vh); !l || !r || !a || !j {
					t.Errorf("still live: login session %v, refresh token %v, access token %v, JWTs %v", !l, !r, !a, !j)
				}
				if l, r, a, j := revoked(t, st, bystander.ID, bh); l || r || a || j {
					t.Errorf("another user's holdings were revoked: login %v refresh %v access %v jwt %v", l, r, a, j)
				}
				// Tokens issued after the revocation (a fresh sign-in with
				// the new password) are not caught by it.
				if later, err := st.IsRevoked(ctx, "any-jti", "any-grant", victim.ID, time.Now().Add(time.Minute)); err != nil || later {
					t.Errorf("a token issued after the revocation is revoked: %v, %v", later, err)
				}
			})
		}
	})
}

// Operations on a user that does not exist answer ErrNotFound (404) and
// leave no revocation record behind; a bad password is reported first.
func TestUserNotFound(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		svc, st, _ := service(t, b)
		ctx := context.Background()
		for _, id := range []string{"nobody", "", "a\x00b", "a\xffb", strings.Repeat("x", 5000)} {
			for name, err := range map[string]error{
				"set password":  svc.SetPassword(ctx, id, "password-1"),
				"revoke tokens": svc.RevokeUserTokens(ctx, id),
				"delete":        svc.DeleteUser(ctx, id),
			} {
				if !errors.Is(err, store.ErrNotFound) {
					t.Errorf("%s of %q: %v, want ErrNotFound", name, id, err)
				}
			}
			if !utf8.ValidString(id) || strings.ContainsRune(id, 0) {
				// PostgreSQL cannot even be asked about these; the
				// store refuses them before any query.
				continue
			}
			if r, err := st.IsRevoked(ctx, "j", "g", id, time.Now().Add(-time.Minute)); err != nil || r {
				t.Errorf("a failed operation on %q recorded a revocation: %v, %v", id, r, err)
			}
		}
		var ie *InputError
		if err := svc.SetPassword(ctx, "nobody", "short"); !errors.As(err, &ie) {
			t.Errorf("a short password for an unknown user: %v, want *InputError", err)
		}
	})
}

// The revocation window outlives the access tokens issued before a
// revocation; unset, it assumes the default 15-minute lifetime.
func TestRevocationWindow(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return at }
	tests := []struct {
		name      string
		revokeFor time.Duration
		want      time.Duration
	}{
		{"unset: the default lifetime and a margin", 0, 16 * time.Minute},
		{"configured", time.Hour + time.Minute, time.Hour + time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewService(nil, nil, Policy{RevokeFor: tc.revokeFor, Now: clock})
			if got := s.revokeUntil().Sub(at); got != tc.want {
				t.Fatalf("window %v, want %v", got, tc.want)
			}
		})
	}
}

const testAdminToken = "admin-token-for-users-test-0123456789"

// syncBuffer is a log sink the server's goroutines write while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type apiClient struct {
	t   *testing.T
	url string
}

// call sends a request with the given Authorization header ("" = none) and
// returns the status, the headers and the body decoded as JSON (nil if empty).
func (c apiClient) call(method, path, auth, body string) (int, http.Header, any) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &v); err != nil {
			c.t.Fatalf("%s %s: body is not JSON: %q", method, path, raw)
		}
	}
	return resp.StatusCode, resp.Header, v
}

func (c apiClient) admin(method, path, body string) (int, any) {
	c.t.Helper()
	status, h, v := c.call(method, path, "Bearer "+testAdminToken, body)
	if h.Get("Cache-Control") != "no-store" {
		c.t.Errorf("%s %s: Cache-Control %q, want no-store", method, path, h.Get("Cache-Control"))
	}
	return status, v
}

// wantError checks an error body: {"error": code, "error_description": …}.
func wantError(t *testing.T, what string, status int, v any, wantStatus int, code string) {
	t.Helper()
	m, _ := v.(map[string]any)
	if status != wantStatus || m["error"] != code || m["error_description"] == "" || m["error_description"] == nil {
		t.Errorf("%s: %d %v, want %d with error %q and a description", what, status, v, wantStatus, code)
	}
}

func TestUsersAPI(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		clk := &fakeClock{now: time.Now().UTC()}
		svc, st, _ := serviceAt(t, b, clk.Now)
		logs := &syncBuffer{}
		mux := http.NewServeMux()
		NewAPI(svc, nil, testAdminToken, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))).Register(mux)
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		c := apiClient{t, srv.URL}
		const password, newPassword = "ursula-password-1", "ursula-password-2"

		// Without the admin token nothing is answered and nothing changes.
		routes := []struct{ method, path, body string }{
			{http.MethodPost, "/admin/users", `{"username":"mallory","password":"mallory-password"}`},
			{http.MethodGet, "/admin/users", ""},
			{http.MethodDelete, "/admin/users/x", ""},
			{http.MethodPut, "/admin/users/x/password", `{"password":"mallory-password"}`},
			{http.MethodPost, "/admin/users/x/revoke-tokens", ""},
		}
		for _, r := range routes {
			for name, auth := range map[string]string{
				"no header":   "",
				"wrong token": "Bearer not-the-admin-token",
				"basic":       "Basic " + testAdminToken,
				"bare token":  testAdminToken,
			} {
				status, h, v := c.call(r.method, r.path, auth, r.body)
				wantError(t, r.method+" "+r.path+" with "+name, status, v, http.StatusUnauthorized, "invalid_token")
				if !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s %s: 401 without WWW-Authenticate: Bearer", r.method, r.path)
				}
			}
		}
		if us, _ := st.ListUsers(context.Background()); len(us) != 0 {
			t.Fatalf("an unauthenticated call created %v", us)
		}

		status, v := c.admin(http.MethodPost, "/admin/users", `{"username":" ursula ","password":"`+password+`"}`)
		u, _ := v.(map[string]any)
		id, _ := u["id"].(string)
		if status != http.StatusCreated || id == "" || u["username"] != "ursula" {
			t.Fatalf("create: %d %v", status, v)
		}
		// The account and its profile (empty fields omitted), never the
		// password or its hash.
		for k := range u {
			if !slices.Contains([]string{"id", "username", "email_verified", "groups", "created_at", "updated_at"}, k) {
				t.Errorf("create answered field %q", k)
			}
		}

		invalid := []struct {
			name, method, path, body string
			status                   int
			code                     string
		}{
			{"duplicate", http.MethodPost, "/admin/users", `{"username":"ursula","password":"another-password"}`, http.StatusConflict, "conflict"},
			{"short password", http.MethodPost, "/admin/users", `{"username":"vera","password":"short"}`, http.StatusBadRequest, "invalid_request"},
			{"no password", http.MethodPost, "/admin/users", `{"username":"vera"}`, http.StatusBadRequest, "invalid_request"},
			{"space in username", http.MethodPost, "/admin/users", `{"username":"ve ra","password":"long-enough-1"}`, http.StatusBadRequest, "invalid_request"},
			{"control character", http.MethodPost, "/admin/users", `{"username":"ve\u0007ra","password":"long-enough-1"}`, http.StatusBadRequest, "invalid_request"},
			{"empty body", http.MethodPost, "/admin/users", ``, http.StatusBadRequest, "invalid_request"},
			{"not JSON", http.MethodPost, "/admin/users", `username=vera`, http.StatusBadRequest, "invalid_request"},
			{"wrong type", http.MethodPost, "/admin/users", `{"username":1,"password":"long-enough-1"}`, http.StatusBadRequest, "invalid_request"},
			{"trailing data", http.MethodPost, "/admin/users", `{"username":"vera","password":"long-enough-1"} {}`, http.StatusBadRequest, "invalid_request"},
			{"set short password", http.MethodPut, "/admin/users/" + id + "/password", `{"password":"short"}`, http.StatusBadRequest, "invalid_request"},
			{"set password, bad body", http.MethodPut, "/admin/users/" + id + "/password", `"long-enough-1"`, http.StatusBadRequest, "invalid_request"},
			{"set password of nobody", http.MethodPut, "/admin/users/nobody/password", `{"password":"long-enough-1"}`, http.StatusNotFound, "not_found"},
			{"revoke tokens of nobody", http.MethodPost, "/admin/users/nobody/revoke-tokens", ``, http.StatusNotFound, "not_found"},
			{"delete nobody", http.MethodDelete, "/admin/users/nobody", ``, http.StatusNotFound, "not_found"},
		}
		for _, tc := range invalid {
			status, v := c.admin(tc.method, tc.path, tc.body)
			wantError(t, tc.name, status, v, tc.status, tc.code)
		}

		status, v = c.admin(http.MethodGet, "/admin/users", "")
		list, _ := v.([]any)
		if status != http.StatusOK || len(list) != 1 || list[0].(map[string]any)["id"] != id {
			t.Fatalf("list: %d %v", status, v)
		}
		if out, _ := json.Marshal(v); bytes.Contains(out, []byte("argon2")) || bytes.Contains(out, []byte("password")) {
			t.Fatalf("list shows a hash: %s", out)
		}
		row, _ := st.FindUser(context.Background(), id)
		if ok, _ := secrets.VerifyPassword(row.PasswordHash, password); !ok {
			t.Fatal("the stored hash does not verify the password given at creation")
		}

		h := signIn(t, st, id, "1")
		if status, v := c.admin(http.MethodPut, "/admin/users/"+id+"/password", `{"password":"`+newPassword+`"}`); status != http.StatusNoContent || v != nil {
			t.Fatalf("set password: %d %v", status, v)
		}
		row, _ = st.FindUser(context.Background(), id)
		if ok, _ := secrets.VerifyPassword(row.PasswordHash, newPassword); !ok {
			t.Fatal("the new password does not verify")
		}
		if l, r, a, j := revoked(t, st, id, h); !l || !r || !a || !j {
			t.Errorf("a password change left live: login session %v, refresh %v, access %v, JWTs %v", !l, !r, !a, !j)
		}

		// Signed in again after the password change. The revocation must
		// catch JWTs issued since the first one too, so it moves forward.
		h = signIn(t, st, id, "2")
		clk.advance(time.Second)
		mark := clk.Now()
		if r, _ := st.IsRevoked(context.Background(), "j", "g", id, mark); r {
			t.Fatal("a token issued after the password change counts as revoked")
		}
		clk.advance(time.Second)
		if status, v := c.admin(http.MethodPost, "/admin/users/"+id+"/revoke-tokens", ""); status != http.StatusNoContent || v != nil {
			t.Fatalf("revoke tokens: %d %v", status, v)
		}
		if r, _ := st.IsRevoked(context.Background(), "j", "g", id, mark); !r {
			t.Error("revoke-tokens did not revoke JWTs issued after the previous revocation")
		}
		if l, r, a, j := revoked(t, st, id, h); !l || !r || !a || !j {
			t.Errorf("revoke-tokens left live: login session %v, refresh %v, access %v, JWTs %v", !l, !r, !a, !j)
		}

		if status, v := c.admin(http.MethodDelete, "/admin/users/"+id, ""); status != http.StatusNoContent || v != nil {
			t.Fatalf("delete: %d %v", status, v)
		}
		status, v = c.admin(http.MethodDelete, "/admin/users/"+id, "")
		wantError(t, "second delete", status, v, http.StatusNotFound, "not_found")
		if status, v := c.admin(http.MethodGet, "/admin/users", ""); status != http.StatusOK || len(v.([]any)) != 0 {
			t.Fatalf("list after delete: %d %v", status, v)
		}

		for _, p := range []string{password, newPassword, "mallory-password", "another-password", "long-enough-1"} {
			if strings.Contains(logs.String(), p) {
				t.Errorf("a password reached the log: %s", logs.String())
			}
		}
	})
}
