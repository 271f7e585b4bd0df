package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// PgBouncerEnv turns on the pgbouncer backend: "1" runs the pgbouncer on
// PATH (or Debian's /usr/sbin/pgbouncer), anything else names the binary.
// It needs PostgresEnv too, which names the server PgBouncer pools for.
const PgBouncerEnv = "LATCHKEY_TEST_PGBOUNCER"

// pgbouncer is the one PgBouncer of a test binary, started by Main.
var pgbouncer struct {
	sync.Mutex
	addr string // host:port once running
	err  error  // why it could not start
}

// Main runs a package's tests with, when PgBouncerEnv and PostgresEnv are
// set, a PgBouncer in transaction mode in front of the PostgreSQL server:
// ForEachBackend then runs a third backend, "pgbouncer", through it. Only
// packages whose TestMain calls Main get it, so that the long suites do not
// run a third time.
func Main(m *testing.M) {
	stop := startPgBouncer()
	code := m.Run()
	stop()
	os.Exit(code)
}

func pgbouncerBinary() string {
	v := os.Getenv(PgBouncerEnv)
	if v == "" || v == "0" {
		return ""
	}
	if v != "1" {
		return v
	}
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p
	}
	return "/usr/sbin/pgbouncer"
}

// startPgBouncer starts PgBouncer on a free port with a configuration of
// its own: every database name is passed through to the PostgreSQL server
// (so each test's database gets its own pool), no authentication (the
// server trusts loopback), and pool_mode=transaction, the mode whose
// server connections change under a client between transactions.
func startPgBouncer() (stop func()) {
	bin := pgbouncerBinary()
	base := os.Getenv(PostgresEnv)
	if bin == "" || base == "" {
		return func() {}
	}
	fail := func(err error) func() {
		pgbouncer.err = err
		return func() {}
	}
	if _, err := os.Stat(bin); err != nil {
		return fail(fmt.Errorf("%s=%s: %w", PgBouncerEnv, os.Getenv(PgBouncerEnv), err))
	}
	u, err := url.Parse(base)
	if err != nil {
		return fail(err)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		host, port = u.Host, "5432"
	}
	user := u.User.Username()
	if user == "" {
		user = "postgres"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	addr := l.Addr().(*net.TCPAddr)
	l.Close()
	dir, err := os.MkdirTemp("", "latchkey-pgbouncer-")
	if err != nil {
		return fail(err)
	}
	ini := fmt.Sprintf(`[databases]
* = host=%s port=%s user=%s
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = any
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 10
server_lifetime = 3600
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
`, host, port, user, addr.Port)
	cfg := filepath.Join(dir, "pgbouncer.ini")
	if err := os.WriteFile(cfg, []byte(ini), 0o600); err != nil {
		return fail(err)
	}
	args := []string{cfg}
	if os.Geteuid() == 0 {
		// PgBouncer refuses to run as root; it reads its configuration
		// before it drops to this user.
		args = []string{"-u", "nobody", cfg}
	}
	cmd := exec.Command(bin, args...)
	logs := &lockedLog{}
	cmd.Stdout, cmd.Stderr = logs, logs
	// Its own process group: a ^C to the test does not reach it first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return fail(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stopping := false
	stop = func() {
		pgbouncer.Lock()
		stopping = true
		pgbouncer.Unlock()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		os.RemoveAll(dir)
	}
	// Its own line, not a successful dial: something else may hold the
	// port, and PgBouncer then exits saying so.
	listening := fmt.Sprintf("listening on 127.0.0.1:%d", addr.Port)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), listening) {
		select {
		case <-exited:
			stop()
			return fail(fmt.Errorf("pgbouncer exited: %s", logs.String()))
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return fail(fmt.Errorf("pgbouncer does not listen on %s: %s", addr, logs.String()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A PgBouncer that dies during the run fails the tests that use it
	// with its log, not with "connection refused".
	go func() {
		<-exited
		pgbouncer.Lock()
		defer pgbouncer.Unlock()
		if !stopping {
			pgbouncer.err = fmt.Errorf("pgbouncer exited during the tests: %s", logs.String())
		}
	}()
	pgbouncer.addr = addr.String()
	return stop
}

// lockedLog collects PgBouncer's output while the tests read it.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// PgBouncerAddr is the running PgBouncer's host:port. It skips the test
// when none runs, and fails it when one should run but could not start.
func PgBouncerAddr(t testing.TB) string {
	t.Helper()
	pgbouncer.Lock()
	defer pgbouncer.Unlock()
	switch {
	case pgbouncer.err != nil:
		t.Fatalf("pgbouncer: %v", pgbouncer.err)
	case pgbouncer.addr == "":
		t.Skipf("PgBouncer not configured: set %s=1 (and %s), and call storetest.Main from TestMain", PgBouncerEnv, PostgresEnv)
	}
	return pgbouncer.addr
}

func pgbouncerOn() bool {
	pgbouncer.Lock()
	defer pgbouncer.Unlock()
	return pgbouncer.addr != "" || pgbouncer.err != nil
}

// PgBouncerURL creates a database of its own on the PostgreSQL server and
// returns a URL that reaches it through PgBouncer, with the query exec
// mode that works there (docs/operations.md, "PgBouncer"). A database
// rather than a schema: PgBouncer 1.18 refuses search_path as a startup
// parameter. The database is dropped after the test.
func PgBouncerURL(t testing.TB) string {
	t.Helper()
	addr := PgBouncerAddr(t)
	name := createDatabase(t)
	return "postgres://postgres@" + addr + "/" + name + "?sslmode=disable&default_query_exec_mode=exec"
}

// PgBouncerDirectURL is the URL of the same database as pooled (a
// PgBouncerURL), straight to the PostgreSQL server: what an operator gives
// LATCHKEY_DATABASE_LISTEN_URL.
func PgBouncerDirectURL(t testing.TB, pooled string) string {
	t.Helper()
	p, err := url.Parse(pooled)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(os.Getenv(PostgresEnv))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = p.Path
	return u.String()
}

func createDatabase(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "lk_pgb_" + hex.EncodeToString(b)
	db, err := sql.Open("pgx", os.Getenv(PostgresEnv))
	if err != nil {
		t.Fatalf("open %s: %v", PostgresEnv, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		// FORCE: PgBouncer keeps its server connections to the database.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	return name
}

// ListenURL is what an operator sets LATCHKEY_DATABASE_LISTEN_URL to for a
// database of this backend at databaseURL: a direct connection to the same
// database for the pgbouncer backend, nothing for the others.
func (b Backend) ListenURL(t testing.TB, databaseURL string) string {
	if b.Name != "pgbouncer" {
		return ""
	}
	return PgBouncerDirectURL(t, databaseURL)
}
