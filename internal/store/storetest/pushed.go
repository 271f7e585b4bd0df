package storetest

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/store"
)

// pushedTests are the conformance cases of pushed authorization requests
// (RFC 9126, store/pushed.go).
var pushedTests = []struct {
	name string
	fn   func(t *testing.T, st *store.Store)
}{
	{"PushedRequestSingleUseAndOwnClientOnly", testPushedSingleUse},
}

// pushedBackendTests need a clock, or two instances on one database.
var pushedBackendTests = []struct {
	name string
	fn   func(t *testing.T, b Backend)
}{
	{"PushedRequestExpiresAndIsPurged", testPushedExpiry},
	{"PushedRequestConcurrentRedemptionsOneWinnerAcrossInstances", testPushedConcurrentRedemption},
}

func pushRequest(t *testing.T, st *store.Store, id, clientID string, exp time.Time) {
	t.Helper()
	err := st.CreatePushedRequest(ctxT(t), &store.PushedRequest{ID: id, ClientID: clientID, Form: "client_id=" + clientID + "&response_type=code", ExpiresAt: exp})
	if err != nil {
		t.Fatalf("push: %v", err)
	}
}

func testPushedSingleUse(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustClient(t, st, "par-a")
	mustClient(t, st, "par-b")
	pushRequest(t, st, "h1", "par-a", time.Now().Add(time.Minute))
	if err := st.CreatePushedRequest(ctx, &store.PushedRequest{ID: "h2", ClientID: "no-such-client", Form: "x=1", ExpiresAt: time.Now().Add(time.Minute)}); !errors.Is(err, store.ErrMissingReference) {
		t.Errorf("push for a missing client: %v, want ErrMissingReference", err)
	}
	// Another client's redemption fails and leaves the request to its owner.
	if _, err := st.ConsumePushedRequest(ctx, "h1", "par-b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another client's redemption: %v, want ErrNotFound", err)
	}
	got, err := st.ConsumePushedRequest(ctx, "h1", "par-a")
	if err != nil {
		t.Fatalf("redeem: %v", err)
	}
	if got.ClientID != "par-a" || got.Form != "client_id=par-a&response_type=code" {
		t.Errorf("redeemed %+v", got)
	}
	if _, err := st.ConsumePushedRequest(ctx, "h1", "par-a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second redemption: %v, want ErrNotFound", err)
	}
	if _, err := st.ConsumePushedRequest(ctx, "never-pushed", "par-a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown request: %v, want ErrNotFound", err)
	}
	// Deleting the client deletes what it pushed.
	pushRequest(t, st, "h3", "par-b", time.Now().Add(time.Minute))
	if err := st.DeleteClient(ctx, "par-b"); err != nil {
		t.Fatal(err)
	}
	if rows := RawColumn(t, st, "pushed_requests", "id"); len(rows) != 0 {
		t.Errorf("rows left after the client was deleted: %v", rows)
	}
}

func testPushedExpiry(t *testing.T, b Backend) {
	clock := &manualClock{now: time.Now().UTC()}
	st := Open(t, b.URL(t), store.Options{Now: clock.Now})
	ctx := ctxT(t)
	mustClient(t, st, "par-exp")
	pushRequest(t, st, "live", "par-exp", clock.Now().Add(60*time.Second))
	pushRequest(t, st, "dies", "par-exp", clock.Now().Add(60*time.Second))
	clock.advance(59 * time.Second)
	if _, err := st.ConsumePushedRequest(ctx, "live", "par-exp"); err != nil {
		t.Fatalf("redeem before expiry: %v", err)
	}
	clock.advance(2 * time.Second)
	if _, err := st.ConsumePushedRequest(ctx, "dies", "par-exp"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("redeem after expiry: %v, want ErrNotFound", err)
	}
	if _, err := st.DeleteExpiredBatch(ctx, store.Retention{}, 100); err != nil {
		t.Fatal(err)
	}
	if rows := RawColumn(t, st, "pushed_requests", "id"); len(rows) != 0 {
		t.Errorf("the janitor left expired pushed requests: %v", rows)
	}
}

// Two instances on one database, many redemptions of one request at once:
// exactly one gets it, the rest ErrNotFound.
func testPushedConcurrentRedemption(t *testing.T, b Backend) {
	url := b.URL(t)
	one, two := Open(t, url, store.Options{}), Open(t, url, store.Options{})
	ctx := ctxT(t)
	mustClient(t, one, "par-race")
	for round := range 5 {
		id := fmt.Sprintf("race-%d", round)
		pushRequest(t, one, id, "par-race", time.Now().Add(time.Minute))
		var n atomic.Int64
		errs := runConcurrently(10, func() error {
			st := one
			if n.Add(1)%2 == 0 {
				st = two
			}
			_, err := st.ConsumePushedRequest(ctx, id, "par-race")
			return err
		})
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, store.ErrNotFound):
			default:
				t.Errorf("loser got %v, want ErrNotFound", err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d redemptions won, want exactly 1", round, wins)
		}
	}
}
