package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// invalidationChannel is the PostgreSQL NOTIFY channel on which every
// instance hears about client changes made by any other.
const invalidationChannel = "latchkey_invalidate"

// clientCache keeps clients in memory: the token endpoint reads its client
// on every request. Entries live at most ttl; on PostgreSQL a change made
// by any instance evicts the entry everywhere at once (LISTEN/NOTIFY), and
// while that channel is down nothing is cached. A channel that died without
// a word is noticed within heartbeatsMissed heartbeats, which bounds how
// long a stale entry can be served. Where LISTEN cannot work at all (a
// pooler in transaction mode) the cache polls instead: entries live only
// pollTTL, so a change made elsewhere is seen within that bound.
type clientCache struct {
	mu      sync.RWMutex
	entries map[string]cacheEntry
	ttl     time.Duration
	pollTTL time.Duration
	// enabled is false while the invalidation channel is not listening.
	enabled bool
	// polling means no channel: entries live pollTTL.
	polling bool
	now     func() time.Time
	// origins is every origin some client allows (the CORS preflight's
	// question), nil until built. Any client change drops it; gen counts
	// the drops, so that a set built from a read that a change overtook is
	// not kept.
	origins      map[string]bool
	originsBuilt time.Time
	gen          uint64
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
	ttl := c.ttl
	if c.polling {
		ttl = min(ttl, c.pollTTL)
	}
	e, ok := c.entries[id]
	if !ok || !c.enabled || c.now().Sub(e.fetched) > ttl {
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
	c.origins = nil
	c.gen++
}

// dropOrigins forgets the origin set only: a new client changes which
// origins some client allows, but no cached client.
func (c *clientCache) dropOrigins() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.origins = nil
	c.gen++
}

func (c *clientCache) setEnabled(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.enabled = on && c.ttl > 0
	c.polling = false
	clear(c.entries)
	c.origins = nil
	c.gen++
}

// getOrigins returns the cached origin set, or false and the generation a
// set built now must be put back with.
func (c *clientCache) getOrigins() (map[string]bool, uint64, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.origins == nil || !c.enabled || c.now().Sub(c.originsBuilt) > c.ttl {
		return nil, c.gen, false
	}
	return c.origins, c.gen, true
}

func (c *clientCache) putOrigins(origins map[string]bool, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enabled && c.gen == gen {
		c.origins, c.originsBuilt = origins, c.now()
	}
}

// poll turns the cache on with entries that live pollTTL: for good, since
// no channel will tell it of changes.
func (c *clientCache) poll(pollTTL time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pollTTL = pollTTL
	c.polling = true
	c.enabled = c.ttl > 0 && pollTTL > 0
	clear(c.entries)
}

// Client cache modes, as CacheMode reports them.
const (
	// CacheOff: nothing is cached: on PostgreSQL while the invalidation
	// channel is down, and at start-up until it listens; anywhere with
	// Options.ClientCacheTTL negative.
	CacheOff = "off"
	// CachePushed: changes are pushed over LISTEN/NOTIFY.
	CachePushed = "pushed"
	// CachePolled: no channel; entries live Options.PollInterval.
	CachePolled = "polled"
	// CacheExpiring: SQLite, entries live the cache lifetime.
	CacheExpiring = "expiring"
)

