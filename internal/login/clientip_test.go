package login_test

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/latchkey/latchkey/internal/login"
)

func TestClientIP(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	cases := []struct {
		name    string
		peer    string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{"no proxies: the peer", "203.0.113.7:4000", []string{"198.51.100.1"}, nil, "203.0.113.7"},
		{"untrusted peer: header ignored", "203.0.113.7:4000", []string{"198.51.100.1"}, proxies, "203.0.113.7"},
		{"trusted peer: the client it names", "10.0.0.2:4000", []string{"198.51.100.1"}, proxies, "198.51.100.1"},
		{"client-written entries to the left are not believed", "10.0.0.2:4000", []string{"1.1.1.1, 198.51.100.1"}, proxies, "198.51.100.1"},
		{"chain of trusted proxies skipped from the right", "10.0.0.2:4000", []string{"1.1.1.1, 198.51.100.1, 10.9.9.9", "10.0.0.3"}, proxies, "198.51.100.1"},
		{"every hop trusted: the leftmost", "10.0.0.2:4000", []string{"10.0.0.4, 10.0.0.3"}, proxies, "10.0.0.4"},
		{"no header from a trusted peer", "10.0.0.2:4000", nil, proxies, "10.0.0.2"},
		{"garbage stops the walk at the last trusted hop", "10.0.0.2:4000", []string{"198.51.100.1, not-an-ip, 10.0.0.3"}, proxies, "10.0.0.3"},
		{"IPv6 peer and client", "[fd00::1]:4000", []string{"2001:db8::7"}, proxies, "2001:db8::7"},
		{"IPv4-mapped IPv6 is one client", "[::ffff:10.0.0.2]:4000", []string{"::ffff:198.51.100.1"}, proxies, "198.51.100.1"},
		{"entry with a port", "10.0.0.2:4000", []string{"[2001:db8::7]:1234"}, proxies, "2001:db8::7"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/login", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := login.ClientIP(r, tc.trusted); got != tc.want {
				t.Fatalf("ClientIP = %q, want %q", got, tc.want)
			}
		})
	}
}
