package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// ErrInvalidKey means a key brought for import cannot be used. Its messages
// say what is wrong with the key and never quote it.
var ErrInvalidKey = errors.New("invalid signing key")

func invalidKey(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidKey}, args...)...)
}

// ParsePrivateKey reads a private signing key from a PEM block (PKCS #8
// "PRIVATE KEY", PKCS #1 "RSA PRIVATE KEY" or SEC 1 "EC PRIVATE KEY") or a
// JWK, and checks that Latchkey can sign with it: RSA of at least
// MinRSABits for RS256, P-256 for ES256, Ed25519 for EdDSA. alg, when
// given, must be the key's; empty infers it. A public key, a certificate, a
// symmetric key or an encrypted PEM block is refused, as is a key whose
// private and public halves do not belong together.
func ParsePrivateKey(material []byte, alg string) (crypto.Signer, jose.SignatureAlgorithm, error) {
	if alg != "" && !validAlg(alg) {
		return nil, "", invalidKey("alg %q is not one of ES256, RS256, EdDSA", alg)
	}
	material = bytes.TrimSpace(material)
	var (
		key      any
		jwkAlg   string
		err      error
		isJWK    = bytes.HasPrefix(material, []byte("{"))
		fromWhat = "PEM"
	)
	if isJWK {
		fromWhat = "JWK"
		key, jwkAlg, err = parseJWK(material)
	} else {
		key, err = parsePEM(material)
	}
	if err != nil {
		return nil, "", err
	}
	signer, inferred, err := signingKey(key)
	if err != nil {
		return nil, "", err
	}
	if jwkAlg != "" && jwkAlg != string(inferred) {
		return nil, "", invalidKey("the JWK says alg %q but the key is a %s key", jwkAlg, inferred)
	}
	if alg != "" && alg != string(inferred) {
		return nil, "", invalidKey("alg %s was asked for but the %s key is a %s key", alg, fromWhat, inferred)
	}
	if err := selfTest(signer); err != nil {
		return nil, "", err
	}
	return signer, inferred, nil
}

// parseJWK reads a private JWK.
func parseJWK(material []byte) (any, string, error) {
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(material, &jwk); err != nil {
		// go-jose's errors name fields, never values; still, say only
		// what kind of problem it is.
		return nil, "", invalidKey("the JWK cannot be read (a JSON object with kty and the private members is expected)")
	}
	if _, ok := jwk.Key.([]byte); ok {
		return nil, "", invalidKey("a symmetric (kty oct) key cannot sign tokens that others verify; a private RSA, EC P-256 or Ed25519 key is needed")
	}
	if jwk.IsPublic() {
		return nil, "", invalidKey("the JWK holds a public key only; the private key is needed to sign")
	}
	return jwk.Key, jwk.Algorithm, nil
}

// parsePEM reads the first key block of a PEM file; "EC PARAMETERS" blocks
// (as openssl ecparam -genkey writes before the key) are skipped.
func parsePEM(material []byte) (any, error) {
	rest := material
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, invalidKey("no PEM block or JWK found; expected -----BEGIN PRIVATE KEY----- (PKCS #8), RSA PRIVATE KEY (PKCS #1), EC PRIVATE KEY (SEC 1) or a JWK")
		}
		if _, encrypted := block.Headers["Proc-Type"]; encrypted {
			return nil, invalidKey("the PEM block is encrypted; decrypt it first (openssl pkey -in KEY -out PLAIN)")
		}
		switch block.Type {
		case "EC PARAMETERS":
			continue
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, invalidKey("the PRIVATE KEY block is not a PKCS #8 key Latchkey can read")
			}
			return k, nil
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, invalidKey("the RSA PRIVATE KEY block is not a valid PKCS #1 key")
			}
			return k, nil
		case "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(block.Bytes)
			if err != nil {
				return nil, invalidKey("the EC PRIVATE KEY block is not a valid SEC 1 key")
			}
			return k, nil
		case "ENCRYPTED PRIVATE KEY":
			return nil, invalidKey("the PEM block is encrypted; decrypt it first (openssl pkey -in KEY -out PLAIN)")
		case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
			return nil, invalidKey("the PEM block is a %s, not a private key; the private key is needed to sign", block.Type)
		default:
			return nil, invalidKey("unsupported PEM block type %q", block.Type)
		}
	}
}

// signingKey checks the key's type and size and names its algorithm.
func signingKey(key any) (crypto.Signer, jose.SignatureAlgorithm, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < MinRSABits {
			return nil, "", invalidKey("the RSA key has %d bits; at least %d are needed", bits, MinRSABits)
		}
		if err := k.Validate(); err != nil {
			return nil, "", invalidKey("the RSA key is inconsistent")
		}
		return k, jose.RS256, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, "", invalidKey("the EC key is on %s; ES256 needs P-256", k.Curve.Params().Name)
		}
		return k, jose.ES256, nil
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return nil, "", invalidKey("the Ed25519 key has the wrong length")
		}
		return k, jose.EdDSA, nil
	case *ed25519.PrivateKey:
		return signingKey(*k)
	}
	return nil, "", invalidKey("the key is a %T; an RSA, EC P-256 or Ed25519 private key is needed", key)
}

// selfTest signs and verifies one message: a JWK whose public members do
// not belong to its private ones would otherwise publish a key that no
// token verifies against.
func selfTest(s crypto.Signer) error {
	msg := sha256.Sum256([]byte("latchkey key import self-test"))
	ok := false
	switch pub := s.Public().(type) {
	case *rsa.PublicKey:
		sig, err := s.Sign(rand.Reader, msg[:], crypto.SHA256)
		ok = err == nil && rsa.VerifyPKCS1v15(pub, crypto.SHA256, msg[:], sig) == nil
	case *ecdsa.PublicKey:
		sig, err := s.Sign(rand.Reader, msg[:], crypto.SHA256)
		ok = err == nil && ecdsa.VerifyASN1(pub, msg[:], sig)
	case ed25519.PublicKey:
		sig, err := s.Sign(rand.Reader, msg[:], crypto.Hash(0))
		ok = err == nil && ed25519.Verify(pub, msg[:], sig)
	}
	if !ok {
		return invalidKey("the private and public halves of the key do not belong together")
	}
	return nil
}
