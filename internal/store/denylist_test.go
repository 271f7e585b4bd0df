package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

func waitFor(t *testing.T, what string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// While the listener is down the deny-list is not trusted and every check
// asks the database: a revocation made meanwhile, whose notice nobody
// hears, is still seen at once. B's listener connection is killed with
// pg_terminate_backend while the proxy in its way swallows new connections,
// so that it stays down until the test lets it back; then the filter is
// loaded again and holds what was revoked during the outage.
func TestDenyListFallsBackWhileListenerDown(t *testing.T) {
	dbURL := storetest.PostgresURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	proxy := newBlackhole(t, u.Host)
	var stmts atomic.Int64
	a := storetest.Open(t, dbURL, store.Options{})
	// The listener's connection has a name of its own, to be found and
	// killed.
	listenURL, name := withAppName(t, dbURL)
	b := storetest.Open(t, dbURL, store.WithListenDial(store.Options{
		ListenURL: listenURL, OnStatement: func(context.Context, string) { stmts.Add(1) },
	}, proxy.dial))
	waitFor(t, "the deny-list is trusted", 30*time.Second, b.RevocationsInMemory)

	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	proxy.dropped.Store(true)
	var killed bool
	if err := db.QueryRowContext(ctx, "SELECT bool_or(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", name).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the listener: %v %v", killed, err)
	}
	waitFor(t, "the deny-list is dropped with its listener", 10*time.Second, func() bool { return !b.RevocationsInMemory() })

	if err := a.RevokeJTI(ctx, "while-down", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	before := stmts.Load()
	if r, err := b.IsRevoked(ctx, "while-down", "g", "s", time.Now()); err != nil || !r {
		t.Fatalf("a revocation made while the listener is down is not seen at once: %v %v", r, err)
	}
	if stmts.Load() == before {
		t.Fatal("the check did not ask the database")
	}
	if b.RevocationsInMemory() {
		t.Fatal("trusted with no listener")
	}

	proxy.dropped.Store(false)
	waitFor(t, "the deny-list is trusted again", 30*time.Second, b.RevocationsInMemory)
	before = stmts.Load()
	if r, err := b.IsRevoked(ctx, "while-down", "g", "s", time.Now()); err != nil || !r {
		t.Fatalf("the reload lost the revocation made during the outage: %v %v", r, err)
	}
	if stmts.Load() == before {
		t.Fatal("the reloaded filter missed it (no confirming query)")
	}
}

// withAppName gives the listener's URL an application_name of its own.
func withAppName(t *testing.T, dbURL string) (string, string) {
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	name := "lk-deny-" + u.Query().Get("search_path")
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return u.String(), name
}

// A revocation committed while the filter is being loaded, before its
// queries read the tables or after they did but before the swap, is not
// missed: the first is in what the queries read, the second only in its
// notice, which the listener keeps for the filter being built.
func TestDenyListRevocationDuringLoad(t *testing.T) {
	dbURL := storetest.PostgresURL(t)
	ctx := context.Background()
	a := storetest.Open(t, dbURL, store.Options{})
	var (
		mu    sync.Mutex
		stage = map[string]string{"begun": "at-begin", "read": "after-read"}
		done  = map[string]bool{}
		// heard gets a value for each revocation notice b2 applies.
		heard = make(chan struct{}, 16)
	)
	load := func(s string) {
		mu.Lock()
		jti, ok := stage[s]
		first := ok && !done[jti]
		done[jti] = true
		mu.Unlock()
		if !first {
			return
		}
		// Committed here, on the other instance: the notice reaches
		// the listener while the load is in progress.
		if err := a.RevokeJTI(ctx, jti, time.Now().Add(time.Hour)); err != nil {
			t.Error(err)
		}
		if s == "read" {
			// Hold the swap until both notices are applied: the point is
			// a notice that comes during the load.
			deadline := time.After(30 * time.Second)
			for applied := 0; applied < 2; applied++ {
				select {
				case <-heard:
				case <-deadline:
					t.Error("the notices of the revocations during the load never arrived")
					return
				}
			}
		}
	}
	b2 := storetest.Open(t, dbURL, store.WithDenyListHooks(store.Options{}, func() { heard <- struct{}{} }, load))
	waitFor(t, "the deny-list is trusted", 30*time.Second, b2.RevocationsInMemory)
	mu.Lock()
	ran := done["at-begin"] && done["after-read"]
	mu.Unlock()
	if !ran {
		t.Fatal("the load hooks did not run")
	}
	for _, jti := range []string{"at-begin", "after-read"} {
		if r, err := b2.IsRevoked(ctx, jti, "g", "s", time.Now()); err != nil || !r {
			t.Errorf("%s: revocation during the load missed: %v %v", jti, r, err)
		}
	}
}

// TestDenyListNotificationLatency measures how long a revocation committed
// at instance A takes to reach instance B's in-memory deny-list: from the
// return of A's commit to B's listener having applied the notice, over a
// few hundred revocations (docs/benchmarks.md). It asserts nothing about
// the figures, which depend on the machine.
func TestDenyListNotificationLatency(t *testing.T) {
	dbURL := storetest.PostgresURL(t)
	ctx := context.Background()
	a := storetest.Open(t, dbURL, store.Options{})
	heard := make(chan time.Time, 1)
	b := storetest.Open(t, dbURL, store.WithDenyListHooks(store.Options{}, func() { heard <- time.Now() }, nil))
	waitFor(t, "the deny-list is trusted", 30*time.Second, b.RevocationsInMemory)
	const n = 300
	var afterCommit, fromCall []time.Duration
	for i := range n {
		start := time.Now()
		if err := a.RevokeJTI(ctx, fmt.Sprintf("lat-%d", i), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		committed := time.Now()
		select {
		case at := <-heard:
			afterCommit = append(afterCommit, max(at.Sub(committed), 0))
			fromCall = append(fromCall, at.Sub(start))
		case <-time.After(10 * time.Second):
			t.Fatalf("revocation %d never reached the other instance", i)
		}
	}
	slices.Sort(afterCommit)
	slices.Sort(fromCall)
	pct := func(d []time.Duration, p float64) time.Duration { return d[int(float64(len(d)-1)*p)] }
	t.Logf("notification latency over %d revocations: after A's commit returned p50 %v p99 %v max %v; from A's call p50 %v p99 %v max %v",
		n, pct(afterCommit, .5), pct(afterCommit, .99), afterCommit[n-1], pct(fromCall, .5), pct(fromCall, .99), fromCall[n-1])
}

// An instance sees its own revocations at once, not after its notice's
// round trip: revoke, then introspect at the same instance, is never
// answered "active". Its listener is cut off silently (the proxy swallows
// everything) with a heartbeat long enough that the deny-list stays trusted
// for the whole test: no notice can arrive, so only the instance's own
// bookkeeping can make the checks right.
func TestDenyListOwnRevocationsAtOnce(t *testing.T) {
	dbURL := storetest.PostgresURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	proxy := newBlackhole(t, u.Host)
	var stmts atomic.Int64
	a := storetest.Open(t, dbURL, store.WithListenDial(store.Options{
		ListenHeartbeat: 30 * time.Second, OnStatement: func(context.Context, string) { stmts.Add(1) },
	}, proxy.dial))
	waitFor(t, "the deny-list is trusted", 30*time.Second, a.RevocationsInMemory)
	proxy.dropped.Store(true)
	mustOwnUser(t, a, "own-u")
	now := time.Now()
	iat := now.Add(-time.Minute)
	checks := []struct {
		name                string
		jti, grant, subject string
		revoke              func() error
	}{
		{"jti", "own-jti", "g", "s", func() error { return a.RevokeJTI(ctx, "own-jti", now.Add(time.Hour)) }},
		{"grant", "j", "own-grant", "s", func() error { return a.RevokeGrant(ctx, "own-grant", now.Add(time.Hour)) }},
		{"subject", "j", "g", "own-u", func() error { return a.RevokeSubject(ctx, "own-u", now.Add(time.Hour)) }},
	}
	for _, c := range checks {
		if r, err := a.IsRevoked(ctx, c.jti, c.grant, c.subject, iat); err != nil || r {
			t.Fatalf("%s: revoked before: %v %v", c.name, r, err)
		}
		if err := c.revoke(); err != nil {
			t.Fatal(err)
		}
		before := stmts.Load()
		if r, err := a.IsRevoked(ctx, c.jti, c.grant, c.subject, iat); err != nil || !r {
			t.Errorf("%s: this instance's own revocation is not seen at once: %v %v", c.name, r, err)
		}
		if stmts.Load() == before {
			t.Errorf("%s: answered without the confirming query", c.name)
		}
	}
	if !a.RevocationsInMemory() {
		t.Fatal("the deny-list stopped being trusted: the test proved nothing")
	}
}

func mustOwnUser(t *testing.T, st *store.Store, id string) {
	t.Helper()
	if err := st.CreateUser(context.Background(), &store.User{ID: id, Username: "name-" + id, PasswordHash: "$argon2id$x"}); err != nil {
		t.Fatal(err)
	}
}
