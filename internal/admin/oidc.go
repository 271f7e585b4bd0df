package admin

import (
	"net/url"
	"slices"
	"strings"

	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/store"
)

// idTokenAlgs are the id_token_signed_response_alg values a client may
// register: the algorithms the server keeps a signing key for.
func idTokenAlgs() []string {
	out := make([]string, 0, len(keys.Algorithms))
	for _, a := range keys.Algorithms {
		out = append(out, string(a))
	}
	return out
}

// oidcMetadata checks and stores the OpenID Connect client metadata that
// ID tokens and logout will read. Nothing acts on it yet.
//
// id_token_signed_response_alg left out is RS256 (OpenID Connect Dynamic
// Client Registration §2), and the row stores RS256, as it stores the
// other RFC 7591 defaults: the registration answer then says what the
// client's ID tokens will be signed with, and a later change of the
// server's default cannot change it under a relying party that pinned it.
func oidcMetadata(md *ClientMetadata, c *store.Client) error {
	c.IDTokenSignedResponseAlg = md.IDTokenSignedResponseAlg
	if c.IDTokenSignedResponseAlg == "" {
		c.IDTokenSignedResponseAlg = store.DefaultIDTokenAlg
	}
	if !slices.Contains(idTokenAlgs(), c.IDTokenSignedResponseAlg) {
		return invalidMetadata("id_token_signed_response_alg %q is not one of %s", md.IDTokenSignedResponseAlg, strings.Join(idTokenAlgs(), ", "))
	}

	c.BackchannelLogoutURI = md.BackchannelLogoutURI
	c.BackchannelLogoutSessionRequired = md.BackchannelLogoutSessionRequired
	if c.BackchannelLogoutURI == "" {
		// Like jwks without private_key_jwt: a setting with nothing to
		// apply to is more likely a mistake than a wish.
		if c.BackchannelLogoutSessionRequired {
			return invalidMetadata("backchannel_logout_session_required needs a backchannel_logout_uri")
		}
		return nil
	}
	return validateBackchannelLogoutURI(c.BackchannelLogoutURI)
}

// validateBackchannelLogoutURI applies OpenID Connect Back-Channel Logout
// 1.0 §2.2: an absolute URI without a fragment (a query is allowed and
// kept). The server itself POSTs logout tokens there, so it is https, or
// http to a loopback address for development, and carries no user
// information, which would only end up in logs.
func validateBackchannelLogoutURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return invalidMetadata("backchannel_logout_uri %q is not a URI: %v", raw, err)
	}
	if !u.IsAbs() || u.Host == "" {
		return invalidMetadata("backchannel_logout_uri %q must be an absolute URL with a host", raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return invalidMetadata("backchannel_logout_uri %q must not have a fragment (Back-Channel Logout 1.0 §2.2)", raw)
	}
	if u.User != nil {
		return invalidMetadata("backchannel_logout_uri %q must not carry user information", raw)
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return invalidMetadata("backchannel_logout_uri %q must use https; plain http is allowed only for loopback addresses", raw)
		}
	default:
		return invalidMetadata("backchannel_logout_uri %q must be an https URL", raw)
	}
	return nil
}

// brandingMetadata checks logo_uri and client_uri (RFC 7591 §2): the
// consent page shows the one as an image and links the other, so both are
// absolute https URLs (http only to a loopback host, for development),
// without user information or a fragment. Anything else, javascript: or
// data: above all, is refused.
func brandingMetadata(md *ClientMetadata, c *store.Client) error {
	for _, f := range []struct{ name, raw string }{{"logo_uri", md.LogoURI}, {"client_uri", md.ClientURI}} {
		if f.raw == "" {
			continue
		}
		u, err := url.Parse(f.raw)
		switch {
		case err != nil:
			return invalidMetadata("%s %q is not a URI", f.name, f.raw)
		case !u.IsAbs() || u.Host == "" || u.User != nil || u.Fragment != "" || strings.Contains(f.raw, "#"):
			return invalidMetadata("%s %q must be an absolute URL with a host, without user information or fragment", f.name, f.raw)
		case strings.ContainsAny(u.Host, ";,'\"*"):
			// The consent page puts the logo's origin into its CSP.
			return invalidMetadata("%s %q has characters that are not allowed in a host name", f.name, f.raw)
		case u.Scheme == "https":
		case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
		default:
			return invalidMetadata("%s %q must use https; plain http is allowed only for loopback addresses", f.name, f.raw)
		}
	}
	c.LogoURI, c.ClientURI = md.LogoURI, md.ClientURI
	return nil
}
