package cli

import (
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/admin"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// `latchkey admin-token` makes, lists, rotates and revokes named tokens
// that the admin API accepts at once; `latchkey audit list` reads the
// changes, made from the shell as cli:$USER, with the API's filters.
func TestAdminTokenAndAuditCommands(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		environ := append(migrated(t, b), "USER=alice")
		st := storetest.Open(t, strings.TrimPrefix(environ[0], "LATCHKEY_DATABASE_URL="), store.Options{})
		svc := admin.NewService(st, nil, admin.Policy{})
		works := func(token string) bool {
			t.Helper()
			name, ok, err := svc.AuthenticateAdmin(t.Context(), token, sha256.Sum256([]byte(testAdminToken)))
			if err != nil {
				t.Fatal(err)
			}
			return ok && name != ""
		}

		ci := decode[admin.AdminTokenInfo](t, mustSucceed(t, latchkey(t, environ, "", "admin-token", "create", "ci", "--expires-in", "720h")))
		if !strings.HasPrefix(ci.Token, "lkadm_") || ci.ExpiresAt == nil || !works(ci.Token) {
			t.Fatalf("created: %+v", ci)
		}
		ops := decode[admin.AdminTokenInfo](t, mustSucceed(t, latchkey(t, environ, "", "admin-token", "create", "ops")))
		mustFail(t, latchkey(t, environ, "", "admin-token", "create", "ops"), "exists")
		mustFail(t, latchkey(t, environ, "", "admin-token", "create", "bootstrap"), "bootstrap")
		list := mustSucceed(t, latchkey(t, environ, "", "admin-token", "list"))
		if strings.Contains(list.stdout, ci.Token) || strings.Contains(list.stdout, `"token"`) || len(decode[[]admin.AdminTokenInfo](t, list)) != 2 {
			t.Errorf("list: %s", list.stdout)
		}
		ci2 := decode[admin.AdminTokenInfo](t, mustSucceed(t, latchkey(t, environ, "", "admin-token", "rotate", "ci")))
		if ci2.Token == ci.Token || works(ci.Token) || !works(ci2.Token) {
			t.Errorf("after rotation the old value works or the new one does not")
		}
		mustSucceed(t, latchkey(t, environ, "", "admin-token", "revoke", "ops"))
		if works(ops.Token) {
			t.Error("revoked token still works")
		}
		mustFail(t, latchkey(t, environ, "", "admin-token", "revoke", "ops"), "not_found")
		if !works(testAdminToken) {
			t.Error("the bootstrap token stopped working")
		}
		mustSucceed(t, latchkey(t, environ, "", "scope", "set", "invoices:read", "Read invoices"))
		mustSucceed(t, latchkey(t, environ, "", "keys", "rotate"))

		page := decode[admin.AuditPage](t, mustSucceed(t, latchkey(t, environ, "", "audit", "list")))
		var got []string
		for _, e := range page.Entries {
			got = append(got, e.Actor+" "+e.Action)
		}
		want := "cli:alice key.rotate,cli:alice scope.put,cli:alice admin_token.revoke,cli:alice admin_token.rotate,cli:alice admin_token.create,cli:alice admin_token.create"
		if strings.Join(got, ",") != want {
			t.Errorf("audit list: %v\nwant %s", got, want)
		}
		out := mustSucceed(t, latchkey(t, environ, "", "audit", "list")).stdout
		for _, tok := range []string{ci.Token, ci2.Token, ops.Token} {
			if strings.Contains(out, tok) {
				t.Error("the audit log shows a token")
			}
		}
		byTarget := decode[admin.AuditPage](t, mustSucceed(t, latchkey(t, environ, "", "audit", "list", "--target", "admin_token:ci")))
		if len(byTarget.Entries) != 2 {
			t.Errorf("--target admin_token:ci: %+v", byTarget.Entries)
		}
		first := decode[admin.AuditPage](t, mustSucceed(t, latchkey(t, environ, "", "audit", "list", "--limit", "4", "--since", "1h", "--actor", "cli:alice")))
		if len(first.Entries) != 4 || first.NextCursor == "" {
			t.Fatalf("first page: %+v", first)
		}
		rest := decode[admin.AuditPage](t, mustSucceed(t, latchkey(t, environ, "", "audit", "list", "--limit", "4", "--cursor", first.NextCursor)))
		if len(rest.Entries) != 2 || rest.NextCursor != "" {
			t.Errorf("second page: %+v", rest)
		}
		mustFail(t, latchkey(t, environ, "", "audit", "list", "--since", "yesterday"), "RFC 3339")
		mustFail(t, latchkey(t, environ, "", "audit", "list", "--limit", "5000"), "limit")
	})
}
