package storetest

import (
	"errors"
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

	if !spend("jkt-a\x00jti-gone", now.Add(-time.Minute)) {
		t.Fatal("spend of an expiring record refused")
	}
	if _, err := st.DeleteExpiredBatch(ctx, store.Retention{AccessTokenTTL: time.Minute, SessionIdleTTL: time.Hour, FailureWindow: time.Hour}, 100); err != nil {
		t.Fatal(err)
	}
	// Four live records (two keys' jti-1, the taken-over one, the race's).
	if left := RawColumn(t, st, "dpop_proofs", "jti"); len(left) != 4 {
		t.Fatalf("%d proof records after the janitor, want the 4 live ones", len(left))
	}
}

var errSpent = errors.New("spent")
