package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/latchkey/latchkey/internal/secrets"
	"gorm.io/gorm/clause"
)

// ListUsers returns every user ordered by username.
func (s *Store) ListUsers(ctx context.Context) ([]*User, error) {
	var us []*User
	if err := s.db(ctx).Order("username").Find(&us).Error; err != nil {
		return nil, fmt.Errorf("list users: %w", translate(err))
	}
	return us, nil
}

// DeleteUser removes a user, their login sessions and consents (foreign
// keys), and revokes every grant they hold.
func (s *Store) DeleteUser(ctx context.Context, id string, revokeUntil time.Time) error {
	if !lookupable(id) {
		return fmt.Errorf("delete user: %w", ErrNotFound)
	}
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.RevokeSubject(ctx, id, revokeUntil); err != nil {
			return err
		}
		res := s.db(ctx).Where("id = ?", id).Delete(&User{})
		if res.Error != nil {
			return fmt.Errorf("delete user: %w", translate(res.Error))
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("delete user: %w", ErrNotFound)
		}
		return nil
	})
}

// SetPasswordHash replaces a user's password hash.
func (s *Store) SetPasswordHash(ctx context.Context, id, hash string) error {
	if !lookupable(id) {
		return fmt.Errorf("set password: %w", ErrNotFound)
	}
	res := s.db(ctx).Model(&User{}).Where("id = ?", id).Updates(map[string]any{"password_hash": hash, "updated_at": s.nowUTC()})
	if res.Error != nil {
		return fmt.Errorf("set password: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("set password: %w", ErrNotFound)
	}
	return nil
}

// LoginSession is a browser's signed-in state. ID is the SHA-256 of the
// cookie value.
type LoginSession struct {
	ID         string    `gorm:"column:id;primaryKey"`
	UserID     string    `gorm:"column:user_id"`
	AuthTime   time.Time `gorm:"column:auth_time"`
	LastSeenAt time.Time `gorm:"column:last_seen_at"`
	ExpiresAt  time.Time `gorm:"column:expires_at"`
	// SID is the session's public identifier, the "sid" claim of ID and
	// logout tokens. CreateLoginSession draws one when it is empty;
	// ReplaceLoginSession keeps the old session's.
	SID string `gorm:"column:sid"`
	// AMR is how the person authenticated, RFC 8176 values separated by
	// spaces ("pwd", or "pwd otp mfa" after a second factor); MFATime is
	// when they last gave a second factor.
	AMR     string     `gorm:"column:amr"`
	MFATime *time.Time `gorm:"column:mfa_time"`
	// CreatedAt is when the session began (CreateLoginSession sets it
	// when zero); UserAgent and Address what it was begun from, shown on
	// the account page so that its person can tell sessions apart.
	CreatedAt time.Time `gorm:"column:created_at"`
	UserAgent string    `gorm:"column:user_agent"`
	Address   string    `gorm:"column:address"`
}

// TableName tells GORM the table.
func (*LoginSession) TableName() string { return "login_sessions" }

// CreateLoginSession stores a session for the cookie value cookie.
func (s *Store) CreateLoginSession(ctx context.Context, cookie string, ls *LoginSession) error {
	ls.ID = secrets.SignatureKey(cookie)
	if ls.SID == "" {
		sid, err := secrets.RandomToken(16)
		if err != nil {
			return fmt.Errorf("create login session: %w", err)
		}
		ls.SID = sid
	}
	if ls.CreatedAt.IsZero() {
		ls.CreatedAt = s.nowUTC()
	}
	ls.AuthTime, ls.LastSeenAt, ls.ExpiresAt, ls.CreatedAt = ls.AuthTime.UTC(), ls.LastSeenAt.UTC(), ls.ExpiresAt.UTC(), ls.CreatedAt.UTC()
	if ls.AMR == "" {
		ls.AMR = "pwd"
	}
	if ls.MFATime != nil {
		t := ls.MFATime.UTC()
		ls.MFATime = &t
	}
	if err := s.db(ctx).Create(ls).Error; err != nil {
		return fmt.Errorf("create login session: %w", translate(err))
	}
	return nil
}

// ReplaceLoginSession signs a browser in again: a new session (a new
// cookie, against fixation) takes over the grants of the old one, so that
// logging out later still revokes them. The takeover moves the
// login_session_grants rows; the token rows keep the id they were written
// with (a rotated refresh token copies it from its session), which is why
// logout never looks there.
func (s *Store) ReplaceLoginSession(ctx context.Context, oldID, cookie string, ls *LoginSession) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		// The same person's session goes on under a new cookie: relying
		// parties keep the sid they were given.
		var sids []string
		if err := s.db(ctx).Model(&LoginSession{}).Where("id = ?", oldID).Pluck("sid", &sids).Error; err != nil {
			return fmt.Errorf("read old login session: %w", translate(err))
		}
		if len(sids) == 1 && sids[0] != "" {
			ls.SID = sids[0]
		}
		if err := s.CreateLoginSession(ctx, cookie, ls); err != nil {
			return err
		}
		// Insert-then-delete rather than UPDATE: the new session may
		// already hold one of the grants (no conflict on the key).
		if err := s.db(ctx).Exec(`INSERT INTO login_session_grants (login_session_id, request_id, client_id, created_at)
SELECT ?, request_id, client_id, created_at FROM login_session_grants WHERE login_session_id = ?
ON CONFLICT (login_session_id, request_id) DO NOTHING`, ls.ID, oldID).Error; err != nil {
			return fmt.Errorf("move grants to the new login session: %w", translate(err))
		}
		if err := s.db(ctx).Where("login_session_id = ?", oldID).Delete(&loginSessionGrant{}).Error; err != nil {
			return fmt.Errorf("move grants to the new login session: %w", translate(err))
		}
		if err := s.db(ctx).Where("id = ?", oldID).Delete(&LoginSession{}).Error; err != nil {
			return fmt.Errorf("delete old login session: %w", translate(err))
		}
		return nil
	})
}

