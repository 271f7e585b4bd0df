package store

import "github.com/latchkey/latchkey/internal/redirecturi"

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
