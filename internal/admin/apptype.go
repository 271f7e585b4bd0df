package admin

import (
	"fmt"
	"net/url"

	"github.com/latchkey/latchkey/internal/redirecturi"
	"github.com/latchkey/latchkey/internal/store"
)

// applicationType checks and stores OpenID Connect Dynamic Client
// Registration's application_type. Unset, it is native when every redirect
// URI is a loopback IP literal or a private-use scheme (only an app on the
// user's device can receive those) and web otherwise. A web application
// cannot receive a private-use scheme, so it may not register one.
func applicationType(md *ClientMetadata, c *store.Client) error {
	c.ApplicationType = md.ApplicationType
	switch c.ApplicationType {
	case "":
		c.ApplicationType = redirecturi.DefaultApplicationType(c.RedirectURIs)
	case redirecturi.Web, redirecturi.Native:
	default:
		return invalidMetadata("application_type %q is not %q or %q", md.ApplicationType, redirecturi.Web, redirecturi.Native)
	}
	if c.ApplicationType != redirecturi.Web {
		return nil
	}
	for _, raw := range append(append([]string{}, c.RedirectURIs...), c.PostLogoutRedirectURIs...) {
		if u, err := url.Parse(raw); err == nil && redirecturi.IsPrivateUse(u) {
			return invalidRedirect("redirect URI %q: private-use schemes are for native apps; register application_type \"native\"", raw)
		}
	}
	return nil
}

// redirectWarnings names what registration accepts but advises against.
func redirectWarnings(c *store.Client) []string {
	var out []string
	for _, raw := range append(append([]string{}, c.RedirectURIs...), c.PostLogoutRedirectURIs...) {
		if u, err := url.Parse(raw); err == nil && redirecturi.IsLocalhost(u) {
			out = append(out, fmt.Sprintf("redirect URI %q: http://localhost is NOT RECOMMENDED (RFC 8252 §8.3); it matches exactly, port included, while http://127.0.0.1 or http://[::1] match on any port for public native apps", raw))
		}
	}
	return out
}
