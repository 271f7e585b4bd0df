package store

import (
	"context"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/internal/secrets"
)

// SpendDPoPProof records a DPoP proof as used until expires and reports
// whether this call was the first to use it (RFC 9449 §11.1). key is the
// caller's scoped identifier of the proof (its key's thumbprint and its
// jti); it is stored hashed. One statement, one write: the conditional
// insert admits exactly one of any number of concurrent spenders on every
// instance, and a row whose proof can no longer be accepted anyway (expired)
// is taken over rather than blocking the key forever.
func (s *Store) SpendDPoPProof(ctx context.Context, key string, expires time.Time) (bool, error) {
	res := s.db(ctx).Exec(
		"INSERT INTO dpop_proofs (jti, expires_at) VALUES (?, ?) "+
			"ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at WHERE dpop_proofs.expires_at <= ?",
		secrets.SignatureKey(key), expires.UTC(), s.nowUTC())
	if res.Error != nil {
		return false, fmt.Errorf("spend dpop proof: %w", translate(res.Error))
	}
	return res.RowsAffected == 1, nil
}
