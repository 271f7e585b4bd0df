package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/store"
)

// denyListBackendTests open two stores on one database: a revocation at one
// instance must reach the other's in-memory deny-list (denylist.go).
var denyListBackendTests = []struct {
	name string
	fn   func(t *testing.T, b Backend)
}{
	{"DenyListEveryWritePathReachesOtherInstance", testDenyListWritePaths},
	{"DenyListConcurrentRevocationsAndRebuilds", testDenyListConcurrent},
}

// statementCounter counts the statements a store sends.
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) record(context.Context, string) { c.n.Add(1) }

// twoInstances opens a (the revoking instance) and b (the checking one,
// whose statements are counted) on one fresh database, and on PostgreSQL
// waits until b's deny-list is trusted.
func twoInstances(t *testing.T, be Backend, opts store.Options) (a, b *store.Store, stmts *statementCounter) {
	t.Helper()
	url := be.URL(t)
	a = Open(t, url, store.Options{})
	stmts = &statementCounter{}
	opts.OnStatement = stmts.record
	opts.ListenURL = be.ListenURL(t, url)
	b = Open(t, url, opts)
	if b.Dialect() == store.DialectPostgres {
		// Generous, as for the key notices: on a loaded machine the
		// listener may be refused and retried with backoff.
		eventually(t, "the deny-list is trusted", 30*time.Second, b.RevocationsInMemory)
	} else if b.RevocationsInMemory() {
		t.Fatal("SQLite claims an in-memory deny-list it cannot keep current")
	}
	return a, b, stmts
}

func eventually(t *testing.T, what string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Every way a row reaches revoked_jtis, revoked_grants or revoked_subjects
// is announced (the triggers of migration 00026): a revocation at instance
// a is seen by instance b as soon as the notice arrives. Before it, b
// answers "not revoked" from memory without a query (the lever), which is
// why a path that forgot to announce would leave b answering "not revoked"
// for good, and this test would time out. On SQLite b always asks.
func testDenyListWritePaths(t *testing.T, be Backend) {
	a, b, stmts := twoInstances(t, be, store.Options{})
	ctx := ctxT(t)
	now := time.Now().UTC()
	pg := b.Dialect() == store.DialectPostgres
	mustUser(t, a, "dl-u")
	mustUser(t, a, "dl-v")
	c := mustClient(t, a, "dl-c")
	// The logout's grant is another client's: taking dl-c's back must not
	// revoke it first.
	c2 := mustClient(t, a, "dl-c2")
	ls := &store.LoginSession{UserID: "dl-v", AuthTime: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := a.CreateLoginSession(ctx, "dl-cookie", ls); err != nil {
		t.Fatal(err)
	}
	for id, cl := range map[string]*store.Client{"dl-logout": c2, "dl-app": c} {
		r := userGrant(cl, id, "dl-v", ls.ID)
		if err := a.CreateAuthorizeCodeSession(ctx, "code-"+id, r); err != nil {
			t.Fatal(err)
		}
	}
	iat := now.Add(-time.Minute)
	cases := []struct {
		name                string
		jti, grant, subject string
		revoke              func() error
	}{
		{"jti (RFC 7009 on a JWT)", "dl-jti", "g0", "s0", func() error { return a.RevokeJTI(ctx, "dl-jti", now.Add(time.Hour)) }},
		{"grant JWTs", "j1", "dl-deny", "s1", func() error { return a.DenyGrantJWTs(ctx, "dl-deny", now.Add(time.Hour)) }},
		{"refresh reuse revokes the grant", "j2", "dl-reuse", "s2", func() error {
			_, err := a.RevokeLiveGrant(ctx, "dl-reuse", now.Add(time.Hour))
			return err
		}},
		{"subject", "j3", "g3", "dl-u", func() error { return a.RevokeSubject(ctx, "dl-u", now.Add(time.Hour)) }},
		{"logout ends the session's grants", "j4", "dl-logout", "s4", func() error { return a.EndLoginSession(ctx, ls.ID, now.Add(time.Hour)) }},
	}
	// RevokeApp needs the session EndLoginSession deletes: its grant goes
	// first.
	cases = append([]struct {
		name                string
		jti, grant, subject string
		revoke              func() error
	}{{"application taken back", "j5", "dl-app", "s5", func() error { return a.RevokeApp(ctx, "dl-v", "dl-c", now.Add(time.Hour)) }}}, cases...)
	for _, tc := range cases {
		before := stmts.n.Load()
		if r, err := b.IsRevoked(ctx, tc.jti, tc.grant, tc.subject, iat); err != nil || r {
			t.Fatalf("%s: revoked before the revocation: %v %v", tc.name, r, err)
		}
		if spent := stmts.n.Load() - before; pg && spent != 0 {
			t.Errorf("%s: a trusted miss sent %d statements, want 0", tc.name, spent)
		}
		if err := tc.revoke(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		eventually(t, tc.name+" seen by the other instance", 10*time.Second, func() bool {
			r, err := b.IsRevoked(ctx, tc.jti, tc.grant, tc.subject, iat)
			if err != nil {
				t.Fatal(err)
			}
			return r
		})
	}
	// A subject's revocation covers what was issued until then, not after:
	// the in-memory check compares revoked_at as the query does.
	before := stmts.n.Load()
	if r, err := b.IsRevoked(ctx, "j6", "g6", "dl-u", time.Now().Add(time.Minute)); err != nil || r {
		t.Fatalf("a token issued after the subject's revocation is revoked: %v %v", r, err)
	}
	if spent := stmts.n.Load() - before; pg && spent != 0 {
		t.Errorf("a token issued after the subject's revocation sent %d statements, want 0", spent)
	}
}

// Revocations at one instance and checks at the other, all at once, while
// the deny-list is rebuilt every few milliseconds (-race): a revocation
// once seen is never lost again, a rebuild included, and every one is seen.
func testDenyListConcurrent(t *testing.T, be Backend) {
	a, b, _ := twoInstances(t, be, store.Options{DenyListRebuild: 5 * time.Millisecond})
	ctx := ctxT(t)
	until := time.Now().Add(time.Hour)
	const writers, each = 4, 25
	var seen sync.Map
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := a.RevokeJTI(ctx, fmt.Sprintf("cc-%d-%d", w, i), until); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	var checkers sync.WaitGroup
	for range 4 {
		checkers.Add(1)
		go func() {
			defer checkers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for w := range writers {
					for i := range each {
						jti := fmt.Sprintf("cc-%d-%d", w, i)
						r, err := b.IsRevoked(ctx, jti, "g", "s", time.Now())
						if err != nil {
							t.Error(err)
							return
						}
						if _, was := seen.Load(jti); was && !r {
							t.Errorf("%s was seen revoked, then not", jti)
						}
						if r {
							seen.Store(jti, true)
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	eventually(t, "every revocation seen", 20*time.Second, func() bool {
		n := 0
		seen.Range(func(any, any) bool { n++; return true })
		return n == writers*each
	})
	close(stop)
	checkers.Wait()
}