// CacheMode says how the client cache learns of changes made elsewhere;
// /metrics reports it.
func (s *Store) CacheMode() string {
	c := s.clients
	c.mu.RLock()
	defer c.mu.RUnlock()
	switch {
	case !c.enabled:
		return CacheOff
	case c.polling:
		return CachePolled
	case s.dialect == DialectSQLite:
		return CacheExpiring
	}
	return CachePushed
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

// notifyClientCreated drops the origin set here and, on PostgreSQL, on
// every other instance. It evicts no client: a client that did not exist
// was cached nowhere, and an eviction arriving after the new client was
// first read would only cost a read.
func (s *Store) notifyClientCreated(ctx context.Context, id string) error {
	s.clients.dropOrigins()
	if s.dialect != DialectPostgres {
		return nil
	}
	return s.db(ctx).Exec("SELECT pg_notify(?, ?)", invalidationChannel, clientCreatedPrefix+id).Error
}

// clientCreatedPrefix starts the notice of a new client.
const clientCreatedPrefix = "client-created:"

// DefaultListenHeartbeat is how often the listener proves its connection
// alive; see Options.ListenHeartbeat.
const DefaultListenHeartbeat = time.Second

// heartbeatsMissed is how many heartbeat intervals may pass without a
// notification before the connection is taken for dead.
const heartbeatsMissed = 4

// errHeartbeatMissed means the LISTEN connection stopped delivering.
var errHeartbeatMissed = errors.New("no heartbeat notification arrived in time; the connection is taken for dead")

// DefaultPollInterval is how long a client may be served from memory when
// the invalidation channel cannot work; see Options.PollInterval.
const DefaultPollInterval = time.Second

// listen holds a connection that LISTENs for invalidations until ctx ends,
// reconnecting after failures. The cache is off whenever it is not
// listening, so a lost notice can never leave a stale client in use.
//
// With no LATCHKEY_DATABASE_LISTEN_URL it listens on the database URL. If
// that goes through a pooler in transaction mode (PgBouncer), LISTEN runs
// on whichever server connection the pooler lends for that one statement
// and nothing is ever delivered back: the first connection then connects,
// listens and sends its heartbeats without error, yet hears none. A channel
// that has never worked is taken for that and the cache falls back to
// polling for good; a channel that once worked and then went quiet is a
// network failure, handled as before.
func (s *Store) listen(ctx context.Context, databaseURL string) {
	via := "database_url"
	if s.listenURL != "" {
		databaseURL, via = s.listenURL, "database_listen_url"
	}
	backoff := 100 * time.Millisecond
	var st listenState
	st.heard = func() {
		// A connection that worked ends an outage: the next one starts
		// its backoff over instead of where a failover left it.
		backoff = 100 * time.Millisecond
		if !st.ever {
			st.ever = true
			s.log.InfoContext(ctx, "client cache: changes are pushed to this instance over LISTEN/NOTIFY", "via", via)
		}
	}
	for ctx.Err() == nil {
		st.sent = 0
		err := s.listenOnce(ctx, databaseURL, &st)
		s.clients.setEnabled(false)
		s.deny.down()
		if ctx.Err() != nil {
			return
		}
		// Heartbeats that could not even be sent (a database too busy
		// to answer) say nothing about a pooler.
		if !st.ever && st.sent >= heartbeatsMissed-1 && via == "database_url" && errors.Is(err, errHeartbeatMissed) {
			s.clients.poll(s.pollInterval)
			s.log.WarnContext(ctx, "client cache: LISTEN/NOTIFY does not reach this instance through the database URL (a pooler in transaction mode?); "+
				"clients are re-read after "+s.pollInterval.String()+" and signing keys at their refresh interval. "+
				"Set LATCHKEY_DATABASE_LISTEN_URL to a direct connection to have changes pushed", "poll_interval", s.pollInterval.String())
			return
		}
		s.log.WarnContext(ctx, "client cache invalidation channel lost; caching off until it is back", "error", err, "via", via)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// listenState is what listen learns from its connections: whether any
// heartbeat ever came back, and how many the current one sent.
type listenState struct {
	ever  bool
	sent  int
	heard func()
}

// listenOnce listens on one connection until it fails. A connection can
// die without a word (a NAT or firewall dropping an idle flow sends no
// RST), and a LISTEN connection only ever reads, so nothing would notice:
// the cache would stay on with no invalidation. So the listener sends
// itself a NOTIFY every heartbeat through the pool, on a channel of its
// own, and gives up when none has arrived for heartbeatsMissed intervals.
// The cache turns on only once the first one is back. TCP keepalive and
// TCP_USER_TIMEOUT make the kernel close such a connection too.
func (s *Store) listenOnce(ctx context.Context, databaseURL string, st *listenState) error {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return err
	}
	timeout := heartbeatsMissed * s.heartbeat
	cfg.DialFunc = s.listenDial
	if cfg.DialFunc == nil {
		cfg.DialFunc = listenDialer(timeout)
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "latchkey-listener"
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		// Bounded: the connection may be the dead one.
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	nonce := make([]byte, 8)
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	heartbeat := "latchkey_heartbeat_" + hex.EncodeToString(nonce)
	for _, ch := range []string{invalidationChannel, heartbeat} {
		if _, err := conn.Exec(ctx, "LISTEN "+ch); err != nil {
			return err
		}
	}
	sqlDB, err := s.gdb.DB()
	if err != nil {
		return err
	}
	var (
		listening bool
		lastSeen  = time.Now()
		nextBeat  = time.Now()
	)
	// The deny-list loads of this connection end with it; listen turns the
	// deny-list off as it turns the cache off.
	dctx, stopDeny := context.WithCancel(ctx)
	defer func() { s.deny.down(); stopDeny() }()
	for {
		if now := time.Now(); !now.Before(nextBeat) {
			// Through database/sql, not GORM: a heartbeat is no request's
			// statement and must not show in statement counts.
			bctx, cancel := context.WithTimeout(ctx, s.heartbeat)
			if _, err := sqlDB.ExecContext(bctx, "SELECT pg_notify($1, '')", heartbeat); err != nil && ctx.Err() == nil {
				s.log.DebugContext(ctx, "heartbeat notify failed", "error", err)
			} else if err == nil {
				st.sent++
			}
			cancel()
			nextBeat = now.Add(s.heartbeat)
		}
		deadline := lastSeen.Add(timeout)
		if !time.Now().Before(deadline) {
			return errHeartbeatMissed
		}
		wake := deadline
		if nextBeat.Before(wake) {
			wake = nextBeat
		}
		wctx, cancel := context.WithDeadline(ctx, wake)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case pgconn.Timeout(err):
			continue
		case err != nil:
			return err
		}
		lastSeen = time.Now()
		if !listening {
			listening = true
			st.heard()
			s.clients.setEnabled(true)
			// LISTEN runs above, so a load begun now misses nothing:
			// what it does not read is announced (denylist.go).
			gen := s.deny.up()
			s.background.Go(func() { s.keepDenyList(dctx, gen) })
			// A key change announced while the channel was down was
			// missed: have the keys read again now.
			s.keyWatchers.notify()
		}
		if n.Channel != invalidationChannel {
			continue
		}
		if id, ok := strings.CutPrefix(n.Payload, "client:"); ok {
			s.clients.evict(id)
		} else if strings.HasPrefix(n.Payload, clientCreatedPrefix) {
			s.clients.dropOrigins()
		} else if n.Payload == signingKeysPayload {
			s.keyWatchers.notify()
		} else {
			s.deny.notice(n.Payload)
		}
	}
}