// loginSessionGrant says that a grant (a fosite request ID) was issued
// under a browser login session.
type loginSessionGrant struct {
	LoginSessionID string    `gorm:"column:login_session_id;primaryKey"`
	RequestID      string    `gorm:"column:request_id;primaryKey"`
	ClientID       string    `gorm:"column:client_id"`
	CreatedAt      time.Time `gorm:"column:created_at"`
}

func (loginSessionGrant) TableName() string { return "login_session_grants" }

// linkGrant records that a grant belongs to a login session; again is a
// no-op.
func (s *Store) linkGrant(ctx context.Context, sessionID, requestID, clientID string) error {
	row := loginSessionGrant{LoginSessionID: sessionID, RequestID: requestID, ClientID: clientID, CreatedAt: s.nowUTC()}
	if err := s.db(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&row).Error; err != nil {
		return fmt.Errorf("link grant to login session: %w", translate(err))
	}
	return nil
}

// TouchLoginSession returns the live session for a cookie value: not past
// its absolute expiry, and seen within idle. It writes: the sighting moves
// last_seen_at (at most once a minute), which is why it is not a Find.
func (s *Store) TouchLoginSession(ctx context.Context, cookie string, idle time.Duration) (*LoginSession, error) {
	now := s.nowUTC()
	var ls LoginSession
	err := s.db(ctx).Where("id = ? AND expires_at > ? AND last_seen_at > ?", secrets.SignatureKey(cookie), now, now.Add(-idle)).
		Take(&ls).Error
	if err != nil {
		return nil, fmt.Errorf("find login session: %w", translate(err))
	}
	// Touch at most once a minute: a page view should not always write.
	if now.Sub(ls.LastSeenAt) > time.Minute {
		if err := s.db(ctx).Model(&LoginSession{}).Where("id = ?", ls.ID).Update("last_seen_at", now).Error; err != nil {
			return nil, fmt.Errorf("touch login session: %w", translate(err))
		}
		ls.LastSeenAt = now
	}
	return &ls, nil
}

// Consent is what a user agreed a client may have.
type Consent struct {
	UserID    string    `gorm:"column:user_id;primaryKey"`
	ClientID  string    `gorm:"column:client_id;primaryKey"`
	Scopes    []string  `gorm:"column:scopes;serializer:json"`
	UpdatedAt time.Time `gorm:"column:updated_at"`
}

// TableName tells GORM the table.
func (*Consent) TableName() string { return "consents" }

// AddConsent records that a user granted a client these scopes, on top of
// what they granted before. Two consents given at once (two tabs) both
// count: it is an UpdateConsent.
func (s *Store) AddConsent(ctx context.Context, userID, clientID string, scopes []string) error {
	return s.UpdateConsent(ctx, userID, clientID, func(c *Consent) error {
		all := append(slices.Clone(c.Scopes), scopes...)
		slices.Sort(all)
		c.Scopes = slices.Compact(all)
		return nil
	})
}

// UpdateConsent changes what a user granted a client under a row lock, the
// way UpdateClient changes a client: update sees the committed consent (no
// scopes when there was none) and what it leaves is saved, in one
// transaction, so concurrent updates apply one after the other and none is
// lost. Under READ COMMITTED a read followed by an upsert would let the
// second writer overwrite the first's scopes with its own. An error from
// update aborts and is returned as is; ErrMissingReference if the user or
// the client does not exist.
func (s *Store) UpdateConsent(ctx context.Context, userID, clientID string, update func(*Consent) error) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		// The row must exist to be locked: insert an empty one if there is
		// none. A concurrent insert makes this wait for its commit, and
		// the locking read below then sees it. On rollback it vanishes.
		empty := Consent{UserID: userID, ClientID: clientID, Scopes: []string{}, UpdatedAt: s.nowUTC()}
		if err := s.db(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&empty).Error; err != nil {
			return fmt.Errorf("save consent: %w", translate(err))
		}
		var c Consent
		q := s.db(ctx).Where("user_id = ? AND client_id = ?", userID, clientID)
		if s.dialect == DialectPostgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.Take(&c).Error; err != nil {
			return fmt.Errorf("save consent: %w", translate(err))
		}
		if err := update(&c); err != nil {
			return err
		}
		c.UserID, c.ClientID, c.Scopes, c.UpdatedAt = userID, clientID, nonNil(c.Scopes), s.nowUTC()
		// A struct, not a map, so that the scopes go through their JSON
		// serializer.
		if err := s.db(ctx).Model(&Consent{}).Where("user_id = ? AND client_id = ?", userID, clientID).
			Select("scopes", "updated_at").Updates(&c).Error; err != nil {
			return fmt.Errorf("save consent: %w", translate(err))
		}
		return nil
	})
}

