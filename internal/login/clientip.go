package login

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP is the address the throttle counts a request by: the TCP peer,
// unless the peer is one of the trusted proxies; then X-Forwarded-For is
// read from the right, each trusted proxy skipped, and the first address
// that is not a trusted proxy is the client. Only the entries appended by
// proxies we trust are believed: anything to the left of the first untrusted
// one may have been written by the client itself, so a client cannot pick
// the IP it is throttled as. With no trusted proxies X-Forwarded-For is
// ignored: behind an unconfigured proxy every request shares the proxy's
// address, and the per-username limit still holds.
func ClientIP(r *http.Request, trusted []netip.Prefix) string {
	peer, ok := parseIP(r.RemoteAddr)
	if !ok {
		return r.RemoteAddr
	}
	if !isTrusted(peer, trusted) {
		return peer.String()
	}
	hops := r.Header.Values("X-Forwarded-For")
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		entries := strings.Split(hops[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			ip, ok := parseIP(strings.TrimSpace(entries[j]))
			if !ok {
				// Garbage where an address should be: the last trusted
				// hop is the best we know.
				return client.String()
			}
			client = ip
			if !isTrusted(ip, trusted) {
				return ip.String()
			}
		}
	}
	return client.String()
}

// ClientIP is ClientIP with the handler's trusted proxies.
func (h *Handler) ClientIP(r *http.Request) string { return ClientIP(r, h.cfg.TrustedProxies) }

// parseIP reads "1.2.3.4", "1.2.3.4:5", "::1" or "[::1]:5", with IPv4 in
// IPv6 unmapped, so that one client has one key.
func parseIP(s string) (netip.Addr, bool) {
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	ip, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap().WithZone(""), true
}

func isTrusted(ip netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
