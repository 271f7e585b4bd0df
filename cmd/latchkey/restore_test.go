package main

// The backup and restore runbook of docs/operations.md, run end to end
// against real processes: what the runbook says to back up (the database
// and LATCHKEY_SECRET) is enough to bring tokens back as they were.

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	_ "github.com/glebarez/go-sqlite"  // database/sql driver "sqlite", for VACUUM INTO
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", to create and drop the drill's database
	"github.com/latchkey/latchkey/internal/store/storetest"
)

const (
	drillSecret = "restore-drill-secret-0123456789-0123456789"
	// A fixed issuer: the restored server listens on another port, and the
	// tokens it must accept name the issuer of the first one.
	drillIssuer = "https://latchkey.restore.test"
)

// buildLatchkey builds this checkout's cmd/latchkey.
func buildLatchkey(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "latchkey")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// serveOne starts `bin serve args…` on dbURL and waits until it is ready.
// stop ends it; it also runs at the end of the test.
func serveOne(t *testing.T, bin, dbURL string, args []string, env ...string) (in *instance, stop func()) {
	t.Helper()
	in = &instance{public: freeAddr(t), admin: freeAddr(t), dbURL: dbURL, logs: &bytes.Buffer{}}
	in.cmd = exec.Command(bin, append([]string{"serve"}, args...)...)
	in.cmd.Env = append(append(os.Environ(),
		"LATCHKEY_DATABASE_URL="+dbURL, "LATCHKEY_SECRET="+drillSecret, "LATCHKEY_ADMIN_TOKEN="+clusterAdmin,
		"LATCHKEY_PUBLIC_ADDR="+in.public, "LATCHKEY_ADMIN_ADDR="+in.admin, "LATCHKEY_ISSUER="+drillIssuer,
		"LATCHKEY_LOG_LEVEL=warn"), env...)
	in.cmd.Stdout, in.cmd.Stderr = in.logs, in.logs
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = in.cmd.Process.Signal(os.Interrupt)
		_ = in.cmd.Wait()
		if t.Failed() {
			t.Logf("%s serve logs:\n%s", bin, in.logs.String())
		}
	}
	t.Cleanup(stop)
	waitReady(t, in)
	return in, stop
}

// drillTokens are what the drill issues before the backup.
type drillTokens struct {
	clientID, clientSecret string
	// jwtAccess and refresh come from one live grant; revokedAccess and
	// revokedRefresh from a grant revoked before the backup; opaque is an
	// opaque access token.
	jwtAccess, refresh, revokedAccess, revokedRefresh, opaque string
}

// issueBeforeBackup makes a client and a user and issues the drill's
// tokens: JWTs at a server with the default format, an opaque token at a
// second one started with LATCHKEY_ACCESS_TOKEN_FORMAT=opaque, which is
// left running (the backup is taken online) and returned.
func issueBeforeBackup(t *testing.T, bin, dbURL string) (drillTokens, *instance, func()) {
	t.Helper()
	a, stopA := serveOne(t, bin, dbURL, []string{"--migrate"})
	st, c := a.adminCall(t, http.MethodPost, "/admin/clients", map[string]any{"trusted": true,
		"grant_types": []string{"password", "refresh_token", "client_credentials"}, "scope": "read offline_access"})
	if st != http.StatusCreated {
		t.Fatalf("create client: %d %v", st, c)
	}
	tok := drillTokens{clientID: c["client_id"].(string), clientSecret: c["client_secret"].(string)}
	if st, m := a.adminCall(t, http.MethodPost, "/admin/users", map[string]string{"username": "rita", "password": "rita-password-1"}); st != http.StatusCreated {
		t.Fatalf("create user: %d %v", st, m)
	}
	password := url.Values{"grant_type": {"password"}, "username": {"rita"}, "password": {"rita-password-1"}, "scope": {"read offline_access"}}
	live := tokenOK(t, a, tok, password)
	revoked := tokenOK(t, a, tok, password)
	tok.jwtAccess, tok.refresh = live["access_token"].(string), live["refresh_token"].(string)
	tok.revokedAccess, tok.revokedRefresh = revoked["access_token"].(string), revoked["refresh_token"].(string)
	if st, _ := a.form(t, "/oauth2/revoke", tok.clientID, tok.clientSecret, url.Values{"token": {tok.revokedRefresh}}); st != http.StatusOK {
		t.Fatalf("revoke: %d", st)
	}
	stopA()

	b, stopB := serveOne(t, bin, dbURL, nil, "LATCHKEY_ACCESS_TOKEN_FORMAT=opaque")
	tok.opaque = tokenOK(t, b, tok, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})["access_token"].(string)
	return tok, b, stopB
}

