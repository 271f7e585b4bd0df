// Package passkeybrowser holds the Chromium test of passkeys: a virtual
// authenticator (CDP WebAuthn domain) enrols a passkey on /account, signs
// in with it, and gives it as the second factor of a require_mfa client.
// It is its own package so that it runs beside internal/server's long
// suite rather than inside it.
package passkeybrowser
