package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/latchkey/latchkey/internal/secrets"
	"gorm.io/gorm/clause"
)

// Revocation, in one place: a grant's tokens (RevokeLiveGrant,
// RevokeGrant, RevokeRefreshToken, RevokeAccessToken), the deny-lists
// that stand in for JWTs, which have no rows (DenyGrantJWTs, RevokeJTI,
// IsRevoked), a user's everything (RevokeSubject) and a login session's
// grants (EndLoginSession). Every revocation takes the grants' locks first
// (lockGrants; why in grantlock.go), then changes rows: one order, so that
// two revocations never wait on each other in a cycle.

// lockGrants takes the grant locks of requestIDs until the context's
// transaction ends. Call it inside a transaction, before the first statement
// that reads or changes the grants' tokens.
func (s *Store) lockGrants(ctx context.Context, requestIDs ...string) error {
	if s.dialect != DialectPostgres || len(requestIDs) == 0 {
		return nil
	}
	if _, ok := ctx.Value(txKey{}).(*txState); !ok {
		return errors.New("lock grants: no transaction in context")
	}
	// As one JSON array: GORM would expand a slice into a parenthesized list.
	ids, err := json.Marshal(requestIDs)
	if err != nil {
		return err
	}
	if err := s.db(ctx).Exec("SELECT latchkey_lock_grants(ARRAY(SELECT json_array_elements_text(?::json)))", string(ids)).Error; err != nil {
		return fmt.Errorf("lock grants: %w", translate(err))
	}
	return nil
}

// lockGrantsOfSubject locks every grant in which subject holds a live
// refresh token, in one statement. A rotation in flight still shows its old
// token as active to this snapshot, so its grant is among them; a grant that
// begins later is refused by revoked_subjects instead.
func (s *Store) lockGrantsOfSubject(ctx context.Context, subject string) error {
	if s.dialect != DialectPostgres {
		return nil
	}
	err := s.db(ctx).Exec(`SELECT latchkey_lock_grants(ARRAY(
  SELECT DISTINCT request_id FROM refresh_tokens WHERE subject = ? AND active = true))`, subject).Error
	if err != nil {
		return fmt.Errorf("lock grants of subject: %w", translate(err))
	}
	return nil
}

type revokedJTI struct {
	JTI       string    `gorm:"column:jti;primaryKey"`
	ExpiresAt time.Time `gorm:"column:expires_at"`
}

func (revokedJTI) TableName() string { return "revoked_jtis" }

type revokedGrant struct {
	RequestID string    `gorm:"column:request_id;primaryKey"`
	ExpiresAt time.Time `gorm:"column:expires_at"`
}

func (revokedGrant) TableName() string { return "revoked_grants" }

// RevokeJTI puts one JWT on the deny-list until it expires on its own.
func (s *Store) RevokeJTI(ctx context.Context, jti string, until time.Time) error {
	row := revokedJTI{JTI: secrets.SignatureKey(jti), ExpiresAt: until.UTC()}
	s.denyHere(noticeRevokedJTI + row.JTI)
	if err := s.db(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&row).Error; err != nil {
		return fmt.Errorf("revoke jti: %w", translate(err))
	}
	return nil
}

// DenyGrantJWTs records a grant as revoked until every access token issued
// under it has expired. Revoking again extends the record.
//
// It takes the grant's lock (grantlock.go) before it writes the row, as
// every revocation does: one order, lock then row, so that two revocations
// of one grant never wait on each other in a cycle.
func (s *Store) DenyGrantJWTs(ctx context.Context, requestID string, until time.Time) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.lockGrants(ctx, requestID); err != nil {
			return err
		}
		return s.denyGrantJWTsLocked(ctx, requestID, until)
	})
}

// denyGrantJWTsLocked is DenyGrantJWTs for a caller that already holds the
// grant's lock in its transaction: the lock is not taken twice.
func (s *Store) denyGrantJWTsLocked(ctx context.Context, requestID string, until time.Time) error {
	row := revokedGrant{RequestID: requestID, ExpiresAt: until.UTC()}
	s.denyHere(noticeRevokedGrant + requestID)
	err := s.db(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "request_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"expires_at"}),
	}).Create(&row).Error
	if err != nil {
		return fmt.Errorf("revoke grant: %w", translate(err))
	}
	return nil
}

// markGrantRevoked records a grant as revoked for the refresh path without
// touching an existing record: expires_at now, since it says nothing about
// access tokens (DenyGrantJWTs does), and the refresh path ignores it anyway.
func (s *Store) markGrantRevoked(ctx context.Context, requestID string) error {
	row := revokedGrant{RequestID: requestID, ExpiresAt: s.nowUTC()}
	s.denyHere(noticeRevokedGrant + requestID)
	if err := s.db(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&row).Error; err != nil {
		return fmt.Errorf("revoke grant: %w", translate(err))
	}
	return nil
}

