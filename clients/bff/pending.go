package bff

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// pendingTTL is how long a sign-in may take between /auth/login and the
// callback.
const pendingTTL = 10 * time.Minute

// pendingLogin is what the callback needs to finish a sign-in. It travels
// in a sealed cookie, not in the BFF's memory: /auth/login is open to
// anyone, and server-side entries would let each anonymous call cost memory
// (and, before, a walk over every entry under the session mutex).
type pendingLogin struct {
	State    string `json:"s"`
	Nonce    string `json:"n"` // OpenID Connect: the ID token must carry it
	Verifier string `json:"v"`
	Expires  int64  `json:"e"`
}

var errBadPending = errors.New("login state missing, forged, expired or from another sign-in")

// sealer encrypts and authenticates the pending-login cookie with
// XChaCha20-Poly1305: the browser can neither read the PKCE verifier nor
// forge a state, and a random 24-byte nonce is safe for any number of
// cookies under one key.
type sealer struct {
	key []byte
	now func() time.Time
}

// additionalData binds a sealed value to its purpose, so that no other
// cookie sealed with the same key can be replayed as a pending login.
const additionalData = "latchkey-bff pending login v1"

func (s sealer) seal(p pendingLogin) (string, error) {
	aead, err := chacha20poly1305.NewX(s.key)
	if err != nil {
		return "", fmt.Errorf("seal login state: %w", err)
	}
	p.Expires = s.now().Add(pendingTTL).Unix()
	plain, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("seal login state: %w", err)
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal login state: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, []byte(additionalData))), nil
}

// open returns the pending login sealed in cookie if it is authentic,
// unexpired, and for state (the value that came back from Latchkey).
func (s sealer) open(cookie, state string) (pendingLogin, error) {
	var p pendingLogin
	aead, err := chacha20poly1305.NewX(s.key)
	if err != nil {
		return p, fmt.Errorf("open login state: %w", err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(cookie)
	if err != nil || len(raw) < aead.NonceSize() {
		return p, errBadPending
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(additionalData))
	if err != nil {
		return p, errBadPending
	}
	if err := json.Unmarshal(plain, &p); err != nil {
		return p, errBadPending
	}
	if !s.now().Before(time.Unix(p.Expires, 0)) {
		return p, errBadPending
	}
	// RFC 6749 §10.12: the state that came back must be the one this
	// browser was given.
	if state == "" || subtle.ConstantTimeCompare([]byte(p.State), []byte(state)) != 1 {
		return p, errBadPending
	}
	return p, nil
}