// LoginFailure is the failed-login record of one key ("user:NAME" or
// "ip:ADDR").
type LoginFailure struct {
	Key         string     `gorm:"column:key;primaryKey"`
	Failures    int        `gorm:"column:failures"`
	WindowStart time.Time  `gorm:"column:window_start"`
	LockedUntil *time.Time `gorm:"column:locked_until"`
}

// TableName tells GORM the table.
func (*LoginFailure) TableName() string { return "login_failures" }

// ErrLocked means a login attempt was refused, uncounted, because one of
// its keys is locked out.
var ErrLocked = errors.New("login attempts locked out")

// AttemptKey is one counter a login attempt is charged to, and the lockout
// it earns: Lock(attempts) is how long the key locks once that many
// attempts are counted in the window (0: no lock).
type AttemptKey struct {
	Key  string
	Lock func(attempts int) time.Duration
}

// ReserveLoginAttempt counts one attempt against every key before the
// password is checked, all of them or none: if any key is locked out now,
// nothing is counted and the answer is ErrLocked. It returns the count of
// each key, this attempt included.
//
// Each key is one conditional upsert, so concurrent attempts on any
// instance serialize on the row: of 30 parallel guesses at a limit of 5,
// five are counted and the rest refused, where a read before the check and a
// write after it would have let all 30 through. The attempt that reaches the
// limit sets the lock in the same transaction, so the next one is refused
// even while this one is still being checked. Keys are taken in the order
// given; callers always pass the username before the IP, so two
// transactions never wait on each other in a cycle.
//
// Call it outside any transaction that a wrong password rolls back: the
// count must outlive the failed request it counts.
func (s *Store) ReserveLoginAttempt(ctx context.Context, window time.Duration, keys ...AttemptKey) ([]int, error) {
	now := s.nowUTC()
	counts := make([]int, len(keys))
	err := s.InTx(ctx, func(ctx context.Context) error {
		for i, k := range keys {
			var got []int
			// A lock that has expired lets one more attempt through (the
			// one that may earn a longer lock); outside the window the
			// count starts over, but a lock still running holds.
			err := s.db(ctx).Raw(`INSERT INTO login_failures (key, failures, window_start) VALUES (?, 1, ?)
ON CONFLICT (key) DO UPDATE SET
  failures = CASE WHEN login_failures.window_start <= ? THEN 1 ELSE login_failures.failures + 1 END,
  window_start = CASE WHEN login_failures.window_start <= ? THEN excluded.window_start ELSE login_failures.window_start END
WHERE login_failures.locked_until IS NULL OR login_failures.locked_until <= ?
RETURNING failures`, k.Key, now, now.Add(-window), now.Add(-window), now).Scan(&got).Error
			if err != nil {
				return fmt.Errorf("reserve login attempt: %w", translate(err))
			}
			if len(got) == 0 {
				return ErrLocked
			}
			counts[i] = got[0]
			if d := k.Lock(got[0]); d > 0 {
				if err := s.db(ctx).Model(&LoginFailure{}).Where("key = ?", k.Key).Update("locked_until", now.Add(d)).Error; err != nil {
					return fmt.Errorf("lock login: %w", translate(err))
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return counts, nil
}

// ReleaseLoginAttempt takes back one attempt ReserveLoginAttempt counted
// against key, for an attempt that turned out not to be a wrong password
// (the right one, counted against an IP; or no check at all). Below limit
// again, the lock that attempt set is lifted.
func (s *Store) ReleaseLoginAttempt(ctx context.Context, key string, limit int) error {
	err := s.db(ctx).Exec(`UPDATE login_failures SET
  locked_until = CASE WHEN failures - 1 < ? THEN NULL ELSE locked_until END,
  failures = failures - 1
WHERE key = ? AND failures > 0`, limit, key).Error
	if err != nil {
		return fmt.Errorf("release login attempt: %w", translate(err))
	}
	return nil
}

// ClearLoginFailures forgets the failures of key (after a good login).
func (s *Store) ClearLoginFailures(ctx context.Context, key string) error {
	if err := s.db(ctx).Where("key = ?", key).Delete(&LoginFailure{}).Error; err != nil {
		return fmt.Errorf("clear login failures: %w", translate(err))
	}
	return nil
}
