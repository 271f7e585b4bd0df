package dpop

import (
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Signer makes proofs with one key: the client side, for the load tool and
// the tests (a Go client of Latchkey may use it too).
type Signer struct {
	signer jose.Signer
	jkt    string
}

// NewSigner signs proofs with key (an *ecdsa.PrivateKey, ed25519.PrivateKey
// or *rsa.PrivateKey) under alg; the public half goes into every proof's jwk.
func NewSigner(key crypto.Signer, alg jose.SignatureAlgorithm) (*Signer, error) {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		return nil, fmt.Errorf("dpop signer: %w", err)
	}
	jkt, err := Thumbprint(&jose.JSONWebKey{Key: key.Public()})
	if err != nil {
		return nil, fmt.Errorf("dpop signer thumbprint: %w", err)
	}
	return &Signer{signer: s, jkt: jkt}, nil
}

// Thumbprint is the jkt of the signer's key.
func (s *Signer) Thumbprint() string { return s.jkt }

// Claims are a proof's claims; Sign fills jti and iat when they are empty.
type Claims struct {
	JTI   string `json:"jti"`
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	IAT   int64  `json:"iat"`
	ATH   string `json:"ath,omitempty"`
	Nonce string `json:"nonce,omitempty"`
}

// Proof signs a proof for one request: a fresh jti, iat now, ath when an
// access token is given, nonce when given.
func (s *Signer) Proof(method, url, accessToken, nonce string, now time.Time) (string, error) {
	c := Claims{HTM: method, HTU: url, IAT: now.Unix(), Nonce: nonce}
	if accessToken != "" {
		c.ATH = TokenHash(accessToken)
	}
	return s.Sign(c)
}

// Sign signs any claims: tests use it for proofs that are wrong on
// purpose. An empty jti gets a random one.
func (s *Signer) Sign(c Claims) (string, error) {
	if c.JTI == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		c.JTI = base64.RawURLEncoding.EncodeToString(b)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	jws, err := s.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign dpop proof: %w", err)
	}
	return jws.CompactSerialize()
}
