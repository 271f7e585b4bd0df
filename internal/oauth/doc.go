// Package oauth composes the fosite provider and serves the OAuth 2.0
// endpoints: authorization (RFC 6749 §3.1), token (§3.2), introspection
// (RFC 7662), revocation (RFC 7009) and authorization server metadata
// (RFC 8414).
//
// The authorization endpoint owns the protocol end to end: client,
// redirect URI, PKCE, scope and prompt, consent decisions and records. It
// uses the browser pages (internal/login) only through LoginUI.
//
// It is also where Latchkey's own rules live that fosite does not enforce:
// the password grant only for trusted confidential clients, scopes granted
// for client credentials, RFC 8707 resource indicators as audience, and the
// exact field set of the introspection answer.
package oauth
