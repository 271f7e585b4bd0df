package keys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"slices"

	jose "github.com/go-jose/go-jose/v4"
)

// ClientAssertionAlgorithms are the algorithms a client may sign a
// private_key_jwt assertion with (RFC 7523 §3, OpenID Connect Core §9).
// Only public-key algorithms: an HMAC "signed" with a public key, or
// "none", proves nothing.
var ClientAssertionAlgorithms = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
}

// MinRSABits is the smallest RSA modulus accepted from a client (NIST SP
// 800-131A).
const MinRSABits = 2048

// ClientAssertionAlgorithm reports whether alg is one of
// ClientAssertionAlgorithms.
func ClientAssertionAlgorithm(alg string) bool {
	return slices.Contains(ClientAssertionAlgorithms, jose.SignatureAlgorithm(alg))
}

// Fits reports whether a client's public key can verify signatures made
// with alg: the key type and, for ECDSA, the curve must be the algorithm's
// own (RFC 7518 §3.4), so a key is never used with an algorithm it was not
// made for.
func Fits(alg string, key any) bool {
	switch jose.SignatureAlgorithm(alg) {
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		k, ok := key.(*rsa.PublicKey)
		return ok && k.N.BitLen() >= MinRSABits
	case jose.ES256:
		return ecCurve(key) == elliptic.P256()
	case jose.ES384:
		return ecCurve(key) == elliptic.P384()
	case jose.ES512:
		return ecCurve(key) == elliptic.P521()
	case jose.EdDSA:
		k, ok := key.(ed25519.PublicKey)
		return ok && len(k) == ed25519.PublicKeySize
	}
	return false
}

func ecCurve(key any) elliptic.Curve {
	if k, ok := key.(*ecdsa.PublicKey); ok {
		return k.Curve
	}
	return nil
}

// FittingAlgorithms lists the ClientAssertionAlgorithms a public key can
// verify.
func FittingAlgorithms(key any) []string {
	var out []string
	for _, a := range ClientAssertionAlgorithms {
		if Fits(string(a), key) {
			out = append(out, string(a))
		}
	}
	return out
}
