package keys

import (
	"encoding/json"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
)

// Private exposes the decrypted private key to tests, which look for its
// bytes in the database.
func (k *Key) Private() any { return k.private }

// UnsealWith opens a stored row as someone holding ss and a copy of the
// database would: the attacker of a secret rotation.
func UnsealWith(ss secrets.SystemSecrets, row store.SigningKey) (*jose.JSONWebKey, error) {
	aeads, err := sealers(ss)
	if err != nil {
		return nil, err
	}
	plain, _, err := (&Manager{aeads: aeads}).unseal(row)
	if err != nil {
		return nil, err
	}
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(plain, &jwk); err != nil {
		return nil, err
	}
	return &jwk, nil
}
