package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// invalidationChannel is the PostgreSQL NOTIFY channel on which every
// instance hears about client changes made by any other.
const invalidationChannel = "latchkey_invalidate"

// clientCache keeps clients in memory: the token endpoint reads its client
// on every request. Entries live at most ttl; on PostgreSQL a change made
// by any instance evicts the entry everywhere at once (LISTEN/NOTIFY), and
// while that channel is down nothing is cached.
type clientCache struct {
	mu      sync.RWMutex
	entries map[string]cacheEntry
	ttl     time.Duration
	// enabled is false while the invalidation channel is not listening.
	enabled bool
	now     func() time.Time
}

type cacheEntry struct {
	client  Client
	fetched time.Time
}

func newClientCache(ttl time.Duration, enabled bool, now func() time.Time) *clientCache {
	return &clientCache{entries: map[string]cacheEntry{}, ttl: ttl, enabled: enabled && ttl > 0, now: now}
}

// get returns a copy, so that callers may change what they got.
func (c *clientCache) get(id string) (*Client, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.entries[id]
	if !ok || !c.enabled || c.now().Sub(e.fetched) > c.ttl {
		return nil, false
	}
	cl := e.client
	return &cl, true
}

func (c *clientCache) put(cl *Client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enabled {
		c.entries[cl.ID] = cacheEntry{client: *cl, fetched: c.now()}
	}
}

func (c *clientCache) evict(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, id)
}

func (c *clientCache) setEnabled(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.enabled = on && c.ttl > 0
	clear(c.entries)
}

// notifyClientChanged evicts a client here and, on PostgreSQL, tells every
// other instance; inside a transaction the notice goes out on commit.
func (s *Store) notifyClientChanged(ctx context.Context, id string) error {
	s.clients.evict(id)
	if s.dialect != DialectPostgres {
		return nil
	}
	return s.db(ctx).Exec("SELECT pg_notify(?, ?)", invalidationChannel, "client:"+id).Error
}

// listen holds a connection that LISTENs for invalidations until ctx ends,
// reconnecting after failures. The cache is off whenever it is not
// listening, so a lost notice can never leave a stale client in use.
func (s *Store) listen(ctx context.Context, databaseURL string) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, databaseURL)
		s.clients.setEnabled(false)
		if ctx.Err() != nil {
			return
		}
		s.log.WarnContext(ctx, "client cache invalidation channel lost; caching off until it is back", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (s *Store) listenOnce(ctx context.Context, databaseURL string) error {
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+invalidationChannel); err != nil {
		return err
	}
	s.clients.setEnabled(true)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		if id, ok := strings.CutPrefix(n.Payload, "client:"); ok {
			s.clients.evict(id)
		}
	}
}
