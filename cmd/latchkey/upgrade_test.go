package main

// Rolling upgrades: release N-1 keeps serving on a schema release N
// migrated (migrations/README.md, "Expand, then contract").

import (
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

// previousRelease builds the newest tag v* reachable from HEAD into a
// binary, from a git worktree in a temporary directory. It skips, saying
// why, when there is no git checkout or no such tag.
func previousRelease(t *testing.T) (tag, bin string) {
	t.Helper()
	git := func(args ...string) (string, error) {
		out, err := exec.Command("git", args...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	top, err := git("rev-parse", "--show-toplevel")
	if err != nil {
		t.Skipf("not a git checkout (a release tarball?), so release N-1 cannot be built: %s", top)
	}
	tag, err = git("-C", top, "describe", "--tags", "--abbrev=0", "--match", "v*", "HEAD")
	if err != nil {
		t.Skipf("no tag v* is reachable from HEAD, so there is no release N-1 to run against this schema yet (git describe: %s)", tag)
	}
	src := filepath.Join(t.TempDir(), "src")
	if out, err := git("-C", top, "worktree", "add", "--detach", src, tag); err != nil {
		t.Fatalf("git worktree add %s: %v\n%s", tag, err, out)
	}
	t.Cleanup(func() {
		_, _ = git("-C", top, "worktree", "remove", "--force", src)
		_, _ = git("-C", top, "worktree", "prune")
	})
	bin = filepath.Join(t.TempDir(), "latchkey-"+tag)
	build := exec.Command("go", "build", "-o", bin, "./cmd/latchkey")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", tag, err, out)
	}
	return tag, bin
}

// Release N-1 (the newest v* tag) serves on a database that this release
// migrated, next to an instance of this release, as during a rolling
// upgrade: tokens issued by either refresh, introspect and revoke at the
// other.
func TestPreviousReleaseOnCurrentSchema(t *testing.T) {
	needPostgres(t)
	tag, old := previousRelease(t)
	cur := buildLatchkey(t)
	dbURL := storetest.PostgresURL(t)
	migrate := exec.Command(cur, "migrate", "up")
	migrate.Env = append(os.Environ(), "LATCHKEY_DATABASE_URL="+dbURL)
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("migrate up with this release: %v\n%s", err, out)
	}
	// Neither is given --migrate: the schema is this release's, and N-1
	// must take it as it is.
	prev, _ := serveOne(t, old, dbURL, nil)
	next, _ := serveOne(t, cur, dbURL, nil)
	t.Logf("release N-1 is %s", tag)

	_, c := next.adminCall(t, http.MethodPost, "/admin/clients", map[string]any{"trusted": true,
		"grant_types": []string{"password", "refresh_token", "client_credentials"}, "scope": "read offline_access"})
	tok := drillTokens{clientID: c["client_id"].(string), clientSecret: c["client_secret"].(string)}
	if st, m := prev.adminCall(t, http.MethodPost, "/admin/users", map[string]string{"username": "uma", "password": "uma-password-1"}); st != http.StatusCreated {
		t.Fatalf("create user at N-1: %d %v", st, m)
	}
	password := url.Values{"grant_type": {"password"}, "username": {"uma"}, "password": {"uma-password-1"}, "scope": {"read offline_access"}}
	active := func(at *instance, token string) bool {
		st, m := at.form(t, "/oauth2/introspect", tok.clientID, tok.clientSecret, url.Values{"token": {token}})
		if st != http.StatusOK {
			t.Fatalf("introspect: %d %v", st, m)
		}
		return m["active"] == true
	}
	for _, dir := range []struct {
		name     string
		from, to *instance
	}{{"issued at N-1, used at N", prev, next}, {"issued at N, used at N-1", next, prev}} {
		t.Run(dir.name, func(t *testing.T) {
			issued := tokenOK(t, dir.from, tok, password)
			if !active(dir.to, issued["access_token"].(string)) {
				t.Fatal("access token inactive at the other release")
			}
			refreshed := tokenOK(t, dir.to, tok, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {issued["refresh_token"].(string)}})
			if !active(dir.from, refreshed["access_token"].(string)) {
				t.Fatal("refreshed access token inactive at the issuing release")
			}
			if st, _ := dir.from.form(t, "/oauth2/revoke", tok.clientID, tok.clientSecret, url.Values{"token": {refreshed["refresh_token"].(string)}}); st != http.StatusOK {
				t.Fatalf("revoke: %d", st)
			}
			if active(dir.to, refreshed["access_token"].(string)) || active(dir.to, refreshed["refresh_token"].(string)) {
				t.Fatal("a grant revoked at one release is active at the other")
			}
			cc := tokenOK(t, dir.from, tok, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})
			if !active(dir.to, cc["access_token"].(string)) {
				t.Fatal("client credentials token inactive at the other release")
			}
		})
	}
}
