package store_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// blackhole forwards TCP connections until told to drop: from then on it
// swallows every byte both ways and keeps the connections open, as a NAT or
// firewall that forgot an idle flow does (no RST, no FIN).
type blackhole struct {
	target  string
	ln      net.Listener
	dropped atomic.Bool
}

func newBlackhole(t *testing.T, target string) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{target: target, ln: ln}
	var (
		mu    sync.Mutex
		open  []net.Conn
		pipes sync.WaitGroup
	)
	accepted := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-accepted
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		pipes.Wait()
	})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			open = append(open, c, up)
			mu.Unlock()
			// A connection made while dropping would never get an answer
			// either; new ones after a restore work, as after a NAT reset.
			stuck := b.dropped.Load()
			pipes.Add(2)
			go func() { defer pipes.Done(); b.pipe(up, c, stuck); c.Close(); up.Close() }()
			go func() { defer pipes.Done(); b.pipe(c, up, stuck); c.Close(); up.Close() }()
		}
	}()
	return b
}

func (b *blackhole) pipe(dst io.Writer, src io.Reader, stuck bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if stuck || b.dropped.Load() {
			stuck = true // this flow is forgotten for good
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (b *blackhole) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", b.ln.Addr().String())
}

type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The attack: an instance's LISTEN connection dies silently, then a client
// is deleted (or its secret rotated) at another instance. The notice never
// arrives; before heartbeats the dead instance went on serving the client
// from its cache for the cache lifetime (a minute), with no log line. Now
// the missing heartbeat turns the cache off within a few heartbeats, says
// so in the log, and the cache comes back with the connection.
func TestSilentlyDeadListener(t *testing.T) {
	dbURL := storetest.PostgresURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	proxy := newBlackhole(t, u.Host)
	logs := &logBuffer{}
	const beat = 50 * time.Millisecond
	a := storetest.Open(t, dbURL, store.WithListenDial(store.Options{
		ListenHeartbeat: beat, Logger: slog.New(slog.NewJSONHandler(logs, nil)),
	}, proxy.dial))
	other := storetest.Open(t, dbURL, store.Options{})
	eventually := func(what string, within time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("not within %s: %s", within, what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	eventually("the cache is on once the listener hears its heartbeat", 5*time.Second, a.ClientCacheOn)

	victim := &store.Client{ID: "victim", Name: "v", TokenEndpointAuthMethod: "client_secret_basic", SecretHash: []byte("h")}
	if err := other.CreateClient(ctx, victim); err != nil {
		t.Fatal(err)
	}
	if _, err := a.FindClient(ctx, "victim"); err != nil {
		t.Fatal(err)
	}
	proxy.dropped.Store(true)
	if err := other.DeleteClient(ctx, "victim"); err != nil {
		t.Fatal(err)
	}
	// Four heartbeats, and a margin for a loaded machine: far below the
	// minute the entry would otherwise live.
	eventually("the deleted client is refused by the instance whose listener died", 2*time.Second, func() bool {
		_, err := a.FindClient(ctx, "victim")
		return errors.Is(err, store.ErrNotFound)
	})
	if a.ClientCacheOn() {
		t.Fatal("the cache is on without a live listener")
	}
	if !strings.Contains(logs.String(), "client cache invalidation channel lost") {
		t.Fatalf("the loss is not logged: %s", logs.String())
	}

	proxy.dropped.Store(false)
	eventually("the cache comes back with a new connection", 15*time.Second, a.ClientCacheOn)
}

// Through PgBouncer in transaction mode with no LATCHKEY_DATABASE_LISTEN_URL,
// LISTEN runs on a borrowed server connection and nothing is ever delivered:
// a cache that trusted it would serve a deleted client for its whole
// lifetime. The listener notices that its heartbeats never come back, says
// so, and the cache polls: an entry lives PollInterval, so another
// instance's change is seen within that bound and no later.
func TestClientCachePolledThroughPooler(t *testing.T) {
	dbURL := storetest.PgBouncerURL(t)
	ctx := context.Background()
	logs := &logBuffer{}
	var mu sync.Mutex
	var offset time.Duration
	advance := func(d time.Duration) { mu.Lock(); offset += d; mu.Unlock() }
	const poll = 2 * time.Second
	a := storetest.Open(t, dbURL, store.Options{
		ListenHeartbeat: 50 * time.Millisecond, PollInterval: poll,
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		Now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return time.Now().Add(offset)
		},
	})
	other := storetest.Open(t, dbURL, store.Options{})
	deadline := time.Now().Add(5 * time.Second)
	for a.CacheMode() != store.CachePolled {
		if time.Now().After(deadline) {
			t.Fatalf("the cache is %q, not polling, through a transaction pooler; logs: %s", a.CacheMode(), logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "LATCHKEY_DATABASE_LISTEN_URL") {
		t.Fatalf("the fallback is not logged with what to do: %s", logs.String())
	}

	if err := other.CreateClient(ctx, &store.Client{ID: "polled", Name: "v1", TokenEndpointAuthMethod: "none"}); err != nil {
		t.Fatal(err)
	}
	if got, err := a.FindClient(ctx, "polled"); err != nil || got.Name != "v1" {
		t.Fatalf("FindClient = %v, %v", got, err)
	}
	if err := other.DeleteClient(ctx, "polled"); err != nil {
		t.Fatal(err)
	}
	// Cached, within the bound: the deletion is not seen yet (which also
	// shows that the cache is on, not merely off).
	advance(poll - 100*time.Millisecond)
	if _, err := a.FindClient(ctx, "polled"); err != nil {
		t.Fatalf("within the poll interval the entry should be served from memory: %v", err)
	}
	// Past the bound: re-read, and refused.
	advance(200 * time.Millisecond)
	if _, err := a.FindClient(ctx, "polled"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a client deleted elsewhere is still served after the poll interval: %v", err)
	}
}

// With LATCHKEY_DATABASE_LISTEN_URL straight to the server, the pool may go
// through PgBouncer and changes are still pushed: the cache says so, and a
// deletion is seen without any time passing on the reader's clock.
func TestClientCachePushedBesidePooler(t *testing.T) {
	dbURL := storetest.PgBouncerURL(t)
	ctx := context.Background()
	logs := &logBuffer{}
	a := storetest.Open(t, dbURL, store.Options{
		ListenURL: storetest.PgBouncerDirectURL(t, dbURL), ListenHeartbeat: 50 * time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		// Frozen: only a pushed notice can evict.
		Now: func() time.Time { return time.Unix(1e9, 0) },
	})
	other := storetest.Open(t, dbURL, store.Options{})
	deadline := time.Now().Add(5 * time.Second)
	for a.CacheMode() != store.CachePushed {
		if time.Now().After(deadline) {
			t.Fatalf("the cache is %q, not pushed; logs: %s", a.CacheMode(), logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), `"via":"database_listen_url"`) {
		t.Fatalf("the start-up line does not say which channel: %s", logs.String())
	}
	if err := other.CreateClient(ctx, &store.Client{ID: "pushed", TokenEndpointAuthMethod: "none"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.FindClient(ctx, "pushed"); err != nil {
		t.Fatal(err)
	}
	if err := other.DeleteClient(ctx, "pushed"); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(3 * time.Second)
	for {
		_, err := a.FindClient(ctx, "pushed")
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deletion was not pushed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if a.CacheMode() != store.CachePushed {
		t.Fatalf("cache mode %q", a.CacheMode())
	}
}

// A failover takes the listener through failed connections while no
// primary answers, each doubling its backoff (to 10 s). A connection that
// then worked starts the count again: the next loss, weeks later, is
// reconnected after 100 ms, not after the backoff the last outage left,
// during which the client cache would stay off. docs/operations.md,
// "High availability: failover".
func TestListenerBackoffStartsOverAfterAWorkingConnection(t *testing.T) {
	dbURL := storetest.PostgresURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	// Five refused dials grow the backoff to 3.2 s.
	var refusals atomic.Int32
	refusals.Store(5)
	var mu sync.Mutex
	var live net.Conn
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		if refusals.Add(-1) >= 0 {
			return nil, errors.New("connection refused (no primary yet)")
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", u.Host)
		mu.Lock()
		live = c
		mu.Unlock()
		return c, err
	}
	a := storetest.Open(t, dbURL, store.WithListenDial(store.Options{ListenHeartbeat: 50 * time.Millisecond}, dial))
	eventually := func(what string, within time.Duration, ok func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !ok() {
			if time.Since(start) > within {
				t.Fatalf("not within %s: %s", within, what)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return time.Since(start)
	}
	eventually("the cache is on once the listener connects after the refusals", 15*time.Second, a.ClientCacheOn)

	mu.Lock()
	_ = live.Close()
	mu.Unlock()
	eventually("the cache is off once the listener's connection is gone", 5*time.Second, func() bool { return !a.ClientCacheOn() })
	// 100 ms of backoff, a connection and a heartbeat; the 3.2 s the
	// refusals left would fail this.
	took := eventually("the listener is back within a fresh backoff", 2*time.Second, a.ClientCacheOn)
	t.Logf("listening again %s after the loss", took.Round(time.Millisecond))
}
