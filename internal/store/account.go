package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/latchkey/latchkey/internal/secrets"
)

// What the account page (internal/login, account.go) needs: a person's
// login sessions and the applications they granted, each of which they may
// end, and the single-use links of password reset and e-mail verification.

// ListLoginSessions returns a user's live login sessions (not past their
// absolute expiry, seen within idle), the most recently seen first.
func (s *Store) ListLoginSessions(ctx context.Context, userID string, idle time.Duration) ([]LoginSession, error) {
	now := s.nowUTC()
	var out []LoginSession
	err := s.db(ctx).Where("user_id = ? AND expires_at > ? AND last_seen_at > ?", userID, now, now.Add(-idle)).
		Order("last_seen_at DESC, id").Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("list login sessions: %w", translate(err))
	}
	return out, nil
}

// EndUserLoginSession ends the login session of userID whose public
// identifier is sid, as logout does (EndLoginSession): its grants revoked,
// its clients' back-channel logout tokens enqueued. ErrNotFound when the
// user has no such session: a person ends only their own.
func (s *Store) EndUserLoginSession(ctx context.Context, userID, sid string, revokeUntil time.Time) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		var ids []string
		if err := s.db(ctx).Model(&LoginSession{}).Where("user_id = ? AND sid = ?", userID, sid).
			Pluck("id", &ids).Error; err != nil {
			return fmt.Errorf("find login session: %w", translate(err))
		}
		if len(ids) == 0 {
			return fmt.Errorf("end login session: %w", ErrNotFound)
		}
		for _, id := range ids {
			if err := s.EndLoginSession(ctx, id, revokeUntil); err != nil {
				return err
			}
		}
		return nil
	})
}

// EndOtherLoginSessions ends every login session of userID but keepID, each
// as logout does, in one transaction, and returns their sids (whose
// back-channel logout tokens the caller may send at once).
func (s *Store) EndOtherLoginSessions(ctx context.Context, userID, keepID string, revokeUntil time.Time) ([]string, error) {
	var ended []string
	err := s.InTx(ctx, func(ctx context.Context) error {
		var rows []LoginSession
		if err := s.db(ctx).Select("id", "sid").Where("user_id = ? AND id <> ?", userID, keepID).
			Order("id").Find(&rows).Error; err != nil {
			return fmt.Errorf("find other login sessions: %w", translate(err))
		}
		ended = ended[:0]
		for _, ls := range rows {
			if err := s.EndLoginSession(ctx, ls.ID, revokeUntil); err != nil {
				return err
			}
			ended = append(ended, ls.SID)
		}
		return nil
	})
	return ended, err
}

// AuthorizedApp is an application a person let act for them: a remembered
// consent, or a grant that still holds a live refresh token (trusted
// clients skip consent but still hold grants).
type AuthorizedApp struct {
	ClientID   string
	ClientName string
	// Scopes are the consented scopes, or those of the live grants.
	Scopes []string
	// Since is when the consent was last given, or the oldest live grant
	// began.
	Since time.Time
}

