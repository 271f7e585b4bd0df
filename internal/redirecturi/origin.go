package redirecturi

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// ErrNotOrigin is a string that is not a web origin scheme://host[:port].
var ErrNotOrigin = errors.New("not an origin such as https://app.example.com (http or https, a host, an optional port, no path, query or fragment)")

// ParseOrigin checks that raw is a web origin (RFC 6454 §4) as a browser
// sends it in the Origin header, and returns it in that serialization:
// scheme and host lower-case, the scheme's default port dropped. One
// trailing slash is forgiven, as people paste one; a path is not, since a
// browser never sends one and it would never match.
func ParseOrigin(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSuffix(raw, "/"))
	if err != nil || (strings.ToLower(u.Scheme) != "http" && strings.ToLower(u.Scheme) != "https") ||
		u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.ForceQuery ||
		u.Fragment != "" || strings.ContainsAny(raw, "#*") || u.Opaque != "" {
		return "", ErrNotOrigin
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
			return "", ErrNotOrigin
		}
	}
	return origin(u), nil
}

// OriginOf is the origin of an absolute http or https URL, and "" for any
// other (a private-use scheme has no web origin a browser would send).
func OriginOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return ""
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
		return ""
	}
	return origin(u)
}

func origin(u *url.URL) string {
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		return scheme + "://" + host + ":" + port
	}
	return scheme + "://" + host
}
