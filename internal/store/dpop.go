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
//
// On PostgreSQL the statement's own transaction commits without waiting for
// the WAL flush (synchronous_commit off, for this statement only, when it
// is not inside a caller's transaction): the conditional insert is still
// atomic and still seen by every instance at once; what a database crash
// can lose is the last fraction of a second of spent proofs, each of which
// would be accepted once more only within its 60 s window. Waiting for the
// flush halved DPoP's throughput (docs/benchmarks.md), for a record whose
// whole life is a minute.
func (s *Store) SpendDPoPProof(ctx context.Context, key string, expires time.Time) (bool, error) {
	q := "INSERT INTO dpop_proofs (jti, expires_at) VALUES (?, ?) " +
		"ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at WHERE dpop_proofs.expires_at <= ?"
	if _, inTx := ctx.Value(txKey{}).(*txState); s.dialect == DialectPostgres && !inTx {
		// set_config(…, true) lasts until the end of the statement's
		// implicit transaction, so its commit reads it.
		q = "WITH async AS (SELECT set_config('synchronous_commit', 'off', true)) " +
			"INSERT INTO dpop_proofs (jti, expires_at) SELECT ?, ? FROM async " +
			"ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at WHERE dpop_proofs.expires_at <= ?"
	}
	res := s.db(ctx).Exec(q, secrets.SignatureKey(key), expires.UTC(), s.nowUTC())
	if res.Error != nil {
		return false, fmt.Errorf("spend dpop proof: %w", translate(res.Error))
	}
	return res.RowsAffected == 1, nil
}
