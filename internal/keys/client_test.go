package keys_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"slices"
	"testing"

	"github.com/latchkey/latchkey/internal/keys"
)

// A client key fits only its own algorithms: no curve or family mix-ups,
// no short RSA, no HMAC.
func TestFits(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	r2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	r1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	ed, _, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name string
		key  any
		want []string
	}{
		{"P-256", &p256.PublicKey, []string{"ES256"}},
		{"P-384", &p384.PublicKey, []string{"ES384"}},
		{"P-521", &p521.PublicKey, []string{"ES512"}},
		{"Ed25519", ed, []string{"EdDSA"}},
		{"RSA 2048", &r2048.PublicKey, []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}},
		{"RSA 1024", &r1024.PublicKey, nil},
		{"HMAC secret", []byte("0123456789abcdef0123456789abcdef"), nil},
		{"private EC key", p256, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := keys.FittingAlgorithms(tc.key); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			if keys.Fits("HS256", tc.key) || keys.Fits("none", tc.key) {
				t.Error("a symmetric or empty algorithm fits")
			}
		})
	}
}
