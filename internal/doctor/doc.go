// Package doctor checks, without changing anything, what a Latchkey
// deployment needs: its configuration, its database and schema, the
// database's clock, the signing keys under LATCHKEY_SECRET, and whether
// the issuer URL reaches this server. `latchkey doctor` prints the result.
package doctor
