package store_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// Spends that queue behind a statement in flight go out together in one
// statement, each still answered for itself: a duplicate in the batch is
// won once, and a spend whose request gives up before its statement leaves
// the queue without being spent.
func TestDPoPProofSpendsGrouped(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		var statements atomic.Int32
		st := storetest.Open(t, b.URL(t), store.Options{OnStatement: func(_ context.Context, sql string) {
			if strings.Contains(sql, "dpop_proofs") {
				statements.Add(1)
			}
		}})
		ctx := context.Background()
		exp := time.Now().Add(time.Minute)
		queued, release := st.HoldProofSpends()

		keys := []string{"k\x00a", "k\x00b", "k\x00c", "k\x00dup", "k\x00dup"}
		won := make([]bool, len(keys))
		var wg sync.WaitGroup
		for i, key := range keys {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := st.SpendDPoPProof(ctx, key, exp)
				if err != nil {
					t.Errorf("spend %q: %v", key, err)
				}
				won[i] = ok
			}()
		}
		waitQueued := func(n int) {
			for queued() != n {
				runtime.Gosched()
			}
		}
		waitQueued(len(keys))

		gaveUp, cancel := context.WithCancel(ctx)
		abandoned := make(chan error)
		go func() {
			_, err := st.SpendDPoPProof(gaveUp, "k\x00abandoned", exp)
			abandoned <- err
		}()
		waitQueued(len(keys) + 1)
		cancel()
		if err := <-abandoned; !errors.Is(err, context.Canceled) {
			t.Fatalf("abandoned spend: %v, want context.Canceled", err)
		}
		if n := queued(); n != len(keys) {
			t.Fatalf("%d spends queued after one gave up, want %d", n, len(keys))
		}

		release()
		wg.Wait()
		if n := statements.Load(); n != 1 {
			t.Errorf("%d statements for %d queued spends, want 1", n, len(keys))
		}
		if got := fmt.Sprint(won[:3]); got != "[true true true]" {
			t.Errorf("distinct proofs won %s, want all", got)
		}
		if won[3] == won[4] {
			t.Errorf("a proof queued twice was won %v and %v, want exactly once", won[3], won[4])
		}
		// The abandoned proof was never spent: it is still good.
		if ok, err := st.SpendDPoPProof(ctx, "k\x00abandoned", exp); err != nil || !ok {
			t.Errorf("the abandoned proof afterwards: %v, %v; want spendable", ok, err)
		}
	})
}
