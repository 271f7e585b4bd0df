package redirecturi

import (
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Application types, as in OpenID Connect Dynamic Client Registration 1.0
// §2 (application_type).
const (
	Web    = "web"
	Native = "native"
)

// Errors of CheckLoopback, tested with errors.Is.
var (
	ErrUserinfo    = errors.New("a loopback redirect must not carry user information")
	ErrPercentPath = errors.New("a loopback redirect must not percent-encode its path")
	ErrPort        = errors.New("a loopback redirect port must be a number from 1 to 65535")
)

// IsLoopbackIP reports whether host is a loopback IP literal (127.0.0.0/8
// or ::1). The name "localhost" is not: RFC 8252 §8.3 advises against it,
// since it may resolve elsewhere or be listened on by another program.
func IsLoopbackIP(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IsLoopback reports whether u is an http redirect to a loopback IP literal.
func IsLoopback(u *url.URL) bool {
	return u.Scheme == "http" && IsLoopbackIP(u.Hostname())
}

// IsLocalhost reports whether u is an http redirect to the name localhost.
func IsLocalhost(u *url.URL) bool {
	return u.Scheme == "http" && strings.EqualFold(u.Hostname(), "localhost")
}

// IsPrivateUse reports whether u uses a private-use scheme, a reverse domain
// name such as com.example.app (RFC 8252 §7.1).
func IsPrivateUse(u *url.URL) bool {
	s := strings.ToLower(u.Scheme)
	return s != "http" && s != "https" && strings.Contains(s, ".")
}

// DefaultApplicationType is native when every redirect URI is a loopback IP
// literal or a private-use scheme, as only a native app can receive those,
// and web otherwise (and when there is none).
func DefaultApplicationType(uris []string) string {
	if len(uris) == 0 {
		return Web
	}
	for _, raw := range uris {
		u, err := url.Parse(raw)
		if err != nil || !(IsLoopback(u) || IsPrivateUse(u)) {
			return Web
		}
	}
	return Native
}

// CheckLoopback applies the rules every loopback redirect must meet: no
// user information (http://evil@127.0.0.1 reads as another host to a
// person), no percent-encoded path (two spellings of one path defeat exact
// comparison) and a port, when given, from 1 to 65535 in plain decimal.
func CheckLoopback(u *url.URL) error {
	if u.User != nil {
		return ErrUserinfo
	}
	if u.RawPath != "" || strings.Contains(u.EscapedPath(), "%") {
		return ErrPercentPath
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
			return ErrPort
		}
	}
	return nil
}

// MatchAnyPort reports whether requested is the registered loopback redirect
// on some other port (RFC 8252 §7.3): same scheme, IP literal, path and
// query, character for character, and requested passes CheckLoopback. It
// is for public native clients only; the caller decides that.
func MatchAnyPort(registered, requested string) bool {
	reg, err := url.Parse(registered)
	if err != nil || !IsLoopback(reg) || CheckLoopback(reg) != nil {
		return false
	}
	req, err := url.Parse(requested)
	if err != nil || !IsLoopback(req) || CheckLoopback(req) != nil {
		return false
	}
	return req.Hostname() == reg.Hostname() &&
		req.EscapedPath() == reg.EscapedPath() &&
		req.RawQuery == reg.RawQuery && req.ForceQuery == reg.ForceQuery &&
		req.Fragment == "" && !strings.Contains(requested, "#") && req.Opaque == ""
}
