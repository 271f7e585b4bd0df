package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/store"
)

// logoutTests are the conformance cases of the back-channel logout outbox
// (store/logout.go): what ending a session owes, and the lease under which
// instances deliver it.
var logoutTests = []struct {
	name string
	fn   func(t *testing.T, st *store.Store)
}{
	{"LogoutOutboxWrittenWithTheSessionsEnd", testLogoutEnqueue},
	{"LogoutOutboxConcurrentClaimsTakeEachRowOnce", testLogoutConcurrentClaims},
}

// logoutBackendTests need a clock of their own.
var logoutBackendTests = []struct {
	name string
	fn   func(t *testing.T, b Backend)
}{
	{"LogoutOutboxLeaseRetryGiveUp", testLogoutLease},
}

// bclClient is a client that registered a back-channel logout URI (empty:
// none).
func bclClient(t *testing.T, st *store.Store, id, uri string) *store.Client {
	t.Helper()
	c := mustClient(t, st, id)
	if err := st.UpdateClient(ctxT(t), id, func(c *store.Client) error { c.BackchannelLogoutURI = uri; return nil }); err != nil {
		t.Fatal(err)
	}
	c.BackchannelLogoutURI = uri
	return c
}

// sessionWith signs userID in and issues a code to each client under the
// session, as the code flow does; it returns the session.
func sessionWith(t *testing.T, st *store.Store, cookie, userID string, clients ...*store.Client) *store.LoginSession {
	t.Helper()
	ctx := ctxT(t)
	now := time.Now().UTC()
	ls := &store.LoginSession{UserID: userID, AuthTime: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := st.CreateLoginSession(ctx, cookie, ls); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		r := userGrant(c, fmt.Sprintf("%s-grant-%d", cookie, i), userID, ls.ID)
		if err := st.CreateAuthorizeCodeSession(ctx, "code-"+r.ID, r); err != nil {
			t.Fatal(err)
		}
	}
	return ls
}

