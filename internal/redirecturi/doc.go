// Package redirecturi holds the redirect URI rules that client registration
// and the authorization endpoint share: which redirects belong to native
// apps (RFC 8252 §7.1 private-use schemes, §7.3 loopback IP literals), and
// when a loopback redirect may match on any port.
package redirecturi
