package store

import (
	"context"

	"github.com/jackc/pgx/v5/pgconn"
)

// WithListenDial makes the client-cache listener dial through dial: tests
// put a proxy in its way that can drop the connection without a word.
func WithListenDial(o Options, dial pgconn.DialFunc) Options {
	o.listenDial = dial
	return o
}

// ClientCacheOn reports whether clients are served from memory.
func (s *Store) ClientCacheOn() bool {
	s.clients.mu.RLock()
	defer s.clients.mu.RUnlock()
	return s.clients.enabled
}

// HoldProofSpends makes DPoP proof spends queue as if a statement were in
// flight. queued says how many wait; release sends them.
func (s *Store) HoldProofSpends() (queued func() int, release func()) {
	q := &s.proofSpends
	q.mu.Lock()
	q.running = true
	q.mu.Unlock()
	queued = func() int {
		q.mu.Lock()
		defer q.mu.Unlock()
		return len(q.waiting)
	}
	return queued, func() { s.drainProofSpends(context.Background()) }
}

// WithDenyListHooks calls heard after each revocation notice is applied and
// load at the stages of each deny-list load ("begun": notices are kept for
// it; "read": the tables are read, not yet swapped in).
func WithDenyListHooks(o Options, heard func(), load func(stage string)) Options {
	o.denyHeard, o.onDenyLoad = heard, load
	return o
}