// IsRevoked reports whether a JWT was revoked: its jti, its grant, or
// everything its subject held when it was issued. It runs on every
// introspection: on PostgreSQL the in-memory deny-list answers "not
// revoked" without a query whenever it can be trusted (denylist.go); a
// "maybe", or any doubt, is one query.
func (s *Store) IsRevoked(ctx context.Context, jti, requestID, subject string, issuedAt time.Time) (bool, error) {
	key := secrets.SignatureKey(jti)
	if maybe, trusted := s.deny.check(key, requestID, subject, issuedAt); trusted && !maybe {
		return false, nil
	}
	now := s.nowUTC()
	var revoked bool
	err := s.db(ctx).Raw(
		"SELECT EXISTS (SELECT 1 FROM revoked_jtis WHERE jti = ? AND expires_at > ?) "+
			"OR EXISTS (SELECT 1 FROM revoked_grants WHERE request_id = ? AND expires_at > ?) "+
			"OR EXISTS (SELECT 1 FROM revoked_subjects WHERE subject = ? AND revoked_at >= ?)",
		key, now, requestID, now, subject, issuedAt.UTC(),
	).Scan(&revoked).Error
	if err != nil {
		return false, fmt.Errorf("check revocation: %w", translate(err))
	}
	return revoked, nil
}

// EndLoginSession deletes a session, revokes every grant issued under it
// and enqueues the back-channel logout tokens its clients are owed
// (logout.go), in one transaction. The grants come from login_session_grants, which
// re-login keeps exact, never from the token rows (see ReplaceLoginSession).
// The statements are set-based, a fixed number whatever the number of
// grants: logout of a session that signed many applications in stays one
// short transaction.
func (s *Store) EndLoginSession(ctx context.Context, sessionID string, revokeUntil time.Time) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		// The grants are read once: every statement below covers exactly
		// the grants whose locks were taken, even if a code is linked to
		// the session meanwhile.
		var ids []string
		if err := s.db(ctx).Model(&loginSessionGrant{}).Where("login_session_id = ?", sessionID).
			Order("request_id").Pluck("request_id", &ids).Error; err != nil {
			return fmt.Errorf("find grants of login session: %w", translate(err))
		}
		// The logout tokens owed to the session's clients, in this
		// transaction: a crash after the commit never loses one, and a
		// rollback never sends one for a session that did not end.
		if err := s.enqueueLogouts(ctx, "id", sessionID); err != nil {
			return err
		}
		if len(ids) > 0 {
			// All the locks first, in one statement and a fixed order
			// (see grantlock.go).
			if err := s.lockGrants(ctx, ids...); err != nil {
				return err
			}
			if err := s.revokeGrants(ctx, ids, revokeUntil); err != nil {
				return err
			}
		}
		if err := s.db(ctx).Where("login_session_id = ?", sessionID).Delete(&loginSessionGrant{}).Error; err != nil {
			return fmt.Errorf("forget grants of login session: %w", translate(err))
		}
		if err := s.db(ctx).Where("id = ?", sessionID).Delete(&LoginSession{}).Error; err != nil {
			return fmt.Errorf("delete login session: %w", translate(err))
		}
		return nil
	})
}

// revokeGrants is RevokeGrant for several grants at once, set-based.
// The caller holds the grants' locks and the transaction.
func (s *Store) revokeGrants(ctx context.Context, ids []string, until time.Time) error {
	for _, table := range []string{tableRefresh, tableCode} {
		if err := s.db(ctx).Table(table).Where("request_id IN ? AND active = ?", ids, true).
			Updates(map[string]any{"active": false}).Error; err != nil {
			return fmt.Errorf("revoke %s: %w", table, translate(err))
		}
	}
	if err := s.db(ctx).Table(tableAccess).Where("request_id IN ?", ids).Delete(&requestRow{}).Error; err != nil {
		return fmt.Errorf("revoke access tokens: %w", translate(err))
	}
	if err := s.revokeDeviceCodes(ctx, "request_id IN ?", ids); err != nil {
		return err
	}
	rows := make([]revokedGrant, len(ids))
	for i, id := range ids {
		rows[i] = revokedGrant{RequestID: id, ExpiresAt: until.UTC()}
		s.denyHere(noticeRevokedGrant + id)
	}
	if err := s.db(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "request_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"expires_at"}),
	}).Create(&rows).Error; err != nil {
		return fmt.Errorf("revoke grants: %w", translate(err))
	}
	return nil
}

// RevokeGrant revokes every token of a grant whatever its format:
// refresh tokens and unused codes are deactivated, opaque access tokens
// deleted, and the grant recorded as revoked for JWT access tokens.
func (s *Store) RevokeGrant(ctx context.Context, requestID string, until time.Time) error {
	_, err := s.RevokeLiveGrant(ctx, requestID, until)
	return err
}

