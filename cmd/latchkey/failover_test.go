//go:build outage

package main

// TestFailover builds a PostgreSQL primary and a synchronous streaming
// standby of its own (never the machine's cluster on 5432), kills the
// primary under load and promotes the standby. Like TestDatabaseOutage it
// is compiled only with -tags outage and runs only with
// LATCHKEY_FAULT_TESTS=1; .ci/run runs both last.

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// pgNode is one PostgreSQL server the test started, as a child process.
type pgNode struct {
	name, dir string
	port      int
	cmd       *exec.Cmd
	log       string
}

// pgCluster is the binaries and the OS user the servers run as.
type pgCluster struct {
	bin  string
	cred *syscall.Credential
}

// pgBinaries finds the newest PostgreSQL server binaries on the machine.
func pgBinaries(t *testing.T) string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi < vj
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "pg_basebackup")); err == nil {
			return dirs[i]
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin, which CI installs")
	}
	t.Skip("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
	return ""
}

// newPGCluster prepares a directory the servers may own. PostgreSQL
// refuses to run as root, so as root every binary runs as the postgres
// user, set on the child process itself (no su, whose session would sit
// between the test and the server).
func newPGCluster(t *testing.T) (*pgCluster, string) {
	c := &pgCluster{bin: pgBinaries(t)}
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres user to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		// t.TempDir's parent is 0700: let the postgres user through it.
		if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return c, dir
}

func (c *pgCluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=5")
	return cmd
}

