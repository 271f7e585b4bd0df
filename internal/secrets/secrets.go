package secrets

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

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
	PurposeDPoPNonce    = "latchkey/v1/dpop-nonce"
	// PurposeDeviceCode keys the HMACs that device codes and user codes
	// (RFC 8628) are stored as.
	PurposeDeviceCode = "latchkey/v1/device-code-hmac"
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

// SystemSecrets is LATCHKEY_SECRET as a list: the first signs and seals
// everything new; the others are still accepted when verifying, so that the
// secret can be rotated without invalidating what was made with the old one.
type SystemSecrets [][]byte

// ParseSystemSecrets splits a comma-separated LATCHKEY_SECRET.
func ParseSystemSecrets(s string) SystemSecrets {
	var out SystemSecrets
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, []byte(part))
		}
	}
	return out
}

// DeriveKeys derives the purpose's key from every secret, current first.
func (ss SystemSecrets) DeriveKeys(purpose string) ([][]byte, error) {
	if len(ss) == 0 {
		return nil, errors.New("no system secret")
	}
	keys := make([][]byte, 0, len(ss))
	for _, s := range ss {
		k, err := DeriveKey(s, purpose)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// ClientSecretHasher hashes server-generated client secrets with
// HMAC-SHA256 under a key derived from the system secret. A 256-bit random
// secret cannot be brute-forced, so a slow KDF such as bcrypt would only cap
// the token endpoint's throughput; the HMAC key keeps a stolen table useless
// without the system secret.
type ClientSecretHasher struct {
	// keys[0] hashes; every key verifies, so hashes made before a secret
	// rotation keep working.
	keys [][]byte
}

var _ fosite.Hasher = (*ClientSecretHasher)(nil)

// NewClientSecretHasher derives the hashing keys from the system secrets.
func NewClientSecretHasher(ss SystemSecrets) (*ClientSecretHasher, error) {
	keys, err := ss.DeriveKeys(PurposeClientSecret)
	if err != nil {
		return nil, err
	}
	return &ClientSecretHasher{keys: keys}, nil
}

func mac(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

// Hash returns HMAC-SHA256(current key, secret).
func (h *ClientSecretHasher) Hash(_ context.Context, secret []byte) ([]byte, error) {
	return mac(h.keys[0], secret), nil
}

// Compare checks secret against hash in constant time, under every key. An
// empty hash (a public client) never matches.
func (h *ClientSecretHasher) Compare(_ context.Context, hash, secret []byte) error {
	ok := 0
	for _, k := range h.keys {
		ok |= subtle.ConstantTimeCompare(hash, mac(k, secret))
	}
	if len(hash) == 0 || ok != 1 {
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

// NewID returns a random 128-bit identifier for clients and users, in hex:
// it never starts with "-", which a command line would take for a flag.
func NewID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return hex.EncodeToString(b), nil
}
