package store

import "github.com/jackc/pgx/v5/pgconn"

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