func (c *pgCluster) run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := c.command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// start runs postgres on dir. The server is the test's child and gets
// SIGQUIT (an immediate shutdown) if the test process dies, so that a
// test killed by its timeout leaves no server behind; t.Cleanup stops it
// otherwise.
func (c *pgCluster) start(t *testing.T, n *pgNode, settings ...string) {
	t.Helper()
	args := []string{"-D", n.dir, "-c", "port=" + strconv.Itoa(n.port), "-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=", "-c", "max_connections=100"}
	for _, s := range settings {
		args = append(args, "-c", s)
	}
	n.cmd = c.command("postgres", args...)
	n.cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	n.log = filepath.Join(filepath.Dir(n.dir), n.name+".log")
	f, err := os.Create(n.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n.cmd.Stdout, n.cmd.Stderr = f, f
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", n.name, err)
	}
	done := make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = n.cmd.Process.Signal(syscall.SIGQUIT)
		<-done
		if t.Failed() {
			b, _ := os.ReadFile(n.log)
			t.Logf("%s log:\n%s", n.name, b)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := n.connect("postgres")
		if err == nil {
			conn.Close(context.Background())
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(n.log)
			t.Fatalf("%s does not answer: %v\n%s", n.name, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (n *pgNode) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", n.port, db)
}

func (n *pgNode) connect(db string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return pgx.Connect(ctx, n.url(db))
}

func (n *pgNode) exec(t *testing.T, sql string) {
	t.Helper()
	conn, err := n.connect("postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func freePort(t *testing.T) int {
	_, port, _ := net.SplitHostPort(freeAddr(t))
	p, _ := strconv.Atoi(port)
	return p
}

// startReplicatedPair starts a primary and a synchronous streaming standby
// of it, with a database named latchkey on both, and returns them.
func startReplicatedPair(t *testing.T) (*pgCluster, *pgNode, *pgNode) {
	c, dir := newPGCluster(t)
	primary := &pgNode{name: "primary", dir: filepath.Join(dir, "primary"), port: freePort(t)}
	standby := &pgNode{name: "standby", dir: filepath.Join(dir, "standby"), port: freePort(t)}

	c.run(t, "initdb", "-D", primary.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	hba := "host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n"
	if err := os.WriteFile(filepath.Join(primary.dir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		t.Fatal(err)
	}
	c.start(t, primary, "wal_level=replica", "max_wal_senders=4", "synchronous_commit=on")
	primary.exec(t, "CREATE DATABASE latchkey")

	c.run(t, "pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(primary.port), "-U", "postgres",
		"-D", standby.dir, "-R", "-X", "stream", "--checkpoint=fast", "--no-sync")
	// Once promoted the standby is alone: with synchronous_standby_names
	// set it would make every commit wait for a standby that is not there.
	c.start(t, standby, "hot_standby=on", "synchronous_standby_names=")
	// Only now that a standby streams: a commit waits for its flush (what
	// "no acknowledged write is lost" rests on), and before, CREATE
	// DATABASE would have waited for ever.
	primary.exec(t, "ALTER SYSTEM SET synchronous_standby_names = '*'")
	primary.exec(t, "SELECT pg_reload_conf()")

	conn, err := primary.connect("postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(30 * time.Second)
	for {
		var state string
		err := conn.QueryRow(context.Background(), "SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming'").Scan(&state)
		if err == nil && state == "sync" {
			return c, primary, standby
		}
		if time.Now().After(deadline) {
			t.Fatalf("the standby is not a streaming synchronous standby: %q %v", state, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cacheMode reads latchkey_client_cache_mode from in's /metrics.
func (in *instance) cacheMode() string {
	req, _ := http.NewRequest(http.MethodGet, "http://"+in.admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+clusterAdmin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, mode := range []string{"off", "pushed", "polled", "expiring"} {
		if strings.Contains(string(b), `latchkey_client_cache_mode{mode="`+mode+`"} 1`) {
			return mode
		}
	}
	return ""
}

// answer is one request of the load: when it was sent and what came back.
type answer struct {
	what        string
	start, end  time.Time
	status      int
	retryAfter  bool
	err         error
	description string
}

// recorder keeps every answer of the load and what it handed out.
type recorder struct {
	mu      sync.Mutex
	answers []answer
	// issued is every refresh token a 200 handed out; spent those whose
	// refresh was answered 200 (so rotated, on the database that said so).
	issued, spent []string
	// revoked is the access and refresh token of each grant whose
	// revocation was answered 200.
	revoked [][2]string
}

func (r *recorder) add(a answer) {
	r.mu.Lock()
	r.answers = append(r.answers, a)
	r.mu.Unlock()
}

func (r *recorder) count(what string, status int, after time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, a := range r.answers {
		if (what == "" || a.what == what) && a.status == status && a.start.After(after) {
			n++
		}
	}
	return n
}

// post sends one form to in and records the answer under what.
func (r *recorder) post(hc *http.Client, in *instance, what, path, id, secret string, v url.Values) (int, map[string]any) {
	a := answer{what: what, start: time.Now()}
	req, _ := http.NewRequest(http.MethodPost, "http://"+in.public+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(id+":"+secret)))
	resp, err := hc.Do(req)
	a.end = time.Now()
	if err != nil {
		a.err = err
		r.add(a)
		return 0, nil
	}
	var m map[string]any
	_ = decodeJSON(resp, &m)
	a.status = resp.StatusCode
	a.retryAfter = resp.Header.Get("Retry-After") != ""
	if d, ok := m["error_description"].(string); ok {
		a.description = d
	}
	r.add(a)
	return a.status, m
}

// The primary is killed under load and the standby promoted. Latchkey
// answers 503 with Retry-After (never a 500, never a hang) only while no
// primary answers, recovers on its own, loses no write it acknowledged,
// and its instances' client caches and signing keys follow the new
// primary. docs/operations.md, "High availability: failover".
func TestFailover(t *testing.T) {
	if os.Getenv("LATCHKEY_FAULT_TESTS") != "1" {
		t.Skip("starts and kills PostgreSQL servers of its own; set LATCHKEY_FAULT_TESTS=1 and build with -tags outage (.ci/run does)")
	}
	began := time.Now()
	pg, primary, standby := startReplicatedPair(t)
	dbURL := fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/latchkey?target_session_attrs=read-write&sslmode=disable", primary.port, standby.port)
	nodes := startClusterOn(t, 2, dbURL)
	a, b := nodes[0], nodes[1]
	for _, in := range nodes {
		in.waitCacheMode(t, "pushed")
	}
	t.Logf("set up in %s", time.Since(began).Round(time.Millisecond))

	_, pwd := a.adminCall(t, http.MethodPost, "/admin/clients", map[string]any{"trusted": true,
		"grant_types": []string{"password", "refresh_token", "client_credentials"}, "scope": "read offline_access"})
	id, secret := pwd["client_id"].(string), pwd["client_secret"].(string)
	if st, m := a.adminCall(t, http.MethodPost, "/admin/users", map[string]string{"username": "fay", "password": "fay-password-1"}); st != http.StatusCreated {
		t.Fatalf("create user: %d %v", st, m)
	}
	login := url.Values{"grant_type": {"password"}, "username": {"fay"}, "password": {"fay-password-1"}, "scope": {"read offline_access"}}

	rec := &recorder{}
	// Bound on every answer: a request still open after it is a hang.
	hc := &http.Client{Timeout: 10 * time.Second}
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	worker := func(fn func(in *instance)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				fn(nodes[i%2])
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	// Refreshers: each keeps one grant and refreshes it on either
	// instance. A refresh that failed is retried with the same token; a
	// grant found dead is replaced by a new one.
	const refreshers = 3
	latest := make([]string, refreshers)
	var latestMu sync.Mutex
	for i := range refreshers {
		worker(func(in *instance) {
			latestMu.Lock()
			rt := latest[i]
			latestMu.Unlock()
			if rt == "" {
				if st, m := rec.post(hc, in, "token", "/oauth2/token", id, secret, login); st == http.StatusOK {
					rec.mu.Lock()
					rec.issued = append(rec.issued, m["refresh_token"].(string))
					rec.mu.Unlock()
					latestMu.Lock()
					latest[i] = m["refresh_token"].(string)
					latestMu.Unlock()
				}
				return
			}
			st, m := rec.post(hc, in, "refresh", "/oauth2/token", id, secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
			switch st {
			case http.StatusOK:
				next := m["refresh_token"].(string)
				rec.mu.Lock()
				rec.issued = append(rec.issued, next)
				rec.spent = append(rec.spent, rt)
				rec.mu.Unlock()
				latestMu.Lock()
				latest[i] = next
				latestMu.Unlock()
			case http.StatusBadRequest:
				latestMu.Lock()
				latest[i] = ""
				latestMu.Unlock()
			}
		})
	}
	// A revoker: a new grant, then its refresh token revoked.
	worker(func(in *instance) {
		st, m := rec.post(hc, in, "token", "/oauth2/token", id, secret, login)
		if st != http.StatusOK {
			return
		}
		rt, at := m["refresh_token"].(string), m["access_token"].(string)
		rec.mu.Lock()
		rec.issued = append(rec.issued, rt)
		rec.mu.Unlock()
		for ctx.Err() == nil {
			st, _ := rec.post(hc, in, "revoke", "/oauth2/revoke", id, secret, url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}})
			if st == http.StatusOK {
				rec.mu.Lock()
				rec.revoked = append(rec.revoked, [2]string{at, rt})
				rec.mu.Unlock()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	// An issuer and introspector: a client_credentials token, then its
	// introspection.
	worker(func(in *instance) {
		st, m := rec.post(hc, in, "token", "/oauth2/token", id, secret, url.Values{"grant_type": {"client_credentials"}})
		if st != http.StatusOK {
			return
		}
		rec.post(hc, in, "introspect", "/oauth2/introspect", id, secret, url.Values{"token": {m["access_token"].(string)}})
	})
	loadStopped := false
	stop := func() {
		if !loadStopped {
			loadStopped = true
			stopLoad()
			wg.Wait()
		}
	}
	defer stop()

	waitFor := func(what string, bound time.Duration, ok func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !ok() {
			if time.Since(start) > bound {
				t.Fatalf("not within %s: %s", bound, what)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start)
	}
	waitFor("the load has answers before the failover", 30*time.Second, func() bool {
		return rec.count("refresh", http.StatusOK, began) >= 30 && rec.count("revoke", http.StatusOK, began) >= 5
	})

	stopped := time.Now()
	pg.run(t, "pg_ctl", "stop", "-D", primary.dir, "-m", "immediate")
	// Until the standby is promoted no primary answers: readiness fails on
	// both instances, requests are turned away with 503, and each
	// instance's listener has lost its connection (the client cache is
	// off), so that it has to find the new primary on its own.
	waitFor("both instances report not ready, have lost their listener, and the load meets 503s", 15*time.Second, func() bool {
		for _, in := range nodes {
			resp, err := http.Get("http://" + in.public + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || in.cacheMode() != "off" {
				return false
			}
		}
		return rec.count("refresh", http.StatusServiceUnavailable, stopped) >= 5 && rec.count("token", http.StatusServiceUnavailable, stopped) >= 5
	})
	promoting := time.Now()
	pg.run(t, "pg_ctl", "promote", "-D", standby.dir)
	promoted := time.Now()
	// Recovery without a restart, on both instances.
	took := waitFor("both instances serve again after the promotion", 20*time.Second, func() bool {
		for _, in := range nodes {
			resp, err := http.Get("http://" + in.public + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return false
			}
		}
		return rec.count("refresh", http.StatusOK, promoted) > 0 && rec.count("revoke", http.StatusOK, promoted) > 0
	})
	recovered := time.Now()
	t.Logf("primary down for %s before the promotion; both instances serving %s after it", promoting.Sub(stopped).Round(time.Millisecond), took.Round(time.Millisecond))
	waitFor("the load runs on the new primary", 20*time.Second, func() bool {
		return rec.count("refresh", http.StatusOK, recovered) >= 20 && rec.count("revoke", http.StatusOK, recovered) >= 3
	})
	stop()

	// Every answer: a 200, a 4xx the protocol calls for, or a 503 with
	// Retry-After inside the failover; never a 500, never a hang.
	tally := map[string]int{}
	for _, an := range rec.answers {
		key := fmt.Sprintf("%s %d", an.what, an.status)
		tally[key]++
		switch {
		case an.err != nil:
			t.Errorf("%s sent %s after the stop: no answer: %v", an.what, an.start.Sub(stopped).Round(time.Millisecond), an.err)
		case an.status >= 500 && an.status != http.StatusServiceUnavailable:
			t.Errorf("%s: %d %s", an.what, an.status, an.description)
		case an.status == http.StatusServiceUnavailable && !an.retryAfter:
			t.Errorf("%s: 503 without Retry-After", an.what)
		case an.status == http.StatusServiceUnavailable && (an.end.Before(stopped) || an.start.After(recovered)):
			t.Errorf("%s: 503 outside the failover (sent %s after the stop, recovery at %s): %s", an.what,
				an.start.Sub(stopped).Round(time.Millisecond), recovered.Sub(stopped).Round(time.Millisecond), an.description)
		}
	}
	t.Logf("answers: %v", tally)

	// No acknowledged write is lost. Read on the new primary directly:
	// every refresh token handed out exists; every one whose refresh was
	// answered 200 is spent there.
	st := storetest.Open(t, standby.url("latchkey"), store.Options{})
	sig := func(tok string) string { return tok[strings.LastIndexByte(tok, '.')+1:] }
	spent := map[string]bool{}
	for _, rt := range rec.spent {
		spent[rt] = true
	}
	for _, rt := range rec.issued {
		r, err := st.FindRefreshToken(context.Background(), sig(rt), nil)
		switch {
		case errors.Is(err, store.ErrNotFound):
			t.Errorf("a refresh token handed out with 200 is not on the new primary")
		case err != nil:
			t.Errorf("find refresh token: %v", err)
		case spent[rt] && (r.Active || r.RotatedAt == nil):
			t.Errorf("a refresh answered 200 is not recorded on the new primary: token active=%v rotated=%v", r.Active, r.RotatedAt != nil)
		}
	}
	// Each refresher's last token works, or its whole grant is revoked (a
	// refresh whose 200 never arrived, retried past the grace period, is
	// reuse).
	for i, rt := range latest {
		if rt == "" {
			continue
		}
		if st2, _ := a.form(t, "/oauth2/token", id, secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}); st2 == http.StatusOK {
			continue
		}
		r, err := st.FindRefreshToken(context.Background(), sig(rt), nil)
		if err != nil {
			t.Fatalf("refresher %d: its last token: %v", i, err)
		}
		if live, err := st.ActiveRefreshTokens(context.Background(), r.Request.GetID()); err != nil || live != 0 {
			t.Errorf("refresher %d: its last token fails but its grant has %d live refresh tokens (%v)", i, live, err)
		}
	}
	// Every revocation answered 200 holds on both instances.
	for _, rv := range rec.revoked {
		for _, in := range nodes {
			for _, tok := range rv {
				if st2, m := in.form(t, "/oauth2/introspect", id, secret, url.Values{"token": {tok}}); st2 != http.StatusOK || m["active"] != false {
					t.Fatalf("a token whose revocation was answered 200 introspects %d %v after the failover", st2, m)
				}
			}
		}
	}
	t.Logf("checked %d refresh tokens handed out, %d refreshes and %d revocations acknowledged", len(rec.issued), len(rec.spent), len(rec.revoked))

	// The instances listen on the new primary: a client used at B (and so
	// cached there for a minute) and deleted at A is refused at B at once,
	// and a key rotated at A signs at B.
	for _, in := range nodes {
		in.waitCacheMode(t, "pushed")
	}
	_, svc := a.adminCall(t, http.MethodPost, "/admin/clients", map[string]any{"grant_types": []string{"client_credentials"}})
	sid, ssecret := svc["client_id"].(string), svc["client_secret"].(string)
	if st2, _ := b.form(t, "/oauth2/token", sid, ssecret, url.Values{"grant_type": {"client_credentials"}}); st2 != http.StatusOK {
		t.Fatalf("token at B after the failover: %d", st2)
	}
	if st2, _ := a.adminCall(t, http.MethodDelete, "/admin/clients/"+sid, nil); st2 != http.StatusNoContent {
		t.Fatalf("delete at A after the failover: %d", st2)
	}
	deleted := time.Now()
	waitFor("B refuses a client deleted at A after the failover", 5*time.Second, func() bool {
		st2, _ := b.form(t, "/oauth2/token", sid, ssecret, url.Values{"grant_type": {"client_credentials"}})
		return st2 == http.StatusUnauthorized
	})
	t.Logf("a client deleted at A refused at B %s later", time.Since(deleted).Round(time.Millisecond))
	st2, rotated := a.adminCall(t, http.MethodPost, "/admin/keys/rotate", nil)
	if st2 != http.StatusOK {
		t.Fatalf("rotate at A after the failover: %d %v", st2, rotated)
	}
	took = waitFor("B signs with the key rotated at A", 10*time.Second, func() bool {
		_, tok := b.form(t, "/oauth2/token", id, secret, url.Values{"grant_type": {"client_credentials"}})
		at, _ := tok["access_token"].(string)
		header, _ := base64.RawURLEncoding.DecodeString(strings.Split(at, ".")[0])
		return strings.Contains(string(header), rotated["kid"].(string))
	})
	t.Logf("a key rotated at A signs at B %s later", took.Round(time.Millisecond))
	t.Logf("whole test %s", time.Since(began).Round(time.Millisecond))
}
