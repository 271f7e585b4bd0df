package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
)

// PurposeFactorSecret derives the key that seals second-factor secrets
// (TOTP seeds) at rest.
const PurposeFactorSecret = "latchkey/v1/factor-secret"

// Sealer encrypts small secrets at rest with AES-256-GCM under keys derived
// from the system secrets: the first seals, every one opens, so a rotation
// of LATCHKEY_SECRET keeps what was sealed readable.
type Sealer struct{ aeads []cipher.AEAD }

// NewSealer derives the purpose's keys from ss.
func NewSealer(ss SystemSecrets, purpose string) (*Sealer, error) {
	keys, err := ss.DeriveKeys(purpose)
	if err != nil {
		return nil, err
	}
	s := &Sealer{}
	for _, k := range keys {
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		s.aeads = append(s.aeads, aead)
	}
	if len(s.aeads) == 0 {
		return nil, errors.New("sealer: no system secret")
	}
	return s, nil
}

// Seal encrypts plaintext; aad binds it to where it is stored (a row's id),
// so a sealed value copied to another row does not open.
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	aead := s.aeads[0]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plaintext, aad), nil
}

// Open reverses Seal under any of the keys.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	for _, aead := range s.aeads {
		if len(sealed) < aead.NonceSize() {
			return nil, errors.New("sealed value is truncated")
		}
		if pt, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], aad); err == nil {
			return pt, nil
		}
	}
	return nil, errors.New("sealed value does not open")
}
