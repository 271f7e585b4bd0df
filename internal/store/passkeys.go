package store

import (
	"context"
	"fmt"
	"time"
)

// Passkeys (issue 17): a passkey is a Factor of kind FactorWebAuthn; these
// are the methods only passkeys need. Verifying assertions is
// internal/login's (go-webauthn); the store keeps the credential record,
// its signature counter and the challenges between a ceremony's two
// requests.

// FindFactorByCredentialID returns the passkey whose WebAuthn credential
// id is credentialID: how a discoverable sign-in, which names no user,
// finds its person. None is ErrNotFound.
func (s *Store) FindFactorByCredentialID(ctx context.Context, credentialID []byte) (*Factor, error) {
	var f Factor
	// kind as a literal: the unique index is partial on it, and the
	// planner uses it only when the query says the same.
	err := s.db(ctx).Where("credential_id = ? AND kind = '"+FactorWebAuthn+"'", credentialID).Take(&f).Error
	if err != nil {
		return nil, fmt.Errorf("find passkey: %w", translate(err))
	}
	return &f, nil
}

// UsePasskey records a verified assertion of passkey id: its signature
// counter becomes signCount and its backup state backupState, in one
// conditional UPDATE. WebAuthn §6.1.1: when either counter is non-zero the
// new one must be above the stored one (below or equal is a sign of a
// cloned authenticator); an authenticator that keeps no counter sends 0
// every time, which stays allowed while the stored one is 0. A counter
// that does not move forward so, or a passkey that is gone, is ErrNotFound:
// of two racing uses of one assertion, one wins.
func (s *Store) UsePasskey(ctx context.Context, id string, signCount uint32, backupState bool) error {
	q := s.db(ctx).Model(&Factor{}).Where("id = ? AND kind = ?", id, FactorWebAuthn)
	if signCount == 0 {
		q = q.Where("counter = 0")
	} else {
		q = q.Where("counter < ?", int64(signCount))
	}
	res := q.Updates(map[string]any{"counter": int64(signCount), "backup_state": backupState, "last_used_at": s.nowUTC()})
	if res.Error != nil {
		return fmt.Errorf("use passkey: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("use passkey: %w", ErrNotFound)
	}
	return nil
}

// WebAuthnChallenge is the server's half of a WebAuthn ceremony, kept
// between the options a page fetches and the credential it posts back.
type WebAuthnChallenge struct {
	// ID is a digest of the random value in the browser's cookie: the
	// challenge is bound to that browser.
	ID string `gorm:"column:id;primaryKey"`
	// Purpose says which ceremony (sign-in, second factor, enrolment): a
	// challenge of one cannot finish another.
	Purpose string `gorm:"column:purpose"`
	// UserID is the person the ceremony is for, or "" for a discoverable
	// sign-in.
	UserID    string    `gorm:"column:user_id"`
	Data      string    `gorm:"column:data"`
	ExpiresAt time.Time `gorm:"column:expires_at"`
}

// TableName tells GORM the table.
func (*WebAuthnChallenge) TableName() string { return "webauthn_challenges" }

// SaveWebAuthnChallenge stores c, replacing a challenge of the same id (a
// page that asked twice keeps only the newest), and forgets expired ones.
func (s *Store) SaveWebAuthnChallenge(ctx context.Context, c *WebAuthnChallenge) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.db(ctx).Where("expires_at <= ? OR id = ?", s.nowUTC(), c.ID).Delete(&WebAuthnChallenge{}).Error; err != nil {
			return fmt.Errorf("save webauthn challenge: %w", translate(err))
		}
		c.ExpiresAt = c.ExpiresAt.UTC()
		if err := s.db(ctx).Create(c).Error; err != nil {
			return fmt.Errorf("save webauthn challenge: %w", translate(err))
		}
		return nil
	})
}

// TakeWebAuthnChallenge returns the challenge of id and deletes it: a
// challenge answers one credential, once, on any instance (the DELETE
// decides between two racing takes). Unknown, taken or expired is
// ErrNotFound.
func (s *Store) TakeWebAuthnChallenge(ctx context.Context, id string) (*WebAuthnChallenge, error) {
	var c WebAuthnChallenge
	err := s.InTx(ctx, func(ctx context.Context) error {
		if err := s.db(ctx).Where("id = ?", id).Take(&c).Error; err != nil {
			return translate(err)
		}
		res := s.db(ctx).Where("id = ?", id).Delete(&WebAuthnChallenge{})
		if res.Error != nil {
			return translate(res.Error)
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("take webauthn challenge: %w", err)
	}
	if !s.nowUTC().Before(c.ExpiresAt) {
		return nil, fmt.Errorf("take webauthn challenge: expired: %w", ErrNotFound)
	}
	return &c, nil
}
