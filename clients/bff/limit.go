package bff

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxLimited bounds how many client addresses the login limiter remembers.
const maxLimited = 10000

// addrLimiter is a token bucket per client address (an IPv6 /64 counts as
// one address: anyone holding one has all of it).
type addrLimiter struct {
	rate  rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[netip.Prefix]*rate.Limiter
}

func newAddrLimiter(r rate.Limit, burst int, now func() time.Time) *addrLimiter {
	return &addrLimiter{rate: r, burst: burst, now: now, buckets: map[netip.Prefix]*rate.Limiter{}}
}

func (l *addrLimiter) allow(addr netip.Addr) bool {
	if l.rate == rate.Inf {
		return true
	}
	key := netip.PrefixFrom(addr, addr.BitLen())
	if addr.Is6() && !addr.Is4In6() {
		key, _ = addr.Prefix(64)
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxLimited {
			l.prune(now)
		}
		b = rate.NewLimiter(l.rate, l.burst)
		l.buckets[key] = b
	}
	return b.AllowN(now, 1)
}

// prune forgets the buckets that have refilled: a full bucket is what a new
// one would be, so nothing is lost. If every bucket is in use (a flood from
// that many addresses, which per-address limits cannot stop anyway), start
// over rather than grow.
func (l *addrLimiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxLimited {
		clear(l.buckets)
	}
}

// remoteAddr is the default Config.ClientAddr: the peer's address. Behind a
// reverse proxy every browser shares the proxy's, so set ClientAddr to read
// the header your proxy sets.
func remoteAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}
