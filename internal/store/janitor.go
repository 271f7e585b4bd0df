package store

import (
	"context"
	"fmt"
	"time"
)

// Retention says how long expired rows are still needed.
type Retention struct {
	// AccessTokenTTL keeps authorization codes past their expiry for as
	// long as a JWT access token issued from them may live: logout finds a
	// grant's tokens through them.
	AccessTokenTTL time.Duration
	// RevocationWindow is how long a revoked grant or token must be
	// remembered: as long as an access token issued before the revocation
	// can live (config.Config.RevocationWindow). Zero means AccessTokenTTL
	// plus a minute, the same rule.
	RevocationWindow time.Duration
	// SessionIdleTTL ends login sessions that went unused.
	SessionIdleTTL time.Duration
	// FailureWindow is how long failed-login counters matter.
	FailureWindow time.Duration
	// SecurityEvents is how long audit rows are kept, security events and
	// the admin audit log alike (LATCHKEY_AUDIT_RETENTION; 0: forever).
	SecurityEvents time.Duration
	// GrantLifetime is the longest a grant can live after its
	// authorization code was issued (code, then the absolute refresh
	// lifetime, then the last access token). Until then logout must still
	// find the grant through login_session_grants, and the refresh path
	// must still see a revoked grant or subject on its deny-list. 0 keeps
	// login_session_grants rows and keeps deny-list rows only as long as
	// access tokens need them.
	GrantLifetime time.Duration
}

// revocationWindow is RevocationWindow, or its rule when it is not set.
func (r Retention) revocationWindow() time.Duration {
	if r.RevocationWindow > 0 {
		return r.RevocationWindow
	}
	return r.AccessTokenTTL + time.Minute
}

// GaveUpLogoutRetention is how long a logout delivery that was given up is
// kept before the janitor deletes it.
const GaveUpLogoutRetention = 7 * 24 * time.Hour

// expiry is one kind of row the janitor deletes: those whose column is
// before the cutoff. key is the primary key column the batches select by.
type expiry struct {
	table, key, column string
	cutoff             func(now time.Time, r Retention) time.Time
}

var expiries = []expiry{
	{tableAccess, "signature", "expires_at", func(now time.Time, _ Retention) time.Time { return now }},
	{tableRefresh, "signature", "expires_at", func(now time.Time, _ Retention) time.Time { return now }},
	{tablePKCE, "signature", "expires_at", func(now time.Time, _ Retention) time.Time { return now }},
	{tableCode, "signature", "expires_at", func(now time.Time, r Retention) time.Time { return now.Add(-r.revocationWindow()) }},
	{"client_assertion_jtis", "jti", "expires_at", func(now time.Time, _ Retention) time.Time { return now }},
	{"revoked_jtis", "jti", "expires_at", func(now time.Time, _ Retention) time.Time { return now }},
	{"dpop_proofs", "jti", "expires_at", func(now time.Time, _ Retention) time.Time { return now }},
	// The deny-lists outlive the access tokens they name: the refresh path
	// refuses a revoked grant or subject for as long as a grant could live
	// (issue 12 item 1), or a refresh token left live would work again.
	{"revoked_grants", "request_id", "expires_at", func(now time.Time, r Retention) time.Time { return now.Add(-r.GrantLifetime) }},
	{"revoked_subjects", "subject", "revoked_at", func(now time.Time, r Retention) time.Time {
		return now.Add(-max(r.revocationWindow(), r.GrantLifetime+time.Minute))
	}},
	// Abandoned logout deliveries stay a week for operators to look at
	// (last_error); gave_up_at is NULL, never before the cutoff, while one
	// is still being tried.
	{"logout_deliveries", "id", "gave_up_at", func(now time.Time, _ Retention) time.Time { return now.Add(-GaveUpLogoutRetention) }},
	// E-mailed links, once expired, are dead whether used or not; the
	// per-person limit counts only links younger than their lifetime.
	{"email_tokens", "id", "expires_at", func(now time.Time, _ Retention) time.Time { return now }},
	// Pushed authorization requests live 60 s (RFC 9126 §2.2).
	{"pushed_requests", "id", "expires_at", func(now time.Time, _ Retention) time.Time { return now }},
	// Device codes live LATCHKEY_DEVICE_CODE_TTL (RFC 8628 §3.2 expires_in);
	// a redeemed one's grant lives in the token tables.
	{"device_codes", "signature", "expires_at", func(now time.Time, _ Retention) time.Time { return now }},
	{"login_sessions", "id", "expires_at", func(now time.Time, _ Retention) time.Time { return now }},
	{"login_sessions", "id", "last_seen_at", func(now time.Time, r Retention) time.Time { return now.Add(-r.SessionIdleTTL) }},
}

