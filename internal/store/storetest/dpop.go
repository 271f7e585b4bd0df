package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/store"
)

// testDPoPProofOnce: a DPoP proof is spent once (RFC 9449 §11.1), also
// when many instances present it at the same moment; an expired record
// neither blocks its key nor survives the janitor.
func testDPoPProofOnce(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	now := time.Now()
	spend := func(key string, exp time.Time) bool {
		t.Helper()
		ok, err := st.SpendDPoPProof(ctx, key, exp)
		if err != nil {
			t.Fatalf("spend %s: %v", key, err)
		}
		return ok
	}
	if !spend("jkt-a\x00jti-1", now.Add(time.Minute)) {
		t.Fatal("a fresh proof was refused")
	}
	if spend("jkt-a\x00jti-1", now.Add(time.Minute)) {
		t.Fatal("a spent proof was accepted again")
	}
	if !spend("jkt-b\x00jti-1", now.Add(time.Minute)) {
		t.Fatal("the same jti under another key was refused")
	}
	// An expired record is taken over: its proof is outside the window.
	if !spend("jkt-a\x00jti-old", now.Add(-time.Minute)) || !spend("jkt-a\x00jti-old", now.Add(time.Minute)) {
		t.Fatal("an expired record blocked its key")
	}
	if spend("jkt-a\x00jti-old", now.Add(time.Minute)) {
		t.Fatal("a taken-over record was spent twice")
	}

	const n = 16
	wins := 0
	for _, err := range runConcurrently(n, func() error {
		ok, err := st.SpendDPoPProof(ctx, "jkt-race\x00jti", now.Add(time.Minute))
		if err != nil {
			return err
		}
		if !ok {
			return errSpent
		}
		return nil
	}) {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, errSpent):
			t.Errorf("concurrent spend: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent spends of one proof won, want exactly 1", wins, n)
	}

	// Concurrent spends are grouped into shared statements: each of many
	// proofs, each presented four times at once, is still won exactly once,
	// and a spend's answer is its own, not its neighbour's in the batch.
	const proofs, copies = 12, 4
	var (
		mu   sync.Mutex
		next int
		won  = map[int]int{}
	)
	for _, err := range runConcurrently(proofs*copies, func() error {
		mu.Lock()
		proof := next % proofs
		next++
		mu.Unlock()
		ok, err := st.SpendDPoPProof(ctx, fmt.Sprintf("jkt-batch\x00jti-%d", proof), now.Add(time.Minute))
		if ok {
			mu.Lock()
			won[proof]++
			mu.Unlock()
		}
		return err
	}) {
		if err != nil {
			t.Errorf("grouped spend: %v", err)
		}
	}
	for i := range proofs {
		if won[i] != 1 {
			t.Errorf("proof %d won %d times of %d concurrent spends, want exactly 1", i, won[i], copies)
		}
	}

	if !spend("jkt-a\x00jti-gone", now.Add(-time.Minute)) {
		t.Fatal("spend of an expiring record refused")
	}
	if _, err := st.DeleteExpiredBatch(ctx, store.Retention{AccessTokenTTL: time.Minute, SessionIdleTTL: time.Hour, FailureWindow: time.Hour}, 100); err != nil {
		t.Fatal(err)
	}
	// The live records: two keys' jti-1, the taken-over one, the race's,
	// and the grouped ones.
	if left := RawColumn(t, st, "dpop_proofs", "jti"); len(left) != 4+proofs {
		t.Fatalf("%d proof records after the janitor, want the %d live ones", len(left), 4+proofs)
	}
}

var errSpent = errors.New("spent")
