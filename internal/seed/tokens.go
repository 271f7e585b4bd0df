package seed

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/latchkey/latchkey/internal/secrets"
)

// purposeSeedTokens keys the derivation of seeded tokens' random part, so
// that only someone holding the system secret can recompute a seeded token.
const purposeSeedTokens = "latchkey/bench/seed-tokens"

// Token kinds, each its own derivation; a rotated predecessor k of grant i
// is kindRotated+k.
const (
	kindRefresh = 1
	kindAccess  = 2
	kindRotated = 16
)

// tokens makes fosite's opaque tokens: "ory_rt_" or "ory_at_", then
// base64url(32 bytes), ".", base64url(HMAC-SHA512/256 of those bytes under
// the first 32 bytes of the token HMAC key), which is what fosite's
// hmac.HMACStrategy.Generate does with Latchkey's TokenEntropy of 32. The
// row is keyed by secrets.SignatureKey of the part after the dot. The
// tests check a seeded token against fosite's own validation, so a change
// there fails them rather than seeding tokens the server refuses.
type tokens struct {
	hmacKey [32]byte
	seedKey []byte
}

func newTokens(ss secrets.SystemSecrets) (*tokens, error) {
	if len(ss) == 0 {
		return nil, errors.New("no system secret (LATCHKEY_SECRET)")
	}
	keys, err := ss.DeriveKeys(secrets.PurposeTokenHMAC)
	if err != nil {
		return nil, fmt.Errorf("derive token key: %w", err)
	}
	seedKey, err := secrets.DeriveKey(ss[0], purposeSeedTokens)
	if err != nil {
		return nil, fmt.Errorf("derive seed key: %w", err)
	}
	t := &tokens{seedKey: seedKey}
	copy(t.hmacKey[:], keys[0])
	return t, nil
}

var b64 = base64.RawURLEncoding

// token returns the token of one kind for grant i, and its storage key.
func (t *tokens) token(prefix string, kind uint64, i int) (token, key string) {
	var msg [16]byte
	binary.BigEndian.PutUint64(msg[:8], kind)
	binary.BigEndian.PutUint64(msg[8:], uint64(i))
	m := hmac.New(sha256.New, t.seedKey)
	m.Write(msg[:])
	raw := m.Sum(nil)
	s := hmac.New(sha512.New512_256, t.hmacKey[:])
	s.Write(raw)
	sig := b64.EncodeToString(s.Sum(nil))
	return prefix + b64.EncodeToString(raw) + "." + sig, secrets.SignatureKey(sig)
}

// Tokens recomputes seeded grants' tokens.
type Tokens struct{ t *tokens }

// NewTokens derives the keys once, for callers that recompute many tokens.
func NewTokens(ss secrets.SystemSecrets) (*Tokens, error) {
	t, err := newTokens(ss)
	if err != nil {
		return nil, err
	}
	return &Tokens{t}, nil
}

// Refresh is the live refresh token of seeded grant i (0-based), as the
// server accepts it, given the same system secret as the seed.
func (t *Tokens) Refresh(i int) string {
	tok, _ := t.t.token("ory_rt_", kindRefresh, i)
	return tok
}

// Access is the opaque access token of seeded grant i.
func (t *Tokens) Access(i int) string {
	tok, _ := t.t.token("ory_at_", kindAccess, i)
	return tok
}

// RefreshToken is Tokens.Refresh for one token.
func RefreshToken(ss secrets.SystemSecrets, i int) (string, error) {
	t, err := NewTokens(ss)
	if err != nil {
		return "", err
	}
	return t.Refresh(i), nil
}

// AccessToken is Tokens.Access for one token.
func AccessToken(ss secrets.SystemSecrets, i int) (string, error) {
	t, err := NewTokens(ss)
	if err != nil {
		return "", err
	}
	return t.Access(i), nil
}

// id is a stable identifier for row i of a kind, in the format the server
// uses: 32 hex digits (secrets.NewID) or, for grants, a UUID like the
// request IDs fosite makes.
func id(kind string, i int) []byte {
	sum := sha256.Sum256(fmt.Appendf(nil, "latchkey-seed/%s/%d", kind, i))
	return sum[:16]
}

// UserID is the id of seeded user k.
func UserID(k int) string { return hex.EncodeToString(id("user", k)) }

// Username is the username of seeded user k.
func Username(k int) string { return fmt.Sprintf("seed-%08d", k) }

// ClientID is the id of seeded client c.
func ClientID(c int) string { return fmt.Sprintf("seed-client-%d", c) }

// GrantID is the request ID of seeded grant i.
func GrantID(i int) string {
	b := id("grant", i)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// RevokedJTI is the jti of seeded revoked JWT j.
func RevokedJTI(j int) string { return hex.EncodeToString(id("jti", j)) }

// jtiKey is the deny-list key of seeded revoked JWT j, as RevokeJTI keys it.
func jtiKey(j int) string { return secrets.SignatureKey(RevokedJTI(j)) }

// unit is a stable pseudo-random number in [0, 1) for (kind, i): splitmix64.
func unit(kind, i uint64) float64 {
	z := i*0x9e3779b97f4a7c15 + kind*0xbf58476d1ce4e5b9 + 0x94d049bb133111eb
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11) / (1 << 53)
}
