package store

import (
	"context"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/internal/secrets"
	"gorm.io/gorm/clause"
)

// SigningKey is a JWT signing key as stored. PrivateKey is sealed by the
// keys package; the store never sees a plaintext private key. An empty
// PrivateKey marks a retired, verify-only key.
type SigningKey struct {
	KID         string    `gorm:"column:kid;primaryKey"`
	Alg         string    `gorm:"column:alg"`
	PublicKey   string    `gorm:"column:public_key"`
	PrivateKey  []byte    `gorm:"column:private_key"`
	CreatedAt   time.Time `gorm:"column:created_at"`
	ActivatesAt time.Time `gorm:"column:activates_at"`
}

// TableName tells GORM the table.
func (*SigningKey) TableName() string { return "signing_keys" }

// ListSigningKeys returns every key, oldest activation first.
func (s *Store) ListSigningKeys(ctx context.Context) ([]SigningKey, error) {
	var ks []SigningKey
	if err := s.db(ctx).Order("activates_at, kid").Find(&ks).Error; err != nil {
		return nil, fmt.Errorf("list signing keys: %w", translate(err))
	}
	return ks, nil
}

// CreateSigningKey stores a new key.
func (s *Store) CreateSigningKey(ctx context.Context, k *SigningKey) error {
	k.CreatedAt, k.ActivatesAt = k.CreatedAt.UTC(), k.ActivatesAt.UTC()
	if err := s.db(ctx).Create(k).Error; err != nil {
		return fmt.Errorf("create signing key: %w", translate(err))
	}
	return nil
}

// EraseSigningKey deletes a key's sealed private half: a key that stopped
// signing only verifies, and an empty private_key says so.
func (s *Store) EraseSigningKey(ctx context.Context, kid string) error {
	if err := s.db(ctx).Model(&SigningKey{}).Where("kid = ?", kid).Update("private_key", []byte{}).Error; err != nil {
		return fmt.Errorf("erase signing key: %w", translate(err))
	}
	return nil
}

// DeleteSigningKey removes a key that no longer verifies any live token.
func (s *Store) DeleteSigningKey(ctx context.Context, kid string) error {
	if err := s.db(ctx).Where("kid = ?", kid).Delete(&SigningKey{}).Error; err != nil {
		return fmt.Errorf("delete signing key: %w", translate(err))
	}
	return nil
}

// signingKeyLock is the PostgreSQL advisory lock key that serialises key
// creation across instances ("latchkey" as an integer).
const signingKeyLock = 0x6c617463686b6579

// WithSigningKeyLock runs fn in a transaction that holds the key-management
// lock, so that of several instances deciding at once whether a key must be
// made, exactly one makes it. On PostgreSQL that is a transaction-scoped
// advisory lock; SQLite's BEGIN IMMEDIATE already admits one writer.
func (s *Store) WithSigningKeyLock(ctx context.Context, fn func(ctx context.Context) error) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if s.dialect == DialectPostgres {
			if err := s.db(ctx).Exec("SELECT pg_advisory_xact_lock(?)", int64(signingKeyLock)).Error; err != nil {
				return fmt.Errorf("take signing key lock: %w", translate(err))
			}
		}
		return fn(ctx)
	})
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
	if err := s.db(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&row).Error; err != nil {
		return fmt.Errorf("revoke jti: %w", translate(err))
	}
	return nil
}

// RevokeGrant records a grant as revoked until every access token issued
// under it has expired. Revoking again extends the record.
//
// It takes the grant's lock (grantlock.go) before it writes the row, as
// every revocation does: one order, lock then row, so that two revocations
// of one grant never wait on each other in a cycle.
func (s *Store) RevokeGrant(ctx context.Context, requestID string, until time.Time) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.lockGrants(ctx, requestID); err != nil {
			return err
		}
		row := revokedGrant{RequestID: requestID, ExpiresAt: until.UTC()}
		err := s.db(ctx).Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "request_id"}},
			DoUpdates: clause.AssignmentColumns([]string{"expires_at"}),
		}).Create(&row).Error
		if err != nil {
			return fmt.Errorf("revoke grant: %w", translate(err))
		}
		return nil
	})
}

// markGrantRevoked records a grant as revoked for the refresh path without
// touching an existing record: expires_at now, since it says nothing about
// access tokens (RevokeGrant does), and the refresh path ignores it anyway.
func (s *Store) markGrantRevoked(ctx context.Context, requestID string) error {
	row := revokedGrant{RequestID: requestID, ExpiresAt: s.nowUTC()}
	if err := s.db(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&row).Error; err != nil {
		return fmt.Errorf("revoke grant: %w", translate(err))
	}
	return nil
}

// IsRevoked reports whether a JWT was revoked: its jti, its grant, or
// everything its subject held when it was issued. One query: it runs on
// every introspection.
func (s *Store) IsRevoked(ctx context.Context, jti, requestID, subject string, issuedAt time.Time) (bool, error) {
	now := s.nowUTC()
	var revoked bool
	err := s.db(ctx).Raw(
		"SELECT EXISTS (SELECT 1 FROM revoked_jtis WHERE jti = ? AND expires_at > ?) "+
			"OR EXISTS (SELECT 1 FROM revoked_grants WHERE request_id = ? AND expires_at > ?) "+
			"OR EXISTS (SELECT 1 FROM revoked_subjects WHERE subject = ? AND revoked_at >= ?)",
		secrets.SignatureKey(jti), now, requestID, now, subject, issuedAt.UTC(),
	).Scan(&revoked).Error
	if err != nil {
		return false, fmt.Errorf("check revocation: %w", translate(err))
	}
	return revoked, nil
}
