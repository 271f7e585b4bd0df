// Package secrets owns Latchkey's cryptographic primitives: random tokens,
// keys derived from LATCHKEY_SECRET, client-secret hashing and constant-time
// comparison. Nothing else in the project calls crypto/hmac or crypto/rand
// directly for these purposes, so the choices are made once.
package secrets
