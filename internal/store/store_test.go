package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.ForEachBackend(t, storetest.RunConformance)
}

// Two instances on one database: a client change made through one is seen
// by the other at once on PostgreSQL (pushed over LISTEN/NOTIFY) and within
// the short cache lifetime on SQLite.
func TestClientCacheAcrossInstances(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		url := b.URL(t)
		// Through PgBouncer, with LATCHKEY_DATABASE_LISTEN_URL set: the
		// changes are pushed as on a direct connection.
		a := storetest.Open(t, url, store.Options{ListenURL: b.ListenURL(t, url)})
		// The other instance's cache lifetime passes when the test says.
		var mu sync.Mutex
		var offset time.Duration
		other := storetest.Open(t, url, store.Options{ListenURL: b.ListenURL(t, url), Now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return time.Now().Add(offset)
		}})
		c := &store.Client{ID: "cached", Name: "v1", TokenEndpointAuthMethod: "client_secret_basic", SecretHash: []byte("h1")}
		if err := a.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		// waitFor sees the change at once on SQLite once the cache
		// lifetime has passed; on PostgreSQL, where the lifetime is a
		// minute, it polls (bounded) for the notification to arrive.
		waitFor := func(what string, ok func() bool) {
			t.Helper()
			if other.Dialect() == store.DialectSQLite {
				mu.Lock()
				offset += 2 * time.Second // the SQLite cache lifetime is 1s
				mu.Unlock()
			}
			deadline := time.Now().Add(3 * time.Second)
			for !ok() {
				if time.Now().After(deadline) {
					t.Fatalf("the other instance did not see %s", what)
				}
				time.Sleep(20 * time.Millisecond) // polling for LISTEN/NOTIFY
			}
		}
		// Warm the other instance's cache; PostgreSQL caches once it listens.
		waitFor("the cache turned on", other.ClientCacheOn)
		waitFor("the client", func() bool { got, err := other.FindClient(ctx, "cached"); return err == nil && got.Name == "v1" })

		if err := a.UpdateClient(ctx, "cached", func(c *store.Client) error { c.SecretHash = []byte("h2"); return nil }); err != nil {
			t.Fatal(err)
		}
		waitFor("the new secret", func() bool {
			got, err := other.FindClient(ctx, "cached")
			return err == nil && string(got.SecretHash) == "h2"
		})
		if err := a.DeleteClient(ctx, "cached"); err != nil {
			t.Fatal(err)
		}
		waitFor("the deletion", func() bool { _, err := other.FindClient(ctx, "cached"); return errors.Is(err, store.ErrNotFound) })

		// A copy handed out is the caller's: changing it changes nothing cached.
		_ = a.CreateClient(ctx, &store.Client{ID: "copy", TokenEndpointAuthMethod: "none"})
		got, _ := a.FindClient(ctx, "copy")
		got.Name = "mutated"
		if again, _ := a.FindClient(ctx, "copy"); again.Name == "mutated" {
			t.Fatal("the cache hands out shared clients")
		}
	})
}

// Inside a transaction FindClient reads the row, never the cache: a
// read-modify-write must start from what it will overwrite. On SQLite a
// second instance's change reaches this one's cache only when the entry
// expires, which makes the stale copy deterministic.
func TestFindClientInTransactionSkipsCache(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		url := b.URL(t)
		a := storetest.Open(t, url, store.Options{ClientCacheTTL: time.Hour})
		other := storetest.Open(t, url, store.Options{})
		if err := a.CreateClient(ctx, &store.Client{ID: "stale", Name: "v1", TokenEndpointAuthMethod: "none"}); err != nil {
			t.Fatal(err)
		}
		_, _ = a.FindClient(ctx, "stale") // cached, where this backend caches
		if err := other.UpdateClient(ctx, "stale", func(c *store.Client) error { c.Name = "v2"; return nil }); err != nil {
			t.Fatal(err)
		}
		err := a.InTx(ctx, func(ctx context.Context) error {
			got, err := a.FindClient(ctx, "stale")
			if err != nil {
				return err
			}
			if got.Name != "v2" {
				t.Errorf("FindClient inside a transaction answered %q from the cache, want the row's v2", got.Name)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// Instances started at once with --migrate: one applies the migrations while
// the others wait, and the lock is gone afterwards. Through PgBouncer in
// transaction mode goose's session-level advisory lock failed here ("failed
// to unlock session"): its lock and unlock ran on different server
// connections.
func TestConcurrentMigrate(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		if b.Name == "sqlite" {
			t.Skip("SQLite: one instance per file; goose has no SQLite lock")
		}
		url := b.URL(t)
		dialect, source, err := config.ParseDatabaseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range errs {
			st, err := store.Open(ctx, dialect, source, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			wg.Add(1)
			go func() { defer wg.Done(); _, errs[i] = st.Migrate(ctx) }()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("instance %d: %v", i, err)
			}
		}
		// The lock was released: migrating again neither waits nor fails.
		st := storetest.Open(t, url, store.Options{})
		if pending, err := st.Pending(ctx); err != nil || pending {
			t.Fatalf("pending after migrate: %v %v", pending, err)
		}
	})
}
