package storetest

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/store"
	"github.com/ory/fosite"
)

// janitorTests are the conformance cases of what the janitor relies on:
// batched deletion of expired rows and the lease that admits one instance.
var janitorTests = []struct {
	name string
	fn   func(t *testing.T, st *store.Store)
}{
	{"JanitorDeletesExpiredInBatches", testDeleteExpiredBatch},
	{"JanitorLease", testLease},
	{"JanitorConcurrentLeaseOneHolder", testConcurrentLease},
	{"JanitorCountsByTable", testDeleteExpiredByTable},
	{"CountActiveLoginSessions", testCountActiveLoginSessions},
}

// The janitor's metrics count deleted rows per table: each table the
// batch touched, with what it deleted there, and no table it did not.
func testDeleteExpiredByTable(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	c := mustClient(t, st, "jbt-c")
	now := time.Now().UTC()
	for i := range 3 {
		r := newRequest(c, fmt.Sprintf("jbt-%d", i), "jbt-u")
		r.Session.SetExpiresAt(fosite.AccessToken, now.Add(-time.Hour))
		if err := st.CreateAccessTokenSession(ctx, fmt.Sprintf("jbt-at-%d", i), r); err != nil {
			t.Fatal(err)
		}
	}
	mustUser(t, st, "jbt-u")
	ls := &store.LoginSession{UserID: "jbt-u", AuthTime: now.Add(-2 * time.Hour), LastSeenAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)}
	if err := st.CreateLoginSession(ctx, "jbt-cookie", ls); err != nil {
		t.Fatal(err)
	}
	r := store.Retention{AccessTokenTTL: 15 * time.Minute, SessionIdleTTL: 24 * time.Hour, FailureWindow: time.Hour}
	got, err := st.DeleteExpiredByTable(ctx, r, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"access_tokens": 3, "login_sessions": 1}
	if len(got) != len(want) || got["access_tokens"] != 3 || got["login_sessions"] != 1 {
		t.Fatalf("deleted by table %v, want %v", got, want)
	}
	if got, err := st.DeleteExpiredByTable(ctx, r, 100); err != nil || len(got) != 0 {
		t.Fatalf("second pass deleted %v (%v), want nothing", got, err)
	}
}

// Active login sessions are those neither expired nor idle since the
// cutoff, and the count stops at its limit.
func testCountActiveLoginSessions(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "cals-u")
	now := time.Now().UTC()
	for i, ls := range []store.LoginSession{
		{LastSeenAt: now, ExpiresAt: now.Add(time.Hour)},                        // active
		{LastSeenAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour)},      // active
		{LastSeenAt: now.Add(-10 * time.Minute), ExpiresAt: now.Add(time.Hour)}, // active
		{LastSeenAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(time.Hour)},    // idle
		{LastSeenAt: now, ExpiresAt: now.Add(-time.Second)},                     // expired
	} {
		ls.UserID, ls.AuthTime = "cals-u", now.Add(-3*time.Hour)
		if err := st.CreateLoginSession(ctx, fmt.Sprintf("cals-%d", i), &ls); err != nil {
			t.Fatal(err)
		}
	}
	for limit, want := range map[int]int64{100: 3, 2: 2} {
		n, err := st.CountActiveLoginSessions(ctx, now.Add(-time.Hour), limit)
		if err != nil || n != want {
			t.Errorf("limit %d: counted %d (%v), want %d", limit, n, err, want)
		}
	}
}

