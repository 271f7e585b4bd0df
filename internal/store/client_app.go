package store

import (
	"slices"

	"github.com/latchkey/latchkey/internal/redirecturi"
)

// AppType is the client's application_type: as registered, or for a client
// registered before the setting existed, native when every redirect URI is
// a loopback IP literal or a private-use scheme and web otherwise.
func (c *Client) AppType() string {
	if c.ApplicationType != "" {
		return c.ApplicationType
	}
	return redirecturi.DefaultApplicationType(c.RedirectURIs)
}

// PublicNative reports a public native app (RFC 8252): anyone on the device
// can claim its loopback port or private-use scheme, so its client_id says
// nothing about who is asking (RFC 8252 §8.6).
func (c *Client) PublicNative() bool {
	return c.Public && c.AppType() == redirecturi.Native
}

// CORSOrigins are the browser origins that may call the OAuth endpoints as
// this client: the registered allowed_cors_origins, or when none were
// registered, the origins of its http and https redirect URIs. A browser
// app's token request comes from the page its redirect URI loads, so that
// origin is what it needs; registration admits http only for loopback
// hosts, so these are https origins and the developer's own machine.
// Private-use schemes have no web origin and give none.
func (c *Client) CORSOrigins() []string {
	if c.AllowedCORSOrigins != nil {
		return c.AllowedCORSOrigins
	}
	var out []string
	for _, raw := range c.RedirectURIs {
		if o := redirecturi.OriginOf(raw); o != "" && !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}

// AllowsOrigin reports whether origin, as a browser sent it, is one of
// CORSOrigins.
func (c *Client) AllowsOrigin(origin string) bool {
	return origin != "" && slices.Contains(c.CORSOrigins(), origin)
}