// Ending a session writes one delivery per client of that session that
// registered a back-channel URI, however many grants it holds, in the
// ending transaction: rolled back with it, never written twice. A user's
// revocation owes every session's clients.
func testLogoutEnqueue(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "lo-u")
	mustUser(t, st, "lo-v")
	c1, c2 := bclClient(t, st, "lo-c1", "https://one.example/bcl"), bclClient(t, st, "lo-c2", "https://two.example/bcl")
	c3 := bclClient(t, st, "lo-c3", "")
	ls := sessionWith(t, st, "lo-cookie", "lo-u", c1, c1, c2, c3)
	otherSession := sessionWith(t, st, "lo-other", "lo-v", c1)

	errRollback := errors.New("roll back")
	if err := st.InTx(ctx, func(ctx context.Context) error {
		if err := st.EndLoginSession(ctx, ls.ID, time.Now().Add(time.Hour)); err != nil {
			return err
		}
		return errRollback
	}); !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	if rows, _ := st.LogoutDeliveries(ctx, ""); len(rows) != 0 {
		t.Fatalf("a rolled-back logout left deliveries: %+v", rows)
	}
	if err := st.EndLoginSession(ctx, ls.ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Again: the session is gone, nothing more is owed.
	if err := st.EndLoginSession(ctx, ls.ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	rows, err := st.LogoutDeliveries(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		if r.SID != ls.SID || r.Subject != "lo-u" || r.Attempts != 0 || r.GaveUpAt != nil || r.NextAttemptAt.After(time.Now().Add(time.Second)) {
			t.Errorf("delivery %+v", r)
		}
		got = append(got, r.ClientID+" "+r.URI)
	}
	slices.Sort(got)
	if want := []string{"lo-c1 https://one.example/bcl", "lo-c2 https://two.example/bcl"}; !slices.Equal(got, want) {
		t.Fatalf("deliveries %v, want %v", got, want)
	}

	// Two sessions of lo-v (the second on another browser): revoking the
	// user owes the client of each.
	second := sessionWith(t, st, "lo-other-2", "lo-v", c2)
	if err := st.RevokeSubject(ctx, "lo-v", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*store.LoginSession{otherSession, second} {
		if rows, _ := st.LogoutDeliveries(ctx, s.SID); len(rows) != 1 || rows[0].Subject != "lo-v" {
			t.Errorf("session %s after RevokeSubject: %+v", s.SID, rows)
		}
	}
	// Deleting the client forgets what it was owed.
	if err := st.DeleteClient(ctx, "lo-c2"); err != nil {
		t.Fatal(err)
	}
	for _, r := range mustDeliveries(t, st) {
		if r.ClientID == "lo-c2" {
			t.Errorf("a deleted client's delivery stayed: %+v", r)
		}
	}
}

func mustDeliveries(t *testing.T, st *store.Store) []store.LogoutDelivery {
	t.Helper()
	rows, err := st.LogoutDeliveries(ctxT(t), "")
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// Claimers racing (goroutines; on PostgreSQL each on its own connection)
// take every due row exactly once while the leases hold.
func testLogoutConcurrentClaims(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	clients := make([]*store.Client, 8)
	for i := range clients {
		clients[i] = bclClient(t, st, fmt.Sprintf("lc-%d", i), fmt.Sprintf("https://rp%d.example/bcl", i))
	}
	for i := range 5 {
		u := fmt.Sprintf("lc-u%d", i)
		mustUser(t, st, u)
		ls := sessionWith(t, st, "lc-cookie-"+u, u, clients...)
		if err := st.EndLoginSession(ctx, ls.ID, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	for i, err := range runConcurrently(6, func() error {
		for {
			rows, err := st.ClaimLogoutDeliveries(ctx, store.LogoutClaim{Limit: 3, Lease: time.Hour})
			if err != nil || len(rows) == 0 {
				return err
			}
			mu.Lock()
			for _, r := range rows {
				seen[r.ID]++
			}
			mu.Unlock()
		}
	}) {
		if err != nil {
			t.Errorf("claimer %d: %v", i, err)
		}
	}
	if len(seen) != 40 {
		t.Errorf("claimed %d distinct rows, want 40", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("row %s claimed %d times", id, n)
		}
	}
}

// A claim leases rows; a lease that runs out (a crashed sender) makes them
// due again; only the claim's holder reschedules; a given-up row is never
// claimed and the janitor deletes it after GaveUpLogoutRetention.
func testLogoutLease(t *testing.T, b Backend) {
	clock := &manualClock{now: time.Now().UTC()}
	st := Open(t, b.URL(t), store.Options{Now: clock.Now})
	ctx := ctxT(t)
	mustUser(t, st, "ll-u")
	c1, c2 := bclClient(t, st, "ll-c1", "https://one.example/bcl"), bclClient(t, st, "ll-c2", "https://two.example/bcl")
	ls := sessionWith(t, st, "ll-cookie", "ll-u", c1, c2)
	if err := st.EndLoginSession(ctx, ls.ID, clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	claim := func(sid string) []store.LogoutDelivery {
		t.Helper()
		rows, err := st.ClaimLogoutDeliveries(ctx, store.LogoutClaim{SID: sid, Limit: 1, Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	if rows := claim("another-session"); len(rows) != 0 {
		t.Fatalf("a claim for another sid took %+v", rows)
	}
	first, second := claim(ls.SID), claim("")
	if len(first) != 1 || len(second) != 1 || first[0].ID == second[0].ID || first[0].Attempts != 1 || first[0].Claim == "" {
		t.Fatalf("claims: %+v %+v", first, second)
	}
	if rows := claim(""); len(rows) != 0 {
		t.Fatalf("a leased row was claimed again: %+v", rows)
	}
	// second is delivered: deleted.
	if err := st.DeleteLogoutDelivery(ctx, second[0].ID); err != nil {
		t.Fatal(err)
	}
	// The sender of first crashed: its lease runs out.
	clock.advance(2 * time.Minute)
	again := claim(first[0].SID)
	if len(again) != 1 || again[0].Attempts != 2 || again[0].Claim == first[0].Claim {
		t.Fatalf("after the lease: %+v", again)
	}
	// The crashed sender's late report changes nothing.
	if err := st.RetryLogoutDelivery(ctx, first[0].ID, first[0].Claim, clock.Now(), "stale", true); err != nil {
		t.Fatal(err)
	}
	// The holder's failure: due again at next, not before.
	next := clock.Now().Add(40 * time.Second)
	if err := st.RetryLogoutDelivery(ctx, again[0].ID, again[0].Claim, next, "503", false); err != nil {
		t.Fatal(err)
	}
	for _, r := range mustDeliveries(t, st) {
		if r.ID == again[0].ID && (r.GaveUpAt != nil || r.LastError != "503" || r.NextAttemptAt.Sub(next).Abs() > time.Millisecond) {
			t.Errorf("rescheduled row: %+v", r)
		}
	}
	clock.advance(30 * time.Second)
	if rows := claim(again[0].SID); len(rows) != 0 {
		t.Fatalf("claimed before its next attempt: %+v", rows)
	}
	clock.advance(11 * time.Second)
	retry := claim(again[0].SID)
	if len(retry) != 1 || retry[0].Attempts != 3 {
		t.Fatalf("retry: %+v", retry)
	}
	if err := st.RetryLogoutDelivery(ctx, retry[0].ID, retry[0].Claim, clock.Now(), "gone", true); err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Hour)
	if rows := claim(""); len(rows) != 0 {
		t.Fatalf("a given-up row was claimed: %+v", rows)
	}
	if rows := mustDeliveries(t, st); len(rows) != 1 || rows[0].GaveUpAt == nil {
		t.Fatalf("kept for the janitor: %+v", rows)
	}
	r := store.Retention{AccessTokenTTL: time.Minute, SessionIdleTTL: time.Hour, FailureWindow: time.Hour}
	if _, err := st.DeleteExpiredBatch(ctx, r, 100); err != nil {
		t.Fatal(err)
	}
	if rows := mustDeliveries(t, st); len(rows) != 1 {
		t.Fatalf("the janitor deleted a given-up row too early: %+v", rows)
	}
	clock.advance(store.GaveUpLogoutRetention)
	if _, err := st.DeleteExpiredBatch(ctx, r, 100); err != nil {
		t.Fatal(err)
	}
	if rows := mustDeliveries(t, st); len(rows) != 0 {
		t.Fatalf("the janitor kept a given-up row past its retention: %+v", rows)
	}
}

type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
