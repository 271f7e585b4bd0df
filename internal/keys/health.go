package keys

import (
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
)

// ChainHealth is what `latchkey doctor` reports of one algorithm's chain,
// read from the stored rows without changing them (New would make missing
// keys and replace old ones).
type ChainHealth struct {
	Alg jose.SignatureAlgorithm
	// Signing is the kid of the key that signs now, "" when none does.
	Signing string
	// Pending is the kid of a key published but not yet signing.
	Pending string
	// RotationOverdue is set when the signing key has signed for longer
	// than the rotation period and no successor waits: no instance ran
	// maintenance (none is running, or they cannot write keys).
	RotationOverdue bool
	// SealedByOlder lists keys that only an older secret of the list
	// opens; the next maintenance replaces them.
	SealedByOlder []string
	// Unopenable lists keys whose private half no configured secret opens.
	Unopenable []string
}

// Inspect reads the health of every chain (in the order of Algorithms)
// from rows as ListSigningKeys returns them.
func Inspect(rows []store.SigningKey, ss secrets.SystemSecrets, rotationPeriod time.Duration, now time.Time) ([]ChainHealth, error) {
	aeads, err := sealers(ss)
	if err != nil {
		return nil, fmt.Errorf("derive the key-encryption keys from LATCHKEY_SECRET: %w", err)
	}
	m := &Manager{aeads: aeads}
	chains := chainsOf(rows)
	out := make([]ChainHealth, 0, numAlgs)
	for i, chain := range chains {
		h := ChainHealth{Alg: Algorithms[i]}
		var signing *store.SigningKey
		for j := range chain {
			row := &chain[j]
			if row.ActivatesAt.After(now) {
				h.Pending = row.KID
			} else {
				signing = row
			}
			switch by := m.sealedBy(*row); {
			case len(row.PrivateKey) == 0:
			case by < 0:
				h.Unopenable = append(h.Unopenable, row.KID)
			case by > 0:
				h.SealedByOlder = append(h.SealedByOlder, row.KID)
			}
		}
		if signing != nil {
			h.Signing = signing.KID
			h.RotationOverdue = h.Pending == "" && now.After(signing.ActivatesAt.Add(rotationPeriod))
		}
		out = append(out, h)
	}
	return out, nil
}
