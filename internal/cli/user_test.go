package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"github.com/ory/fosite"
)

// openTestStore opens the database the command line was pointed at, to check
// what it wrote.
func openTestStore(t *testing.T, environ []string) *store.Store {
	t.Helper()
	for _, kv := range environ {
		if u, ok := strings.CutPrefix(kv, "LATCHKEY_DATABASE_URL="); ok {
			return storetest.Open(t, u, store.Options{})
		}
	}
	t.Fatal("no LATCHKEY_DATABASE_URL in the environment")
	return nil
}

func storedHash(t *testing.T, st *store.Store, id string) string {
	t.Helper()
	u, err := st.FindUser(context.Background(), id)
	if err != nil {
		t.Fatalf("find user %s: %v", id, err)
	}
	return u.PasswordHash
}

func verifies(hash, password string) bool {
	ok, err := secrets.VerifyPassword(hash, password)
	return err == nil && ok
}

// The password is the first line of stdin, exactly: without its line
// ending, with any other spaces kept, and nothing of the lines after it.
// It shows up in neither output stream.
func TestUserCreatePasswordFromStdin(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		environ := migrated(t, b)
		st := openTestStore(t, environ)
		cases := []struct {
			name, stdin, password string
		}{
			{"newline", "first-password\n", "first-password"},
			{"only the first line", "second-password\nnot this\n", "second-password"},
			{"CRLF", "third-password\r\n", "third-password"},
			{"no line ending", "fourth-password", "fourth-password"},
			{"spaces kept", "  fifth password  \n", "  fifth password  "},
		}
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				username := "user" + string(rune('a'+i))
				r := mustSucceed(t, latchkey(t, environ, tc.stdin, "user", "create", username))
				u := decode[map[string]any](t, r)
				id, _ := u["id"].(string)
				if id == "" || u["username"] != username {
					t.Fatalf("user create: %v", r)
				}
				if strings.Contains(r.stdout+r.stderr, strings.TrimSpace(tc.password)) {
					t.Fatalf("the password was printed: %v", r)
				}
				hash := storedHash(t, st, id)
				if !strings.HasPrefix(hash, "$argon2id$") || !verifies(hash, tc.password) {
					t.Fatalf("stored hash %q does not verify %q", hash, tc.password)
				}
				if tc.stdin != tc.password && verifies(hash, tc.stdin) {
					t.Fatal("the stored password holds its line ending or later lines")
				}
			})
		}
	})
}

// Refused creations exit 1 with the reason on stderr and store nothing. A
// password on the command line is refused too: argv is visible to every
// user of the machine.
func TestUserCreateRefused(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		environ := migrated(t, b)
		mustSucceed(t, latchkey(t, environ, "taken-password\n", "user", "create", "taken"))
		cases := []struct {
			name, stdin string
			args        []string
			stderrHas   string
		}{
			{"empty stdin", "", []string{"nadia"}, "stdin"},
			{"empty first line", "\nnadia-password\n", []string{"nadia"}, "stdin"},
			{"password in argv", "", []string{"nadia", "nadia-password"}, "arg"},
			{"password in argv and stdin", "nadia-password\n", []string{"nadia", "nadia-password"}, "arg"},
			{"no username", "nadia-password\n", nil, "arg"},
			{"short password", "short\n", []string{"nadia"}, "password must be"},
			{"space in username", "nadia-password\n", []string{"na dia"}, "username"},
			{"duplicate", "another-password\n", []string{"taken"}, "taken"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				mustFail(t, latchkey(t, environ, tc.stdin, append([]string{"user", "create"}, tc.args...)...), tc.stderrHas)
				list := decode[[]map[string]any](t, mustSucceed(t, latchkey(t, environ, "", "user", "list")))
				if len(list) != 1 || list[0]["username"] != "taken" {
					t.Fatalf("a refused creation changed the users: %v", list)
				}
			})
		}
	})
}

