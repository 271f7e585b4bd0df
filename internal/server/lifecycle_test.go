package server_test

import (
	"context"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/server"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// Run returns only after its background tasks have finished, so the store
// can be closed right after it: a task still using the pool would find it
// closed. The task here takes its time after the cancellation and then uses
// the store, as a janitor batch in flight would.
func TestRunWaitsForBackgroundTasks(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		var finished atomic.Bool
		var pingErr atomic.Value
		var st *store.Store
		slow := func(ctx context.Context) {
			<-ctx.Done()
			time.Sleep(200 * time.Millisecond) // a task slow to stop, not a wait for time to pass
			if err := st.Ping(context.Background()); err != nil {
				pingErr.Store(err)
			}
			finished.Store(true)
		}
		h := newHarness(t, b)
		st = h.store
		srv, err := server.New(context.Background(), h.cfg, h.store, slog.New(slog.DiscardHandler), server.WithBackground(slow))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx, func(net.Addr, net.Addr) { cancel() }) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
		if !finished.Load() {
			t.Fatal("Run returned while a background task was still running")
		}
		if err := pingErr.Load(); err != nil {
			t.Fatalf("the background task found the store unusable: %v", err)
		}
	})
}