// ListAuthorizedApps returns the applications a user granted, by client
// name. Two statements whatever the number of grants.
func (s *Store) ListAuthorizedApps(ctx context.Context, userID string) ([]AuthorizedApp, error) {
	var consents []struct {
		ClientID   string    `gorm:"column:client_id"`
		ClientName string    `gorm:"column:client_name"`
		Scopes     []string  `gorm:"column:scopes;serializer:json"`
		UpdatedAt  time.Time `gorm:"column:updated_at"`
	}
	err := s.db(ctx).Raw(`SELECT c.client_id AS client_id, cl.name AS client_name, c.scopes AS scopes, c.updated_at AS updated_at
FROM consents c JOIN clients cl ON cl.id = c.client_id WHERE c.user_id = ?`, userID).Scan(&consents).Error
	if err != nil {
		return nil, fmt.Errorf("list consents: %w", translate(err))
	}
	var grants []struct {
		ClientID      string    `gorm:"column:client_id"`
		ClientName    string    `gorm:"column:client_name"`
		GrantedScopes []string  `gorm:"column:granted_scopes;serializer:json"`
		RequestedAt   time.Time `gorm:"column:requested_at"`
	}
	err = s.db(ctx).Raw(`SELECT r.client_id AS client_id, cl.name AS client_name, r.granted_scopes AS granted_scopes, r.requested_at AS requested_at
FROM refresh_tokens r JOIN clients cl ON cl.id = r.client_id
WHERE r.subject = ? AND r.active = ? ORDER BY r.requested_at`, userID, true).Scan(&grants).Error
	if err != nil {
		return nil, fmt.Errorf("list grants: %w", translate(err))
	}
	byClient := map[string]*AuthorizedApp{}
	for _, c := range consents {
		byClient[c.ClientID] = &AuthorizedApp{ClientID: c.ClientID, ClientName: c.ClientName, Scopes: c.Scopes, Since: c.UpdatedAt}
	}
	for _, g := range grants {
		app, ok := byClient[g.ClientID]
		if !ok {
			app = &AuthorizedApp{ClientID: g.ClientID, ClientName: g.ClientName, Since: g.RequestedAt}
			byClient[g.ClientID] = app
		}
		if app.Since.IsZero() || g.RequestedAt.Before(app.Since) {
			app.Since = g.RequestedAt
		}
		if !ok {
			app.Scopes = append(app.Scopes, g.GrantedScopes...)
		}
	}
	out := make([]AuthorizedApp, 0, len(byClient))
	for _, app := range byClient {
		slices.Sort(app.Scopes)
		app.Scopes = slices.Compact(app.Scopes)
		out = append(out, *app)
	}
	slices.SortFunc(out, func(a, b AuthorizedApp) int {
		if a.ClientName != b.ClientName {
			if a.ClientName < b.ClientName {
				return -1
			}
			return 1
		}
		if a.ClientID < b.ClientID {
			return -1
		}
		return 1
	})
	return out, nil
}

// RevokeApp takes back everything a user granted a client: every grant of
// theirs to it (refresh tokens, unused codes, opaque access tokens, and the
// JWT access tokens through the deny-list) is revoked under the grants'
// locks, and the remembered consent forgotten, so the next authorization
// asks again. One transaction; nothing to revoke is no error.
func (s *Store) RevokeApp(ctx context.Context, userID, clientID string, revokeUntil time.Time) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		// Every grant the user holds with the client, from every place that
		// names one: a JWT-only grant has no token rows left but is still
		// linked to the login session it was issued under.
		var ids []string
		err := s.db(ctx).Raw(`SELECT request_id FROM refresh_tokens WHERE subject = ? AND client_id = ?
UNION SELECT request_id FROM authorization_codes WHERE subject = ? AND client_id = ?
UNION SELECT request_id FROM access_tokens WHERE subject = ? AND client_id = ?
UNION SELECT g.request_id FROM login_session_grants g JOIN login_sessions ls ON ls.id = g.login_session_id
  WHERE ls.user_id = ? AND g.client_id = ?
ORDER BY 1`, userID, clientID, userID, clientID, userID, clientID, userID, clientID).Scan(&ids).Error
		if err != nil {
			return fmt.Errorf("find grants of application: %w", translate(err))
		}
		if len(ids) > 0 {
			if err := s.lockGrants(ctx, ids...); err != nil {
				return err
			}
			if err := s.revokeGrants(ctx, ids, revokeUntil); err != nil {
				return err
			}
		}
		if err := s.db(ctx).Where("user_id = ? AND client_id = ?", userID, clientID).Delete(&Consent{}).Error; err != nil {
			return fmt.Errorf("forget consent: %w", translate(err))
		}
		return nil
	})
}

// Purposes of an EmailToken.
const (
	EmailTokenReset  = "reset"
	EmailTokenVerify = "verify"
)

// EmailToken is a single-use link sent by e-mail. ID is the SHA-256 of the
// token in the link (secrets.SignatureKey); the token itself is never
// stored.
type EmailToken struct {
	ID        string     `gorm:"column:id;primaryKey"`
	UserID    string     `gorm:"column:user_id"`
	Purpose   string     `gorm:"column:purpose"`
	Email     string     `gorm:"column:email"`
	CreatedAt time.Time  `gorm:"column:created_at"`
	ExpiresAt time.Time  `gorm:"column:expires_at"`
	UsedAt    *time.Time `gorm:"column:used_at"`
}

