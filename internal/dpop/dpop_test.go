package dpop_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/latchkey/latchkey/internal/dpop"
)

const tokenURL = "https://idp.example/oauth2/token"

// memReplay is a per-process stand-in for the store's SpendDPoPProof, whose
// cross-instance guarantee the store's conformance suite tests.
type memReplay struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (m *memReplay) SpendDPoPProof(_ context.Context, key string, _ time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = map[string]bool{}
	}
	if m.seen[key] {
		return false, nil
	}
	m.seen[key] = true
	return true, nil
}

var now = time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)

func newVerifier(requireNonce bool) *dpop.Verifier {
	return dpop.New(&memReplay{}, []byte("0123456789abcdef0123456789abcdef"), requireNonce, func() time.Time { return now })
}

func ecSigner(t testing.TB) (*dpop.Signer, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := dpop.NewSigner(k, jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	return s, k
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// handmade builds a compact JWS from a header and claims of our choosing,
// signed by sign over the signing input: what go-jose would refuse to make.
func handmade(t *testing.T, header map[string]any, claims any, sign func([]byte) []byte) string {
	t.Helper()
	input := b64(mustJSON(t, header)) + "." + b64(mustJSON(t, claims))
	return input + "." + b64(sign([]byte(input)))
}

func es256(k *ecdsa.PrivateKey) func([]byte) []byte {
	return func(in []byte) []byte {
		sum := sha256.Sum256(in)
		r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
		if err != nil {
			panic(err)
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	}
}

func publicJWK(t *testing.T, k crypto.PublicKey) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(mustJSON(t, jose.JSONWebKey{Key: k}), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func goodClaims() dpop.Claims {
	return dpop.Claims{HTM: "POST", HTU: tokenURL, IAT: now.Unix()}
}

func TestCheck(t *testing.T) {
	signer, key := ecSigner(t)
	_, otherKey := ecSigner(t)
	token := "an-access-token"
	tests := []struct {
		name  string
		proof func(t *testing.T) string
		req   dpop.Request
		nonce bool
		code  string // "" accepted
	}{
		{"valid ES256", func(t *testing.T) string { return sign(t, signer, goodClaims()) }, dpop.Request{}, false, ""},
		{"htu normalised: case, default port, query, fragment", func(t *testing.T) string {
			c := goodClaims()
			c.HTU = "HTTPS://IDP.Example:443/oauth2/token?x=1#f"
			return sign(t, signer, c)
		}, dpop.Request{}, false, ""},
		{"wrong htu path", func(t *testing.T) string {
			c := goodClaims()
			c.HTU = "https://idp.example/oauth2/introspect"
			return sign(t, signer, c)
		}, dpop.Request{}, false, dpop.CodeInvalidProof},
		{"wrong htu host", func(t *testing.T) string {
			c := goodClaims()
			c.HTU = "https://evil.example/oauth2/token"
			return sign(t, signer, c)
		}, dpop.Request{}, false, dpop.CodeInvalidProof},
		{"wrong htu scheme", func(t *testing.T) string {
			c := goodClaims()
			c.HTU = "http://idp.example/oauth2/token"
			return sign(t, signer, c)
		}, dpop.Request{}, false, dpop.CodeInvalidProof},
		{"wrong htm", func(t *testing.T) string {
			c := goodClaims()
			c.HTM = "GET"
			return sign(t, signer, c)
		}, dpop.Request{}, false, dpop.CodeInvalidProof},
		{"htm of another case", func(t *testing.T) string {
			c := goodClaims()
			c.HTM = "post"
			return sign(t, signer, c)
		}, dpop.Request{}, false, dpop.CodeInvalidProof},
		{"iat 61 s old", func(t *testing.T) string {
			c := goodClaims()
			c.IAT = now.Add(-61 * time.Second).Unix()
			return sign(t, signer, c)
		}, dpop.Request{}, false, dpop.CodeInvalidProof},
		{"iat 59 s old", func(t *testing.T) string {
			c := goodClaims()
			c.IAT = now.Add(-59 * time.Second).Unix()
			return sign(t, signer, c)
		}, dpop.Request{}, false, ""},
		{"iat 61 s ahead", func(t *testing.T) string {
			c := goodClaims()
			c.IAT = now.Add(61 * time.Second).Unix()
			return sign(t, signer, c)
		}, dpop.Request{}, false, dpop.CodeInvalidProof},
		{"no iat", func(t *testing.T) string {
			c := goodClaims()
			c.IAT = 0
			return sign(t, signer, c)
		}, dpop.Request{}, false, dpop.CodeInvalidProof},
		{"iat huge", func(t *testing.T) string {
			return handmade(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": publicJWK(t, &key.PublicKey)},
				map[string]any{"jti": "x", "htm": "POST", "htu": tokenURL, "iat": 1e300}, es256(key))
		}, dpop.Request{}, false, dpop.CodeInvalidProof},
		{"iat negative", func(t *testing.T) string {
			c := goodClaims()
			c.IAT = -now.Unix()
			return sign(t, signer, c)
		}, dpop.Request{}, false, dpop.CodeInvalidProof},
		{"jti too long", func(t *testing.T) string {
			c := goodClaims()
			c.JTI = strings.Repeat("j", dpop.MaxJTILen+1)
			return sign(t, signer, c)
		}, dpop.Request{}, false, dpop.CodeInvalidProof},
		{"no jti", func(t *testing.T) string {
			return handmade(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": publicJWK(t, &key.PublicKey)},
				map[string]any{"htm": "POST", "htu": tokenURL, "iat": now.Unix()}, es256(key))
		}, dpop.Request{}, false, dpop.CodeInvalidProof},
		{"typ jwt", func(t *testing.T) string {
			return handmade(t, map[string]any{"typ": "JWT", "alg": "ES256", "jwk": publicJWK(t, &key.PublicKey)},
				map[string]any{"jti": "x", "htm": "POST", "htu": tokenURL, "iat": now.Unix()}, es256(key))
		}, dpop.Request{}, false, dpop.CodeInvalidProof},
		{"no jwk", func(t *testing.T) string {
			return handmade(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256"},
				map[string]any{"jti": "x", "htm": "POST", "htu": tokenURL, "iat": now.Unix()}, es256(key))
		}, dpop.Request{}, false, dpop.CodeInvalidProof},
		{"signed by another key than its jwk", func(t *testing.T) string {
			return handmade(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": publicJWK(t, &key.PublicKey)},
				map[string]any{"jti": "x", "htm": "POST", "htu": tokenURL, "iat": now.Unix()}, es256(otherKey))
		}, dpop.Request{}, false, dpop.CodeInvalidProof},
		{"private key in jwk", func(t *testing.T) string {
			jwk := publicJWK(t, &key.PublicKey)
			jwk["d"] = b64(key.D.FillBytes(make([]byte, 32)))
			return handmade(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk},
				map[string]any{"jti": "x", "htm": "POST", "htu": tokenURL, "iat": now.Unix()}, es256(key))
		}, dpop.Request{}, false, dpop.CodeInvalidProof},
		{"alg none", func(t *testing.T) string {
			return handmade(t, map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": publicJWK(t, &key.PublicKey)},
				map[string]any{"jti": "x", "htm": "POST", "htu": tokenURL, "iat": now.Unix()}, func([]byte) []byte { return nil })
		}, dpop.Request{}, false, dpop.CodeInvalidProof},
		{"HS256 with an oct jwk", func(t *testing.T) string {
			secret := []byte("a shared secret of thirty-two b!")
			return handmade(t, map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": map[string]any{"kty": "oct", "k": b64(secret)}},
				map[string]any{"jti": "x", "htm": "POST", "htu": tokenURL, "iat": now.Unix()}, func(in []byte) []byte {
					m := hmac.New(sha256.New, secret)
					m.Write(in)
					return m.Sum(nil)
				})
		}, dpop.Request{}, false, dpop.CodeInvalidProof},
		{"not a JWS", func(*testing.T) string { return "not.a.jws" }, dpop.Request{}, false, dpop.CodeInvalidProof},
		{"too large", func(t *testing.T) string {
			c := goodClaims()
			c.Nonce = strings.Repeat("n", dpop.MaxProofLen)
			return sign(t, signer, c)
		}, dpop.Request{}, false, dpop.CodeInvalidProof},
		{"ath matches", func(t *testing.T) string {
			c := goodClaims()
			c.ATH = dpop.TokenHash(token)
			return sign(t, signer, c)
		}, dpop.Request{AccessToken: token}, false, ""},
		{"ath missing", func(t *testing.T) string { return sign(t, signer, goodClaims()) }, dpop.Request{AccessToken: token}, false, dpop.CodeInvalidProof},
		{"ath of another token", func(t *testing.T) string {
			c := goodClaims()
			c.ATH = dpop.TokenHash("another-token")
			return sign(t, signer, c)
		}, dpop.Request{AccessToken: token}, false, dpop.CodeInvalidProof},
		{"nonce demanded, none sent", func(t *testing.T) string { return sign(t, signer, goodClaims()) }, dpop.Request{}, true, dpop.CodeUseNonce},
		{"nonce demanded, a made-up one", func(t *testing.T) string {
			c := goodClaims()
			c.Nonce = "made-up"
			return sign(t, signer, c)
		}, dpop.Request{}, true, dpop.CodeUseNonce},
		{"nonce demanded, the current one", func(t *testing.T) string {
			c := goodClaims()
			c.Nonce = newVerifier(true).Nonce()
			return sign(t, signer, c)
		}, dpop.Request{}, true, ""},
		{"nonce demanded, the previous window's", func(t *testing.T) string {
			c := goodClaims()
			c.Nonce = dpop.New(nil, []byte("0123456789abcdef0123456789abcdef"), true, func() time.Time { return now.Add(-dpop.NonceWindow) }).Nonce()
			return sign(t, signer, c)
		}, dpop.Request{}, true, ""},
		{"nonce demanded, two windows old", func(t *testing.T) string {
			c := goodClaims()
			c.Nonce = dpop.New(nil, []byte("0123456789abcdef0123456789abcdef"), true, func() time.Time { return now.Add(-2 * dpop.NonceWindow) }).Nonce()
			return sign(t, signer, c)
		}, dpop.Request{}, true, dpop.CodeUseNonce},
		{"nonce of another secret", func(t *testing.T) string {
			c := goodClaims()
			c.Nonce = dpop.New(nil, []byte("another secret, thirty-two bytes"), true, func() time.Time { return now }).Nonce()
			return sign(t, signer, c)
		}, dpop.Request{}, true, dpop.CodeUseNonce},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(tc.nonce)
			req := tc.req
			req.Method, req.URL = "POST", tokenURL
			jkt, err := v.Check(context.Background(), tc.proof(t), req)
			if tc.code == "" {
				if err != nil || jkt != signer.Thumbprint() {
					t.Fatalf("Check = %q, %v; want the signer's thumbprint %q", jkt, err, signer.Thumbprint())
				}
				return
			}
			e, ok := dpop.AsError(err)
			if !ok || e.Code != tc.code {
				t.Fatalf("Check = %q, %v; want %s", jkt, err, tc.code)
			}
		})
	}
}

func sign(t *testing.T, s *dpop.Signer, c dpop.Claims) string {
	t.Helper()
	p, err := s.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Every listed algorithm verifies, and the thumbprint is the key's.
func TestCheckAlgorithms(t *testing.T) {
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		alg jose.SignatureAlgorithm
		key crypto.Signer
	}{{jose.ES256, ec256}, {jose.ES384, ec384}, {jose.EdDSA, ed}, {jose.RS256, rk}, {jose.PS256, rk}} {
		t.Run(string(tc.alg), func(t *testing.T) {
			s, err := dpop.NewSigner(tc.key, tc.alg)
			if err != nil {
				t.Fatal(err)
			}
			p, _ := s.Proof("POST", tokenURL, "", "", now)
			jkt, err := newVerifier(false).Check(context.Background(), p, dpop.Request{Method: "POST", URL: tokenURL})
			if err != nil || jkt != s.Thumbprint() {
				t.Fatalf("Check = %q, %v", jkt, err)
			}
		})
	}
}

// A proof is spent by its first check, whatever happens to its request.
func TestCheckReplay(t *testing.T) {
	s, _ := ecSigner(t)
	v := newVerifier(false)
	p, _ := s.Proof("POST", tokenURL, "", "", now)
	req := dpop.Request{Method: "POST", URL: tokenURL}
	if _, err := v.Check(context.Background(), p, req); err != nil {
		t.Fatal(err)
	}
	_, err := v.Check(context.Background(), p, req)
	if e, ok := dpop.AsError(err); !ok || e.Code != dpop.CodeInvalidProof {
		t.Fatalf("replayed proof: %v, want invalid_dpop_proof", err)
	}
}

func TestProofHeader(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
		ok     bool
	}{
		{"none", nil, true},
		{"one", []string{"a.b.c"}, true},
		{"two", []string{"a.b.c", "d.e.f"}, false},
		{"empty", []string{""}, false},
		{"too large", []string{strings.Repeat("a", dpop.MaxProofLen+1)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.values {
				h.Add("DPoP", v)
			}
			_, err := dpop.Proof(h)
			if (err == nil) != tc.ok {
				t.Fatalf("Proof = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestSameURL(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"https://a.example/x", "https://A.EXAMPLE/x", true},
		{"https://a.example:443/x", "https://a.example/x", true},
		{"http://a.example:80/x", "http://a.example/x", true},
		{"https://a.example:8443/x", "https://a.example/x", false},
		{"https://a.example/x?q=1#f", "https://a.example/x", true},
		{"https://a.example/X", "https://a.example/x", false},
		{"https://a.example", "https://a.example/", true},
		{"https://u@a.example/x", "https://a.example/x", false},
		{"/x", "https://a.example/x", false},
	} {
		if got := dpop.SameURL(tc.a, tc.b); got != tc.same {
			t.Errorf("SameURL(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
}