// RevokeLiveGrant is RevokeGrant that also reports whether any refresh
// token, code or opaque access token was still live, so that a caller can
// tell the revocation that changed something from a repeat of it (and
// record a security event once per grant, not once per replay). It holds the
// grant's lock, so a rotation in flight either finishes first and has its
// successor revoked here, or starts after and is refused.
func (s *Store) RevokeLiveGrant(ctx context.Context, requestID string, until time.Time) (changed bool, err error) {
	err = s.InTx(ctx, func(ctx context.Context) error {
		if err := s.lockGrants(ctx, requestID); err != nil {
			return err
		}
		refresh := s.db(ctx).Table(tableRefresh).Where("request_id = ? AND active = ?", requestID, true).
			Updates(map[string]any{"active": false})
		if refresh.Error != nil {
			return fmt.Errorf("revoke refresh tokens: %w", translate(refresh.Error))
		}
		access := s.db(ctx).Table(tableAccess).Where("request_id = ?", requestID).Delete(&requestRow{})
		if access.Error != nil {
			return fmt.Errorf("revoke access tokens: %w", translate(access.Error))
		}
		codes := s.db(ctx).Table(tableCode).Where("request_id = ? AND active = ?", requestID, true).
			Updates(map[string]any{"active": false})
		if codes.Error != nil {
			return fmt.Errorf("revoke codes: %w", translate(codes.Error))
		}
		changed = refresh.RowsAffected+access.RowsAffected+codes.RowsAffected > 0
		return s.denyGrantJWTsLocked(ctx, requestID, until)
	})
	return changed, err
}

type revokedSubject struct {
	Subject   string    `gorm:"column:subject;primaryKey"`
	RevokedAt time.Time `gorm:"column:revoked_at"`
}

func (revokedSubject) TableName() string { return "revoked_subjects" }

// RevokeSubject revokes everything a user holds: every grant's refresh
// tokens, opaque access tokens and unused codes, every login session (with
// the back-channel logout tokens their clients are owed), and
// (through revoked_subjects) every JWT access token issued until now.
// until bounds how long grant records are kept.
//
// The subject's grants are locked (grantlock.go) before their tokens are
// revoked, so no rotation in flight leaves a live successor behind; and the
// refresh path refuses every grant that began before revoked_at, including
// one whose first refresh token is committed only after this.
func (s *Store) RevokeSubject(ctx context.Context, subject string, until time.Time) error {
	now := s.nowUTC()
	return s.InTx(ctx, func(ctx context.Context) error {
		row := revokedSubject{Subject: subject, RevokedAt: now}
		// A microsecond late: the database keeps microseconds and may
		// round up; later only makes more tokens "maybe".
		s.denyHere(noticeRevokedSubject + strconv.FormatInt(now.UnixMicro()+1, 10) + ":" + subject)
		if err := s.db(ctx).Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "subject"}},
			DoUpdates: clause.AssignmentColumns([]string{"revoked_at"}),
		}).Create(&row).Error; err != nil {
			return fmt.Errorf("revoke subject: %w", translate(err))
		}
		if err := s.lockGrantsOfSubject(ctx, subject); err != nil {
			return err
		}
		for _, table := range []string{tableRefresh, tableCode} {
			if err := s.db(ctx).Table(table).Where("subject = ? AND active = ?", subject, true).
				Updates(map[string]any{"active": false}).Error; err != nil {
				return fmt.Errorf("revoke %s of subject: %w", table, translate(err))
			}
		}
		if err := s.db(ctx).Table(tableAccess).Where("subject = ?", subject).Delete(&requestRow{}).Error; err != nil {
			return fmt.Errorf("revoke access tokens of subject: %w", translate(err))
		}
		// Approved device codes not yet redeemed: their tokens would be
		// issued after this.
		if err := s.revokeDeviceCodes(ctx, "user_id = ?", subject); err != nil {
			return err
		}
		// Every session of the user ends: its clients are owed logout
		// tokens, as at logout (EndLoginSession).
		if err := s.enqueueLogouts(ctx, "user_id", subject); err != nil {
			return err
		}
		if err := s.db(ctx).Where("login_session_id IN (?)", s.db(ctx).Model(&LoginSession{}).Select("id").Where("user_id = ?", subject)).
			Delete(&loginSessionGrant{}).Error; err != nil {
			return fmt.Errorf("forget grants of subject's login sessions: %w", translate(err))
		}
		if err := s.db(ctx).Where("user_id = ?", subject).Delete(&LoginSession{}).Error; err != nil {
			return fmt.Errorf("end login sessions of subject: %w", translate(err))
		}
		return nil
	})
}

// RevokeRefreshToken deactivates every refresh token of the grant, under the
// grant's lock (grantlock.go), and records the grant in revoked_grants, which
// the refresh path checks. The rows stay so that presenting one again is
// recognised as reuse.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.lockGrants(ctx, requestID); err != nil {
			return err
		}
		if err := s.db(ctx).Table(tableRefresh).Where("request_id = ? AND active = ?", requestID, true).
			Updates(map[string]any{"active": false}).Error; err != nil {
			return fmt.Errorf("revoke refresh tokens: %w", translate(err))
		}
		return s.markGrantRevoked(ctx, requestID)
	})
}

// RevokeAccessToken deletes every access token of the grant, under the
// grant's lock: a rotation in flight stores its access token before this
// looks.
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.lockGrants(ctx, requestID); err != nil {
			return err
		}
		if err := s.db(ctx).Table(tableAccess).Where("request_id = ?", requestID).Delete(&requestRow{}).Error; err != nil {
			return fmt.Errorf("revoke access tokens: %w", translate(err))
		}
		return nil
	})
}
