package secrets

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/ory/fosite"
	"golang.org/x/crypto/hkdf"
)

// MinSystemSecretLen is the shortest LATCHKEY_SECRET accepted: 256 bits.
const MinSystemSecretLen = 32

// Purposes for DeriveKey. Each purpose gets an independent key, so a key
// leaked from one use (say, a log of token HMACs) says nothing about another.
const (
	PurposeTokenHMAC    = "latchkey/v1/token-hmac"
	PurposeClientSecret = "latchkey/v1/client-secret-hmac"
)

// DeriveKey derives a 32-byte key for one purpose from the system secret with
// HKDF-SHA256 (RFC 5869).
func DeriveKey(systemSecret []byte, purpose string) ([]byte, error) {
	if len(systemSecret) < MinSystemSecretLen {
		return nil, fmt.Errorf("system secret is %d bytes, need at least %d", len(systemSecret), MinSystemSecretLen)
	}
	key := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, systemSecret, nil, []byte(purpose)), key); err != nil {
		return nil, fmt.Errorf("derive %s key: %w", purpose, err)
	}
	return key, nil
}

// RandomToken returns n random bytes encoded as unpadded base64url.
func RandomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// ClientSecretBytes is the entropy of a generated client secret: 256 bits.
const ClientSecretBytes = 32

// NewClientSecret generates a client secret. Secrets are always made by the
// server, so they carry full entropy and need no slow password hash.
func NewClientSecret() (string, error) { return RandomToken(ClientSecretBytes) }

// SignatureKey is the storage key of a token: the hex SHA-256 of fosite's
// token signature. Storing a digest rather than the signature means a copy of
// the database cannot be used to look up or replay tokens.
func SignatureKey(signature string) string {
	sum := sha256.Sum256([]byte(signature))
	return hex.EncodeToString(sum[:])
}

// ErrMismatch is returned by ClientSecretHasher.Compare for a wrong secret.
var ErrMismatch = errors.New("secret does not match")

// ClientSecretHasher hashes server-generated client secrets with
// HMAC-SHA256 under a key derived from the system secret. A 256-bit random
// secret cannot be brute-forced, so a slow KDF such as bcrypt would only cap
// the token endpoint's throughput; the HMAC key keeps a stolen table useless
// without the system secret.
type ClientSecretHasher struct {
	key []byte
}

var _ fosite.Hasher = (*ClientSecretHasher)(nil)

// NewClientSecretHasher derives the hashing key from the system secret.
func NewClientSecretHasher(systemSecret []byte) (*ClientSecretHasher, error) {
	key, err := DeriveKey(systemSecret, PurposeClientSecret)
	if err != nil {
		return nil, err
	}
	return &ClientSecretHasher{key: key}, nil
}

// Hash returns HMAC-SHA256(key, secret).
func (h *ClientSecretHasher) Hash(_ context.Context, secret []byte) ([]byte, error) {
	mac := hmac.New(sha256.New, h.key)
	mac.Write(secret)
	return mac.Sum(nil), nil
}

// Compare checks secret against hash in constant time. An empty hash (a
// public client) never matches.
func (h *ClientSecretHasher) Compare(ctx context.Context, hash, secret []byte) error {
	want, _ := h.Hash(ctx, secret)
	if len(hash) == 0 || !hmac.Equal(hash, want) {
		return ErrMismatch
	}
	return nil
}

// PurposeRefreshSuccessor derives, from a refresh token, the key that seals
// its successor.
const PurposeRefreshSuccessor = "latchkey/v1/refresh-successor"

// tokenAEAD is AES-256-GCM under a key derived from a token: only someone
// holding the token can open what is sealed with it.
func tokenAEAD(token string) (cipher.AEAD, error) {
	key := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, []byte(token), nil, []byte(PurposeRefreshSuccessor)), key); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// SealWithToken encrypts plaintext so that only the holder of token can
// decrypt it; aad binds the ciphertext to its row.
func SealWithToken(token string, plaintext, aad []byte) ([]byte, error) {
	aead, err := tokenAEAD(token)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plaintext, aad), nil
}

// OpenWithToken reverses SealWithToken.
func OpenWithToken(token string, sealed, aad []byte) ([]byte, error) {
	aead, err := tokenAEAD(token)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("sealed value is truncated")
	}
	return aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], aad)
}