// Each call deletes at most batch rows of each kind, only expired ones,
// until none is left; live rows of every token kind stay.
func testDeleteExpiredBatch(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	c := mustClient(t, st, "jan-c")
	now := time.Now().UTC()
	expiring := func(id string, exp time.Time) *fosite.Request {
		r := newRequest(c, id, "jan-u")
		for _, k := range []fosite.TokenType{fosite.AccessToken, fosite.RefreshToken, fosite.AuthorizeCode} {
			r.Session.SetExpiresAt(k, exp)
		}
		return r
	}
	for i := range 5 {
		old := expiring(fmt.Sprintf("jan-old-%d", i), now.Add(-time.Hour))
		for _, err := range []error{
			st.CreateAccessTokenSession(ctx, "old-at-"+old.ID, old),
			st.CreateRefreshTokenSession(ctx, "old-rt-"+old.ID, "", old),
			st.CreatePKCERequestSession(ctx, "old-pkce-"+old.ID, old),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	live := expiring("jan-live", now.Add(time.Hour))
	if err := st.CreateAccessTokenSession(ctx, "live-at", live); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateRefreshTokenSession(ctx, "live-rt", "", live); err != nil {
		t.Fatal(err)
	}
	if err := st.CreatePKCERequestSession(ctx, "live-pkce", live); err != nil {
		t.Fatal(err)
	}
	r := store.Retention{AccessTokenTTL: 15 * time.Minute, SessionIdleTTL: time.Hour, FailureWindow: time.Hour}
	for i, want := range []int64{6, 6, 3, 0} { // 2 of each of 3 kinds, twice; then the last of each
		n, err := st.DeleteExpiredBatch(ctx, r, 2)
		if err != nil || n != want {
			t.Fatalf("batch %d deleted %d (%v), want %d", i, n, err, want)
		}
	}
	if _, err := st.GetAccessTokenSession(ctx, "live-at", nil); err != nil {
		t.Errorf("live access token: %v", err)
	}
	if _, err := st.GetRefreshTokenSession(ctx, "live-rt", nil); err != nil {
		t.Errorf("live refresh token: %v", err)
	}
	if _, err := st.GetPKCERequestSession(ctx, "live-pkce", nil); err != nil {
		t.Errorf("live PKCE request: %v", err)
	}
	if _, err := st.GetRefreshTokenSession(ctx, "old-rt-jan-old-0", nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Errorf("expired refresh token: %v, want ErrNotFound", err)
	}
}

func testLease(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	tests := []struct {
		name   string
		holder string
		ttl    time.Duration
		want   bool
	}{
		{"first taker", "a", time.Minute, true},
		{"another while held", "b", time.Minute, false},
		{"the holder renews", "a", -time.Second, true}, // and lets it lapse
		{"another after it lapsed", "b", time.Minute, true},
		{"the old holder after the takeover", "a", time.Minute, false},
	}
	for _, tc := range tests {
		got, err := st.AcquireLease(ctx, "jan-lease", tc.holder, tc.ttl)
		if err != nil || got != tc.want {
			t.Fatalf("%s: AcquireLease = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if err := st.ReleaseLease(ctx, "jan-lease", "a"); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.AcquireLease(ctx, "jan-lease", "a", time.Minute); got {
		t.Fatal("a release by a non-holder freed the lease")
	}
	if err := st.ReleaseLease(ctx, "jan-lease", "b"); err != nil {
		t.Fatal(err)
	}
	if got, err := st.AcquireLease(ctx, "jan-lease", "a", time.Minute); err != nil || !got {
		t.Fatalf("after the holder released it: %v %v", got, err)
	}
}

// Instances racing for a free lease: exactly one gets it.
func testConcurrentLease(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	const n = 8
	got := make(chan bool, n)
	var next atomic.Int64
	for i, err := range runConcurrently(n, func() error {
		// Distinct holders: the holder itself may always renew.
		ok, err := st.AcquireLease(ctx, "jan-race", fmt.Sprintf("holder-%d", next.Add(1)), time.Minute)
		got <- ok
		return err
	}) {
		if err != nil {
			t.Errorf("instance %d: %v", i, err)
		}
	}
	close(got)
	wins := 0
	for ok := range got {
		if ok {
			wins++
		}
	}
	if wins != 1 {
		t.Fatalf("%d instances hold the lease, want 1", wins)
	}
}
