// Package backchannel lets a reference client reach Latchkey at another
// address than its issuer URL. In Docker Compose or Kubernetes the issuer
// is the public URL browsers use (what "iss" says, what discovery names),
// while a container next to Latchkey must dial it by its service name:
// http://localhost:8080 inside the API's container is the API itself.
//
// The client keeps the public issuer everywhere it is compared or shown to
// a browser, and its HTTP client sends every request for a URL under the
// issuer to the internal URL instead: discovery, the JWKS, the token,
// introspection, revocation and userinfo endpoints, whatever paths the
// metadata names.
package backchannel

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Client returns base (a new client when nil) with its transport wrapped so
// that requests under issuer go to internal. An empty internal returns base
// as it is: issuer is then dialled directly.
func Client(base *http.Client, issuer, internal string) (*http.Client, error) {
	if base == nil {
		base = &http.Client{}
	}
	if internal == "" {
		return base, nil
	}
	from, err := parseBase(issuer)
	if err != nil {
		return nil, fmt.Errorf("issuer %q: %w", issuer, err)
	}
	to, err := parseBase(internal)
	if err != nil {
		return nil, fmt.Errorf("internal URL %q: %w", internal, err)
	}
	c := *base
	c.Transport = &Transport{From: from, To: to, Base: base.Transport}
	return &c, nil
}

func parseBase(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("want an absolute http(s) URL without query or fragment")
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// Transport rewrites requests for URLs under From onto To (scheme, host and
// path prefix) and leaves every other request alone, so one client serves
// both Latchkey and, say, the upstream API a BFF proxies to.
type Transport struct {
	From, To *url.URL
	// Base sends the requests (http.DefaultTransport when nil).
	Base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	rest, ok := t.under(req.URL)
	if !ok {
		return base.RoundTrip(req)
	}
	out := req.Clone(req.Context())
	u := *t.To
	u.Path = t.To.Path + rest
	u.RawQuery = req.URL.RawQuery
	out.URL = &u
	out.Host = ""
	return base.RoundTrip(out)
}

// under reports whether u is From or below it, and the path after From's.
func (t *Transport) under(u *url.URL) (string, bool) {
	if !strings.EqualFold(u.Scheme, t.From.Scheme) || !strings.EqualFold(u.Host, t.From.Host) {
		return "", false
	}
	rest, ok := strings.CutPrefix(u.Path, t.From.Path)
	if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
		return "", false
	}
	return rest, true
}
