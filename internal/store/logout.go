package store

import (
	"context"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/internal/secrets"
)

// The back-channel logout outbox (OpenID Connect Back-Channel Logout 1.0):
// the logout tokens owed to relying parties, written in the transaction
// that ends a login session (EndLoginSession, RevokeSubject) and delivered
// by internal/backchannel from any instance.

// LogoutDelivery is one logout token owed to one client for one ended
// login session. The token is signed when it is sent, from these claims.
type LogoutDelivery struct {
	ID       string `gorm:"column:id;primaryKey"`
	ClientID string `gorm:"column:client_id"`
	// URI is the client's backchannel_logout_uri when the session ended.
	URI     string `gorm:"column:uri"`
	Subject string `gorm:"column:subject"`
	SID     string `gorm:"column:sid"`
	// Attempts counts claims, the one in progress included.
	Attempts      int       `gorm:"column:attempts"`
	NextAttemptAt time.Time `gorm:"column:next_attempt_at"`
	// Claim identifies the claim that leased the row; only its holder
	// reschedules it (RetryLogoutDelivery).
	Claim     string     `gorm:"column:claim"`
	LastError string     `gorm:"column:last_error"`
	CreatedAt time.Time  `gorm:"column:created_at"`
	GaveUpAt  *time.Time `gorm:"column:gave_up_at"`
}

// TableName tells GORM the table.
func (*LogoutDelivery) TableName() string { return "logout_deliveries" }

// enqueueLogouts writes a delivery for every client that holds a grant of
// the login sessions that column (id or user_id) names and registered a
// backchannel_logout_uri: one per client and session, however many grants.
// Call it inside the transaction that ends the sessions, before their rows
// and grants are deleted. Two statements whatever the number of grants.
func (s *Store) enqueueLogouts(ctx context.Context, column, value string) error {
	var owed []struct {
		SID      string `gorm:"column:sid"`
		UserID   string `gorm:"column:user_id"`
		ClientID string `gorm:"column:client_id"`
		URI      string `gorm:"column:uri"`
	}
	err := s.db(ctx).Raw(`SELECT DISTINCT ls.sid AS sid, ls.user_id AS user_id, g.client_id AS client_id, c.backchannel_logout_uri AS uri
FROM login_sessions ls
JOIN login_session_grants g ON g.login_session_id = ls.id
JOIN clients c ON c.id = g.client_id
WHERE ls.`+column+` = ? AND c.backchannel_logout_uri <> ''`, value).Scan(&owed).Error
	if err != nil {
		return fmt.Errorf("find clients owed a logout token: %w", translate(err))
	}
	if len(owed) == 0 {
		return nil
	}
	now := s.nowUTC()
	rows := make([]LogoutDelivery, len(owed))
	for i, o := range owed {
		id, err := secrets.RandomToken(16)
		if err != nil {
			return fmt.Errorf("enqueue logout token: %w", err)
		}
		rows[i] = LogoutDelivery{ID: id, ClientID: o.ClientID, URI: o.URI, Subject: o.UserID, SID: o.SID,
			NextAttemptAt: now, CreatedAt: now}
	}
	if err := s.db(ctx).Create(&rows).Error; err != nil {
		return fmt.Errorf("enqueue logout tokens: %w", translate(err))
	}
	return nil
}

// LogoutClaim says which due deliveries ClaimLogoutDeliveries takes.
type LogoutClaim struct {
	// SID, when set, takes only the deliveries of that login session: the
	// request that ended it sends its own tokens at once.
	SID string
	// Limit bounds the rows claimed.
	Limit int
	// Lease is how long no other claim may take a claimed row: longer than
	// a send takes, so that only a crashed sender's rows come due again.
	Lease time.Duration
}

// ClaimLogoutDeliveries leases up to c.Limit deliveries that are due and
// not given up, counts an attempt on each and returns them. A row is
// claimed by one caller at a time on any number of instances: PostgreSQL
// skips rows another claim has locked (FOR UPDATE SKIP LOCKED) and the
// UPDATE re-checks that the row is still due; SQLite has one writer, so
// the conditional UPDATE is the whole lease.
func (s *Store) ClaimLogoutDeliveries(ctx context.Context, c LogoutClaim) ([]LogoutDelivery, error) {
	now := s.nowUTC()
	claim, err := secrets.RandomToken(12)
	if err != nil {
		return nil, fmt.Errorf("claim logout deliveries: %w", err)
	}
	filter, args := "", []any{now}
	if c.SID != "" {
		filter, args = " AND sid = ?", append(args, c.SID)
	}
	// The due rows are chosen once, in a materialized CTE: as a plain
	// IN (subquery) PostgreSQL may evaluate a LIMIT ... SKIP LOCKED
	// subquery again per row and take more than the limit.
	cte, lock := "", ""
	if s.dialect == DialectPostgres {
		cte, lock = " MATERIALIZED", " FOR UPDATE SKIP LOCKED"
	}
	var rows []LogoutDelivery
	err = s.db(ctx).Raw(`WITH due AS`+cte+` (
  SELECT id FROM logout_deliveries WHERE next_attempt_at <= ? AND gave_up_at IS NULL`+filter+`
  ORDER BY next_attempt_at LIMIT ?`+lock+`)
UPDATE logout_deliveries SET next_attempt_at = ?, attempts = attempts + 1, claim = ?
WHERE id IN (SELECT id FROM due) AND next_attempt_at <= ? AND gave_up_at IS NULL
RETURNING id, client_id, uri, subject, sid, attempts, next_attempt_at, claim, last_error, created_at, gave_up_at`,
		append(append(args, c.Limit), now.Add(c.Lease), claim, now)...).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("claim logout deliveries: %w", translate(err))
	}
	return rows, nil
}

// DeleteLogoutDelivery forgets a delivery that reached its client (or
// whose client is gone). Whoever delivered it deletes it, lease or not:
// delivered is delivered.
func (s *Store) DeleteLogoutDelivery(ctx context.Context, id string) error {
	if err := s.db(ctx).Where("id = ?", id).Delete(&LogoutDelivery{}).Error; err != nil {
		return fmt.Errorf("delete logout delivery: %w", translate(err))
	}
	return nil
}

// RetryLogoutDelivery records a failed attempt: the delivery comes due
// again at next, or is given up (kept for the janitor) when giveUp. Only
// the holder of the claim changes the row; a sender whose lease ran out
// and was claimed again changes nothing.
func (s *Store) RetryLogoutDelivery(ctx context.Context, id, claim string, next time.Time, lastErr string, giveUp bool) error {
	set := map[string]any{"next_attempt_at": next.UTC(), "last_error": lastErr, "claim": ""}
	if giveUp {
		set["gave_up_at"] = s.nowUTC()
	}
	if err := s.db(ctx).Model(&LogoutDelivery{}).Where("id = ? AND claim = ?", id, claim).Updates(set).Error; err != nil {
		return fmt.Errorf("reschedule logout delivery: %w", translate(err))
	}
	return nil
}

// LogoutDeliveries lists the deliveries of a login session's sid, or every
// one when sid is empty, oldest first: for operators and tests.
func (s *Store) LogoutDeliveries(ctx context.Context, sid string) ([]LogoutDelivery, error) {
	q := s.db(ctx).Order("created_at, id")
	if sid != "" {
		q = q.Where("sid = ?", sid)
	}
	var rows []LogoutDelivery
	if err := q.Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list logout deliveries: %w", translate(err))
	}
	return rows, nil
}