// DeleteExpiredBatch deletes at most batch expired rows of each kind and
// reports how many it deleted. Each statement selects its victims through
// the expiry index (never a scan of the whole table) and holds its locks for
// one small batch, so the token endpoints never wait long behind it.
func (s *Store) DeleteExpiredBatch(ctx context.Context, r Retention, batch int) (int64, error) {
	now := s.nowUTC()
	var total int64
	for _, e := range expiries {
		res := s.db(ctx).Exec(fmt.Sprintf(
			"DELETE FROM %s WHERE %s IN (SELECT %s FROM %s WHERE %s < ? ORDER BY %s LIMIT ?)",
			e.table, e.key, e.key, e.table, e.column, e.column), e.cutoff(now, r), batch)
		if res.Error != nil {
			return total, fmt.Errorf("delete expired %s: %w", e.table, translate(res.Error))
		}
		total += res.RowsAffected
	}
	res := s.db(ctx).Exec("DELETE FROM login_failures WHERE key IN (SELECT key FROM login_failures WHERE window_start < ? AND (locked_until IS NULL OR locked_until < ?) ORDER BY window_start LIMIT ?)",
		now.Add(-r.FailureWindow), now, batch)
	if res.Error != nil {
		return total, fmt.Errorf("delete expired login failures: %w", translate(res.Error))
	}
	total += res.RowsAffected
	if r.GrantLifetime > 0 {
		// Never while the grant can be live: a stolen refresh token must
		// still die when its login session logs out (issue 11 item 6).
		res := s.db(ctx).Exec(`DELETE FROM login_session_grants WHERE (login_session_id, request_id) IN
  (SELECT login_session_id, request_id FROM login_session_grants WHERE created_at < ? ORDER BY created_at LIMIT ?)`,
			now.Add(-r.GrantLifetime-time.Minute), batch)
		if res.Error != nil {
			return total, fmt.Errorf("delete old login session grants: %w", translate(res.Error))
		}
		total += res.RowsAffected
	}
	if r.SecurityEvents > 0 {
		res := s.db(ctx).Exec("DELETE FROM security_events WHERE id IN (SELECT id FROM security_events WHERE created_at < ? ORDER BY created_at LIMIT ?)",
			now.Add(-r.SecurityEvents), batch)
		if res.Error != nil {
			return total, fmt.Errorf("delete old security events: %w", translate(res.Error))
		}
		total += res.RowsAffected
		res = s.db(ctx).Exec("DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < ? ORDER BY at LIMIT ?)",
			now.Add(-r.SecurityEvents), batch)
		if res.Error != nil {
			return total, fmt.Errorf("delete old audit log entries: %w", translate(res.Error))
		}
		total += res.RowsAffected
	}
	return total, nil
}

// AcquireLease takes or renews the named lease for holder until ttl from
// now, unless another holder has it. Only one instance at a time gets true.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	now := s.nowUTC()
	var got []string
	err := s.db(ctx).Raw(`INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE leases.expires_at < ? OR leases.holder = excluded.holder
RETURNING holder`, name, holder, now.Add(ttl), now).Scan(&got).Error
	if err != nil {
		return false, fmt.Errorf("acquire lease %s: %w", name, translate(err))
	}
	return len(got) == 1 && got[0] == holder, nil
}

// ReleaseLease gives the lease up early.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if err := s.db(ctx).Exec("DELETE FROM leases WHERE name = ? AND holder = ?", name, holder).Error; err != nil {
		return fmt.Errorf("release lease %s: %w", name, translate(err))
	}
	return nil
}