// TableName tells GORM the table.
func (*EmailToken) TableName() string { return "email_tokens" }

// CreateEmailToken stores a link for token, unless the user already has
// limit links of that purpose made within per (a mail bomb through the
// forgot-password form stops there): then ErrLocked and nothing is stored.
func (s *Store) CreateEmailToken(ctx context.Context, token string, et *EmailToken, limit int, per time.Duration) error {
	now := s.nowUTC()
	return s.InTx(ctx, func(ctx context.Context) error {
		if s.dialect == DialectPostgres {
			// One user's links are counted one request at a time, so two
			// at once cannot both pass the limit.
			if err := s.db(ctx).Exec("SELECT pg_advisory_xact_lock(hashtext('email_tokens:' || ?))", et.UserID).Error; err != nil {
				return fmt.Errorf("lock email tokens: %w", translate(err))
			}
		}
		var n int64
		if err := s.db(ctx).Model(&EmailToken{}).Where("user_id = ? AND purpose = ? AND created_at > ?", et.UserID, et.Purpose, now.Add(-per)).
			Count(&n).Error; err != nil {
			return fmt.Errorf("count email tokens: %w", translate(err))
		}
		if n >= int64(limit) {
			return fmt.Errorf("create email token: %w", ErrLocked)
		}
		et.ID, et.CreatedAt, et.ExpiresAt, et.UsedAt = secrets.SignatureKey(token), now, et.ExpiresAt.UTC(), nil
		if err := s.db(ctx).Create(et).Error; err != nil {
			return fmt.Errorf("create email token: %w", translate(err))
		}
		return nil
	})
}

// RedeemEmailToken uses the link of token for purpose, once: one
// conditional UPDATE marks it used if it is unused and unexpired, so that
// of any number of redemptions at once exactly one wins. ErrNotFound for a
// link that is unknown, of another purpose, used or expired. Call it in the
// transaction that acts on the link, so that a failure leaves it unused.
func (s *Store) RedeemEmailToken(ctx context.Context, token, purpose string) (*EmailToken, error) {
	now := s.nowUTC()
	var rows []EmailToken
	err := s.db(ctx).Raw(`UPDATE email_tokens SET used_at = ?
WHERE id = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?
RETURNING id, user_id, purpose, email, created_at, expires_at, used_at`,
		now, secrets.SignatureKey(token), purpose, now).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("redeem email token: %w", translate(err))
	}
	if len(rows) != 1 {
		return nil, fmt.Errorf("redeem email token: %w", ErrNotFound)
	}
	return &rows[0], nil
}

// PeekEmailToken reports whether token is a live link of purpose (unused,
// unexpired) without using it: the page that asks for a new password
// refuses a dead link before the person types one.
func (s *Store) PeekEmailToken(ctx context.Context, token, purpose string) error {
	var n int64
	err := s.db(ctx).Model(&EmailToken{}).Where("id = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?",
		secrets.SignatureKey(token), purpose, s.nowUTC()).Count(&n).Error
	if err != nil {
		return fmt.Errorf("find email token: %w", translate(err))
	}
	if n == 0 {
		return fmt.Errorf("find email token: %w", ErrNotFound)
	}
	return nil
}

// MarkEmailVerified sets email_verified for userID if the user's address is
// still email (compared case-insensitively): a link proves only the address
// it was sent to. ErrNotFound when the address changed meanwhile.
func (s *Store) MarkEmailVerified(ctx context.Context, userID, email string) error {
	res := s.db(ctx).Model(&User{}).Where("id = ? AND LOWER(email) = LOWER(?) AND email <> ''", userID, email).
		Updates(map[string]any{"email_verified": true, "updated_at": s.nowUTC()})
	if res.Error != nil {
		return fmt.Errorf("mark email verified: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("mark email verified: %w", ErrNotFound)
	}
	return nil
}
