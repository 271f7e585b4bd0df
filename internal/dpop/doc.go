// Package dpop checks DPoP proofs (RFC 9449): the JWT a client signs with
// its own key for every request, so that a token bound to that key is of no
// use to whoever steals the token without the key.
//
// A Verifier checks one proof against the request it came with (§4.3):
// typ, an asymmetric alg, a public jwk that verifies the signature, htm and
// htu, iat within a window, ath when an access token is presented, a server
// nonce when one is demanded, and last the jti, which is spent in the
// database so that the proof is refused on every instance afterwards. It
// returns the RFC 7638 thumbprint (jkt) of the proof's key, which the caller
// binds tokens to or compares with a token's cnf.jkt.
//
// The jti is spent as soon as the proof itself checks out, before the rest
// of the request (client authentication, the grant) is looked at: a proof
// whose request then fails is spent all the same. Spending later would let
// a proof captured from a failed request be replayed, and a failing request
// costs the honest client nothing but a fresh proof, which it makes for
// every request anyway.
//
// Nonces (§8) are stateless: an HMAC of a time window under a key derived
// from LATCHKEY_SECRET, so every instance mints and accepts the same ones
// without sharing state. The current and the previous window are accepted.
package dpop
