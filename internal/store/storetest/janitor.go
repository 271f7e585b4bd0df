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
