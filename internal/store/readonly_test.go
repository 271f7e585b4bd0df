package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// A PostgreSQL server that takes no writes (a standby, or a primary demoted
// behind an address clients still use) is unavailable, not broken: a
// write fails with ErrUnavailable, which every endpoint answers 503 with
// Retry-After instead of 500, and Ready fails, so that /readyz takes the
// instance out of the load balancer. Seen in TestFailover's setting with
// target_session_attrs=any: the standby answered the driver and every
// write was a 500 while /readyz said ready. docs/operations.md, "High
// availability: failover".
func TestReadOnlyServerIsUnavailable(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		u := b.URL(t)
		st := storetest.Open(t, u, store.Options{})
		if err := st.Ready(ctx); err != nil {
			t.Fatalf("a writable database is not ready: %v", err)
		}
		if b.Name != "postgres" {
			// SQLite has no standby; PgBouncer 1.18 refuses the startup
			// parameter that makes a session read-only.
			return
		}
		// The session is read-only as on a standby: every transaction
		// refuses writes with SQLSTATE 25006.
		ro, err := store.Open(ctx, store.DialectPostgres, u+"&default_transaction_read_only=on", store.Options{ClientCacheTTL: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ro.Close() })
		err = ro.CreateClient(ctx, &store.Client{ID: "ro", Name: "ro", SecretHash: []byte("hash-ro")})
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("a write refused as read-only: %v, want ErrUnavailable", err)
		}
		if err := ro.Ready(ctx); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("a read-only database is ready: %v", err)
		}
	})
}
