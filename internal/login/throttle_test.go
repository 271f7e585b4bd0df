package login_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// The policy the reservation keeps: 5 attempts lock the username for a
// minute; after a lockout one attempt is allowed, and its failure doubles
// the lockout, up to 15 minutes; a success forgets the username.
func TestThrottlePolicy(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		clk := &clock{now: time.Now().UTC()}
		st := storetest.Open(t, b.URL(t), store.Options{Now: clk.Now})
		th := login.NewThrottle(st, login.DefaultThrottlePolicy)
		th.Sleep = func(_ context.Context, _ time.Duration) {}
		ctx := t.Context()
		fail := func() error {
			a, err := th.Reserve(ctx, "Pat", "192.0.2.1")
			if err == nil {
				a.Failed(ctx)
			}
			return err
		}
		for i := range 5 {
			if err := fail(); err != nil {
				t.Fatalf("attempt %d: %v", i+1, err)
			}
		}
		steps := []struct {
			name    string
			advance time.Duration
			locked  bool
		}{
			{"sixth attempt at once", 0, true},
			{"just before the minute", 59 * time.Second, true},
			{"after the minute: one attempt", 2 * time.Second, false},
			{"its failure locks for 2 minutes", 0, true},
			{"still within 2 minutes", 119 * time.Second, true},
			{"after 2 minutes: one attempt", 2 * time.Second, false},
			{"its failure locks for 4 minutes", 3 * time.Minute, true},
			{"after 4 minutes", time.Minute + time.Second, false},
		}
		for _, s := range steps {
			clk.advance(s.advance)
			err := fail()
			if locked := errors.Is(err, store.ErrLocked); locked != s.locked || (err != nil && !locked) {
				t.Fatalf("%s: %v, want locked=%v", s.name, err, s.locked)
			}
		}
		// The username is case-insensitive, and a success forgets it.
		clk.advance(16 * time.Minute)
		a, err := th.Reserve(ctx, "pat", "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Succeeded(ctx); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if err := fail(); err != nil {
				t.Fatalf("attempt %d after a success: %v", i+1, err)
			}
		}
	})
}