func tokenOK(t *testing.T, in *instance, tok drillTokens, v url.Values) map[string]any {
	t.Helper()
	st, m := in.form(t, "/oauth2/token", tok.clientID, tok.clientSecret, v)
	if st != http.StatusOK {
		t.Fatalf("token %s: %d %v", v.Get("grant_type"), st, m)
	}
	return m
}

// checkRestored asserts that the server in holds exactly what was backed
// up: afterBackup, issued once the backup was taken, is unknown.
func checkRestored(t *testing.T, in *instance, tok drillTokens, afterBackup string) {
	t.Helper()
	active := func(token string) bool {
		st, m := in.form(t, "/oauth2/introspect", tok.clientID, tok.clientSecret, url.Values{"token": {token}})
		if st != http.StatusOK {
			t.Fatalf("introspect: %d %v", st, m)
		}
		return m["active"] == true
	}
	for name, token := range map[string]string{"JWT access token": tok.jwtAccess, "opaque access token": tok.opaque, "refresh token": tok.refresh} {
		if !active(token) {
			t.Errorf("the %s issued before the backup is inactive after the restore", name)
		}
	}
	if active(tok.revokedAccess) || active(tok.revokedRefresh) {
		t.Error("a grant revoked before the backup is active again after the restore")
	}
	if active(afterBackup) {
		t.Error("a token issued after the backup is active: the restore did not replace the database")
	}
	if st, m := in.form(t, "/oauth2/token", tok.clientID, tok.clientSecret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.revokedRefresh}}); st != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("refresh with the token revoked before the backup: %d %v, want 400 invalid_grant", st, m)
	}
	refreshed := tokenOK(t, in, tok, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.refresh}})
	if !active(refreshed["access_token"].(string)) {
		t.Error("the access token of the refresh after the restore is inactive")
	}
}

// Backup and restore on PostgreSQL, as docs/operations.md says: pg_dump
// (custom format) while the server runs, the database dropped, created
// again and pg_restore'd, the server started on it with the same
// LATCHKEY_SECRET. The drill uses a database of its own on the test server.
func TestRestoreDrillPostgres(t *testing.T) {
	needPostgres(t)
	pgDump, errDump := exec.LookPath("pg_dump")
	pgRestore, errRestore := exec.LookPath("pg_restore")
	if errDump != nil || errRestore != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("pg_dump or pg_restore not found on PATH, which CI must have (apt-get install postgresql-client)")
		}
		t.Skip("pg_dump or pg_restore not found on PATH: install postgresql-client to run the restore drill")
	}
	admin, dbURL, name := drillDatabase(t)
	bin := buildLatchkey(t)

	tok, running, stop := issueBeforeBackup(t, bin, dbURL)
	dump := filepath.Join(t.TempDir(), "latchkey.dump")
	if out, err := exec.Command(pgDump, "--format=custom", "--file="+dump, "--dbname="+dbURL).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}
	afterBackup := tokenOK(t, running, tok, url.Values{"grant_type": {"client_credentials"}})["access_token"].(string)
	stop()

	if _, err := admin.Exec("DROP DATABASE " + name + " WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(pgRestore, "--no-owner", "--exit-on-error", "--dbname="+dbURL, dump).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	// No --migrate: the restored schema is current, and serve says so.
	restored, _ := serveOne(t, bin, dbURL, nil)
	checkRestored(t, restored, tok, afterBackup)
}

// drillDatabase creates a database of the drill's own on the test server
// (the drill drops and creates it), and drops it after the test.
func drillDatabase(t *testing.T) (admin *sql.DB, dbURL, name string) {
	t.Helper()
	base := os.Getenv(storetest.PostgresEnv)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name = "latchkey_drill_" + hex.EncodeToString(b)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create the drill's database: %v", err)
	}
	t.Cleanup(func() { _, _ = admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return admin, u.String(), name
}

// Backup and restore on SQLite, as docs/operations.md says: `VACUUM INTO`
// on the live database (a consistent copy while the server runs), the
// database file and its -wal and -shm removed, the copy put in its place,
// the server started on it with the same LATCHKEY_SECRET.
func TestRestoreDrillSQLite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "latchkey.db")
	dbURL := "sqlite://" + path
	bin := buildLatchkey(t)

	tok, running, stop := issueBeforeBackup(t, bin, dbURL)
	backup := filepath.Join(t.TempDir(), "backup.db")
	// What `sqlite3 latchkey.db "VACUUM INTO 'backup.db'"` does, through the
	// driver the server uses, so the test needs no sqlite3 binary.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("VACUUM INTO ?", backup); err != nil {
		t.Fatalf("VACUUM INTO: %v", err)
	}
	_ = db.Close()
	afterBackup := tokenOK(t, running, tok, url.Values{"grant_type": {"client_credentials"}})["access_token"].(string)
	stop()

	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	restored, _ := serveOne(t, bin, dbURL, nil)
	checkRestored(t, restored, tok, afterBackup)
}