// set-password replaces the hash and signs the user out everywhere: the
// login session is gone, the refresh token inactive, JWTs revoked. Other
// users keep theirs.
func TestUserSetPasswordRevokes(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		environ := migrated(t, b)
		st := openTestStore(t, environ)
		ctx := context.Background()
		create := func(name string) string {
			u := decode[map[string]any](t, mustSucceed(t, latchkey(t, environ, name+"-password-1\n", "user", "create", name)))
			return u["id"].(string)
		}
		olga, pete := create("olga"), create("pete")
		c := &store.Client{
			ID: "cli-test-client", SecretHash: []byte("hash"), GrantTypes: []string{"authorization_code", "refresh_token"},
			ResponseTypes: []string{"code"}, RedirectURIs: []string{"https://app.example/cb"},
			Scopes: []string{"openid", "offline_access"}, TokenEndpointAuthMethod: "client_secret_basic",
		}
		if err := st.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		for _, id := range []string{olga, pete} {
			if err := st.CreateLoginSession(ctx, "cookie-"+id, &store.LoginSession{UserID: id, AuthTime: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			r := fosite.NewRequest()
			r.ID = "grant-" + id
			r.RequestedAt = now.UTC().Truncate(time.Second)
			r.Client = c
			r.GrantedScope = fosite.Arguments{"openid", "offline_access"}
			s := grantsession.New(id)
			s.SetExpiresAt(fosite.RefreshToken, now.Add(time.Hour))
			r.Session = s
			if err := st.CreateRefreshTokenSession(ctx, "refresh-"+id, "", r); err != nil {
				t.Fatal(err)
			}
		}

		r := mustSucceed(t, latchkey(t, environ, "olga-password-2\n", "user", "set-password", olga))
		if strings.Contains(r.stdout+r.stderr, "olga-password") {
			t.Fatalf("the password was printed: %v", r)
		}
		hash := storedHash(t, st, olga)
		if !verifies(hash, "olga-password-2") || verifies(hash, "olga-password-1") {
			t.Fatal("set-password did not replace the password")
		}

		if _, err := st.GetRefreshTokenSession(ctx, "refresh-"+olga, grantsession.New("")); !errors.Is(err, fosite.ErrInactiveToken) {
			t.Errorf("refresh token after set-password: %v, want fosite.ErrInactiveToken", err)
		}
		if _, err := st.TouchLoginSession(ctx, "cookie-"+olga, time.Hour); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("login session after set-password: %v, want ErrNotFound", err)
		}
		// The command is another instance: its revocation reaches st's
		// in-memory deny-list (PostgreSQL) within the notification latency,
		// under a millisecond; asked again for up to a second.
		for deadline := time.Now().Add(time.Second); ; time.Sleep(time.Millisecond) {
			revoked, err := st.IsRevoked(ctx, "any-jti", "any-grant", olga, time.Now().Add(-time.Minute))
			if err == nil && revoked {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("JWTs issued before set-password are not revoked: %v, %v", revoked, err)
				break
			}
		}

		if _, err := st.GetRefreshTokenSession(ctx, "refresh-"+pete, grantsession.New("")); err != nil {
			t.Errorf("another user's refresh token: %v", err)
		}
		if _, err := st.TouchLoginSession(ctx, "cookie-"+pete, time.Hour); err != nil {
			t.Errorf("another user's login session: %v", err)
		}
		if !verifies(storedHash(t, st, pete), "pete-password-1") {
			t.Error("another user's password changed")
		}

		// A refused new password changes nothing.
		mustFail(t, latchkey(t, environ, "short\n", "user", "set-password", olga), "password must be")
		mustFail(t, latchkey(t, environ, "olga-password-3", "user", "set-password", olga, "olga-password-3"), "arg")
		if !verifies(storedHash(t, st, olga), "olga-password-2") {
			t.Error("a refused set-password changed the password")
		}
	})
}

// Unknown users are named in the error; delete answers the ID it removed.
func TestUserUnknownAndDelete(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		environ := migrated(t, b)
		mustFail(t, latchkey(t, environ, "", "user", "delete", "no-such-user"), "no-such-user", "not_found")
		mustFail(t, latchkey(t, environ, "new-password-1\n", "user", "set-password", "no-such-user"), "no-such-user", "not_found")
		mustFail(t, latchkey(t, environ, "", "user", "delete"), "arg")

		u := decode[map[string]any](t, mustSucceed(t, latchkey(t, environ, "quinn-password\n", "user", "create", "quinn")))
		id := u["id"].(string)
		if del := decode[map[string]string](t, mustSucceed(t, latchkey(t, environ, "", "user", "delete", id))); del["deleted"] != id {
			t.Fatalf("user delete: %v", del)
		}
		mustFail(t, latchkey(t, environ, "", "user", "delete", id), id)
		// The name is free again.
		mustSucceed(t, latchkey(t, environ, "quinn-password\n", "user", "create", "quinn"))
	})
}

// User commands make no secrets, so they run without LATCHKEY_SECRET and
// LATCHKEY_ADMIN_TOKEN, as migrate does.
func TestUserCommandsNeedOnlyTheDatabase(t *testing.T) {
	url := storetest.SQLiteURL(t)
	environ := []string{"LATCHKEY_DATABASE_URL=" + url}
	mustSucceed(t, latchkey(t, environ, "", "migrate", "up"))
	u := decode[map[string]any](t, mustSucceed(t, latchkey(t, environ, "rita-password\n", "user", "create", "rita")))
	mustSucceed(t, latchkey(t, environ, "", "user", "list"))
	mustSucceed(t, latchkey(t, environ, "rita-password-2\n", "user", "set-password", u["id"].(string)))
	mustSucceed(t, latchkey(t, environ, "", "user", "delete", u["id"].(string)))
}

