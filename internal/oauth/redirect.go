package oauth

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/latchkey/latchkey/internal/redirecturi"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/ory/fosite"
)

// checkRedirectURI applies Latchkey's redirect rules before fosite's own
// matching, which lets a loopback redirect match on any port for every
// client and does not look at its user information, percent-encoding or
// port range. A redirect_uri matches a registered one character for
// character; only a public native app's loopback redirect may differ, and
// only by port (RFC 8252 §7.3). An unknown client or a missing redirect_uri
// is left to fosite, which answers those on its error page too.
func (p *Provider) checkRedirectURI(ctx context.Context, r *http.Request) error {
	q := r.URL.Query()
	raw := q.Get("redirect_uri")
	if raw == "" {
		return nil
	}
	c, err := p.store.FindClient(ctx, q.Get("client_id"))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	if slices.Contains(c.RedirectURIs, raw) {
		return nil
	}
	if c.PublicNative() && slices.ContainsFunc(c.RedirectURIs, func(reg string) bool { return redirecturi.MatchAnyPort(reg, raw) }) {
		return nil
	}
	return fosite.ErrInvalidRequest.WithHint("The 'redirect_uri' parameter does not match any of the client's registered redirect URIs.")
}
