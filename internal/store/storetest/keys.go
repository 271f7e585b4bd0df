package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/store"
)

// keysBackendTests are the signing key cases that open two stores on one
// database: two instances.
var keysBackendTests = []struct {
	name string
	fn   func(t *testing.T, b Backend)
}{
	{"SigningKeyChangeReachesOtherInstance", testSigningKeyNotices},
}

// A key change announced by one instance reaches the other's callbacks at
// once on PostgreSQL. On SQLite there is no channel and the announcement is
// a no-op (instances there read the keys every refresh interval).
func testSigningKeyNotices(t *testing.T, b Backend) {
	url := b.URL(t)
	a := Open(t, url, store.Options{})
	// Through a pooler the notices need LATCHKEY_DATABASE_LISTEN_URL;
	// without it the keys are re-read every refresh interval
	// (TestClientCachePolledThroughPooler).
	other := Open(t, url, store.Options{ListenURL: b.ListenURL(t, url)})
	heard := make(chan struct{}, 16)
	other.OnSigningKeysChanged(func() { heard <- struct{}{} })
	ctx := ctxT(t)
	if a.Dialect() != store.DialectPostgres {
		if err := a.NotifySigningKeysChanged(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-heard:
			t.Fatal("SQLite announced a key change through a channel it does not have")
		default:
		}
		return
	}
	wait := func(what string) {
		t.Helper()
		select {
		case <-heard:
		// Generous: on a loaded machine the listener's connection can be
		// refused (too many clients) and retried with backoff before it
		// listens; a notice that arrives returns at once.
		case <-time.After(30 * time.Second):
			t.Fatalf("no key change notice: %s", what)
		}
	}
	// The listener's (re)start counts as a change: a notice sent while it
	// was not listening is lost.
	wait("when the listener started")
	// Announced inside the key lock's transaction, as the keys package
	// does: the notice goes out on commit.
	if err := a.WithSigningKeyLock(ctx, func(ctx context.Context) error {
		return a.NotifySigningKeysChanged(ctx)
	}); err != nil {
		t.Fatal(err)
	}
	wait("after a committed change")
}