// `user create` takes the profile from flags (--group repeated), and `user
// get` shows it; a bad value is refused with the rule it broke and nothing
// is stored.
func TestUserCreateProfileAndGet(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		environ := migrated(t, b)
		r := mustSucceed(t, latchkey(t, environ, "sara-password\n", "user", "create", "sara",
			"--email", "sara@example.com", "--email-verified", "--name", "Sara Ölund", "--given-name", "Sara",
			"--family-name", "Ölund", "--picture", "https://img.example/sara.png", "--locale", "sv_SE",
			"--group", "admins", "--group", "ops team"))
		id, _ := decode[map[string]any](t, r)["id"].(string)
		got := decode[map[string]any](t, mustSucceed(t, latchkey(t, environ, "", "user", "get", id)))
		want := map[string]any{
			"id": id, "username": "sara", "email": "sara@example.com", "email_verified": true, "name": "Sara Ölund",
			"given_name": "Sara", "family_name": "Ölund", "picture": "https://img.example/sara.png", "locale": "sv-SE",
			"groups": "[admins ops team]",
		}
		for k, v := range want {
			if fmt.Sprint(got[k]) != fmt.Sprint(v) {
				t.Errorf("user get: %s = %v, want %v", k, got[k], v)
			}
		}
		mustFail(t, latchkey(t, environ, "", "user", "get", "no-such-user"), "no-such-user", "not_found")
		mustFail(t, latchkey(t, environ, "", "user", "get"), "arg")

		for _, tc := range []struct {
			name      string
			flags     []string
			stderrHas string
		}{
			{"email with display name", []string{"--email", "Tom <tom@example.com>"}, "email"},
			{"http picture", []string{"--picture", "http://img.example/t.png"}, "picture"},
			{"bad locale", []string{"--locale", "not a locale"}, "locale"},
			{"duplicate group", []string{"--group", "a", "--group", "a"}, "group"},
			{"control character in name", []string{"--name", "T\x1b[2J"}, "name"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				mustFail(t, latchkey(t, environ, "tom-password\n", append([]string{"user", "create", "tom"}, tc.flags...)...), tc.stderrHas)
			})
		}
		if list := decode[[]map[string]any](t, mustSucceed(t, latchkey(t, environ, "", "user", "list"))); len(list) != 1 {
			t.Fatalf("refused users were stored: %v", list)
		}
	})
}

// TestUserUpdate: `user update` changes only the flags given, clears with
// an empty value, replaces or empties the groups, and refuses what the
// admin API refuses, changing nothing then.
func TestUserUpdate(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		environ := migrated(t, b)
		r := mustSucceed(t, latchkey(t, environ, "ulla-password\n", "user", "create", "ulla",
			"--email", "ulla@example.com", "--email-verified", "--name", "Ulla", "--picture", "https://img.example/u.png",
			"--group", "ops"))
		id, _ := decode[map[string]any](t, r)["id"].(string)

		mustSucceed(t, latchkey(t, environ, "", "user", "update", id, "--email", "ulla@example.org", "--picture", "",
			"--group", "admins", "--group", "dev", "--given-name", "Ulla"))
		got := decode[map[string]any](t, mustSucceed(t, latchkey(t, environ, "", "user", "get", id)))
		want := map[string]any{
			"username": "ulla", "email": "ulla@example.org", "email_verified": false, "name": "Ulla",
			"given_name": "Ulla", "picture": nil, "groups": "[admins dev]",
		}
		for k, v := range want {
			if fmt.Sprint(got[k]) != fmt.Sprint(v) {
				t.Errorf("after update: %s = %v, want %v", k, got[k], v)
			}
		}

		mustSucceed(t, latchkey(t, environ, "", "user", "update", id, "--no-groups", "--email-verified", "--username", "ulla2"))
		got = decode[map[string]any](t, mustSucceed(t, latchkey(t, environ, "", "user", "get", id)))
		if got["username"] != "ulla2" || got["email_verified"] != true || fmt.Sprint(got["groups"]) != "[]" || got["name"] != "Ulla" {
			t.Errorf("after the second update: %v", got)
		}

		mustFail(t, latchkey(t, environ, "", "user", "update", id, "--picture", "http://img.example/u.png"), "picture")
		mustFail(t, latchkey(t, environ, "", "user", "update", id, "--no-groups", "--group", "x"), "contradict")
		mustFail(t, latchkey(t, environ, "", "user", "update", "no-such-user", "--name", "X"), "no-such-user")
		if after := decode[map[string]any](t, mustSucceed(t, latchkey(t, environ, "", "user", "get", id))); after["picture"] != nil || after["username"] != "ulla2" {
			t.Errorf("a refused update changed the user: %v", after)
		}
	})
}
