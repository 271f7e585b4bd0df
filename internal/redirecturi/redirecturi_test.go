package redirecturi_test

import (
	"errors"
	"net/url"
	"testing"

	"github.com/latchkey/latchkey/internal/redirecturi"
)

func TestCheckLoopback(t *testing.T) {
	cases := []struct {
		name, uri string
		want      error
	}{
		{"plain", "http://127.0.0.1/cb", nil},
		{"with port", "http://127.0.0.1:53123/cb", nil},
		{"ipv6", "http://[::1]:65535/cb", nil},
		{"port 1", "http://127.0.0.1:1/cb", nil},
		{"userinfo", "http://evil@127.0.0.1:53123/cb", redirecturi.ErrUserinfo},
		{"user and password", "http://a:b@127.0.0.1/cb", redirecturi.ErrUserinfo},
		{"percent-encoded path", "http://127.0.0.1:53123/c%62", redirecturi.ErrPercentPath},
		{"encoded slash", "http://127.0.0.1:53123/cb%2F..%2Fx", redirecturi.ErrPercentPath},
		{"port 0", "http://127.0.0.1:0/cb", redirecturi.ErrPort},
		{"port 65536", "http://127.0.0.1:65536/cb", redirecturi.ErrPort},
		{"huge port", "http://127.0.0.1:99999999999999999999/cb", redirecturi.ErrPort},
		{"leading zero", "http://127.0.0.1:08080/cb", redirecturi.ErrPort},
		{"empty port", "http://127.0.0.1:/cb", redirecturi.ErrPort},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.uri)
			if err != nil {
				t.Fatal(err)
			}
			if got := redirecturi.CheckLoopback(u); !errors.Is(got, tc.want) || (tc.want == nil && got != nil) {
				t.Errorf("CheckLoopback(%s) = %v, want %v", tc.uri, got, tc.want)
			}
		})
	}
}

func TestMatchAnyPort(t *testing.T) {
	const reg = "http://127.0.0.1/cb"
	cases := []struct {
		name, registered, requested string
		want                        bool
	}{
		{"other port", reg, "http://127.0.0.1:53123/cb", true},
		{"no port", reg, "http://127.0.0.1/cb", true},
		{"ipv6", "http://[::1]/cb", "http://[::1]:61234/cb", true},
		{"registered with a port", "http://127.0.0.1:8080/cb", "http://127.0.0.1:9090/cb", true},
		{"query kept", "http://127.0.0.1/cb?a=1", "http://127.0.0.1:5/cb?a=1", true},
		{"userinfo", reg, "http://evil@127.0.0.1:53123/cb", false},
		{"percent-encoded path", reg, "http://127.0.0.1:53123/c%62", false},
		{"port 0", reg, "http://127.0.0.1:0/cb", false},
		{"port 65536", reg, "http://127.0.0.1:65536/cb", false},
		{"other path", reg, "http://127.0.0.1:53123/other", false},
		{"trailing slash", reg, "http://127.0.0.1:53123/cb/", false},
		{"extra query", reg, "http://127.0.0.1:53123/cb?x=1", false},
		{"empty query", reg, "http://127.0.0.1:53123/cb?", false},
		{"fragment", reg, "http://127.0.0.1:53123/cb#x", false},
		{"https", reg, "https://127.0.0.1:53123/cb", false},
		{"localhost", reg, "http://localhost:53123/cb", false},
		{"localhost registered", "http://localhost/cb", "http://localhost:53123/cb", false},
		{"other loopback address", reg, "http://127.0.0.2:53123/cb", false},
		{"ipv6 spelled out", "http://[::1]/cb", "http://[0:0:0:0:0:0:0:1]:5/cb", false},
		{"not loopback", "https://app.example/cb", "https://app.example:444/cb", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := redirecturi.MatchAnyPort(tc.registered, tc.requested); got != tc.want {
				t.Errorf("MatchAnyPort(%s, %s) = %v, want %v", tc.registered, tc.requested, got, tc.want)
			}
		})
	}
}

func TestDefaultApplicationType(t *testing.T) {
	cases := []struct {
		name string
		uris []string
		want string
	}{
		{"none", nil, redirecturi.Web},
		{"https", []string{"https://app.example/cb"}, redirecturi.Web},
		{"loopback", []string{"http://127.0.0.1/cb", "http://[::1]/cb"}, redirecturi.Native},
		{"private-use", []string{"com.example.app:/cb"}, redirecturi.Native},
		{"private-use and loopback", []string{"com.example.app:/cb", "http://127.0.0.1/cb"}, redirecturi.Native},
		{"localhost", []string{"http://localhost:5173/callback"}, redirecturi.Web},
		{"localhost and loopback", []string{"http://localhost:5173/callback", "http://127.0.0.1:5173/callback"}, redirecturi.Web},
		{"https and private-use", []string{"https://app.example/cb", "com.example.app:/cb"}, redirecturi.Web},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := redirecturi.DefaultApplicationType(tc.uris); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}
