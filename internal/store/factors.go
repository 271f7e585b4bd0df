package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Second factors (issue 17): what a person enrolled besides their password.
// The store keeps rows; codes, secrets and policy are internal/login's.

// Factor kinds.
const (
	// FactorTOTP is an RFC 6238 authenticator app; a person has at most one.
	FactorTOTP = "totp"
	// FactorWebAuthn is a passkey (WebAuthn Level 2); a person may have
	// several.
	FactorWebAuthn = "webauthn"
)

// Factor is one enrolled second factor of a person.
type Factor struct {
	ID     string `gorm:"column:id;primaryKey" json:"id"`
	UserID string `gorm:"column:user_id" json:"-"`
	Kind   string `gorm:"column:kind" json:"kind"`
	// Secret is sealed by the caller (login seals TOTP secrets under a key
	// derived from LATCHKEY_SECRET); the store never sees it in clear.
	Secret []byte `gorm:"column:secret" json:"-"`
	// Counter is the last accepted TOTP time step (or, for a passkey, the
	// signature counter): AdvanceFactorCounter only moves it forward.
	Counter    int64      `gorm:"column:counter" json:"-"`
	CreatedAt  time.Time  `gorm:"column:created_at" json:"created_at"`
	LastUsedAt *time.Time `gorm:"column:last_used_at" json:"last_used_at"`

	// The passkey's credential record (kind FactorWebAuthn; empty for
	// TOTP). CredentialID is unique across people.
	CredentialID      []byte `gorm:"column:credential_id" json:"-"`
	PublicKey         []byte `gorm:"column:public_key" json:"-"`
	AAGUID            []byte `gorm:"column:aaguid" json:"-"`
	Transports        string `gorm:"column:transports" json:"-"`
	AttestationFormat string `gorm:"column:attestation_format" json:"-"`
	// BackupEligible says the passkey may be synced to other devices;
	// BackupState that it is (the authenticator's BE and BS flags).
	BackupEligible bool   `gorm:"column:backup_eligible" json:"backup_eligible,omitempty"`
	BackupState    bool   `gorm:"column:backup_state" json:"backup_state,omitempty"`
	Name           string `gorm:"column:name" json:"name,omitempty"`
}

// TableName tells GORM the table.
func (*Factor) TableName() string { return "user_factors" }

type recoveryCode struct {
	UserID    string    `gorm:"column:user_id;primaryKey"`
	CodeHash  string    `gorm:"column:code_hash;primaryKey"`
	CreatedAt time.Time `gorm:"column:created_at"`
}

func (*recoveryCode) TableName() string { return "recovery_codes" }

// EnrollFactor stores f, replacing the person's earlier factor of the same
// kind when that kind is one per person (TOTP), and, when recoveryHashes is
// not nil, replaces their recovery codes with these, in one transaction.
// A missing user is ErrMissingReference.
func (s *Store) EnrollFactor(ctx context.Context, f *Factor, recoveryHashes []string) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if f.Kind == FactorTOTP {
			if err := s.db(ctx).Where("user_id = ? AND kind = ?", f.UserID, f.Kind).Delete(&Factor{}).Error; err != nil {
				return fmt.Errorf("enrol factor: %w", translate(err))
			}
		}
		f.CreatedAt = s.nowUTC()
		if err := s.db(ctx).Create(f).Error; err != nil {
			return fmt.Errorf("enrol factor: %w", translate(err))
		}
		if recoveryHashes == nil {
			return nil
		}
		return s.ReplaceRecoveryCodes(ctx, f.UserID, recoveryHashes)
	})
}

// ListFactors returns a person's factors, oldest first; none is an empty
// list.
func (s *Store) ListFactors(ctx context.Context, userID string) ([]Factor, error) {
	fs := []Factor{}
	if err := s.db(ctx).Where("user_id = ?", userID).Order("created_at, id").Find(&fs).Error; err != nil {
		return nil, fmt.Errorf("list factors: %w", translate(err))
	}
	return fs, nil
}

// AdvanceFactorCounter records a use of factor id at counter: it succeeds
// only when counter is above the stored one, in one conditional UPDATE, so
// a TOTP code (its time step) is accepted once even when two instances
// check it at the same moment. A counter not above the stored one, or a
// factor that is gone, is ErrNotFound.
func (s *Store) AdvanceFactorCounter(ctx context.Context, id string, counter int64) error {
	res := s.db(ctx).Model(&Factor{}).Where("id = ? AND counter < ?", id, counter).
		Updates(map[string]any{"counter": counter, "last_used_at": s.nowUTC()})
	if res.Error != nil {
		return fmt.Errorf("use factor: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("use factor: %w", ErrNotFound)
	}
	return nil
}

// DeleteFactors removes a person's factors (only factorID when it is not
// empty) and, when none is left, their recovery codes, which are a way
// round factors that no longer exist. Removing a factor that is not the
// person's is ErrNotFound; removing all of none is not an error.
func (s *Store) DeleteFactors(ctx context.Context, userID, factorID string) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		q := s.db(ctx).Where("user_id = ?", userID)
		if factorID != "" {
			q = q.Where("id = ?", factorID)
		}
		res := q.Delete(&Factor{})
		if res.Error != nil {
			return fmt.Errorf("delete factors: %w", translate(res.Error))
		}
		if factorID != "" && res.RowsAffected == 0 {
			return fmt.Errorf("delete factor: %w", ErrNotFound)
		}
		var left int64
		if err := s.db(ctx).Model(&Factor{}).Where("user_id = ?", userID).Count(&left).Error; err != nil {
			return fmt.Errorf("delete factors: %w", translate(err))
		}
		if left == 0 {
			if err := s.db(ctx).Where("user_id = ?", userID).Delete(&recoveryCode{}).Error; err != nil {
				return fmt.Errorf("delete recovery codes: %w", translate(err))
			}
		}
		return nil
	})
}

// ReplaceRecoveryCodes makes hashes the person's only recovery codes.
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []string) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.db(ctx).Where("user_id = ?", userID).Delete(&recoveryCode{}).Error; err != nil {
			return fmt.Errorf("replace recovery codes: %w", translate(err))
		}
		if len(hashes) == 0 {
			return nil
		}
		now := s.nowUTC()
		rows := make([]recoveryCode, len(hashes))
		for i, h := range hashes {
			rows[i] = recoveryCode{UserID: userID, CodeHash: h, CreatedAt: now}
		}
		if err := s.db(ctx).Create(&rows).Error; err != nil {
			return fmt.Errorf("replace recovery codes: %w", translate(err))
		}
		return nil
	})
}

// ConsumeRecoveryCode uses up the person's recovery code of that hash: a
// conditional DELETE, so of two racing uses one wins. An unknown or used
// code is ErrNotFound.
func (s *Store) ConsumeRecoveryCode(ctx context.Context, userID, hash string) error {
	res := s.db(ctx).Where("user_id = ? AND code_hash = ?", userID, hash).Delete(&recoveryCode{})
	if res.Error != nil {
		return fmt.Errorf("use recovery code: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("use recovery code: %w", ErrNotFound)
	}
	return nil
}

// CountRecoveryCodes is how many unused recovery codes a person has.
func (s *Store) CountRecoveryCodes(ctx context.Context, userID string) (int, error) {
	var n int64
	if err := s.db(ctx).Model(&recoveryCode{}).Where("user_id = ?", userID).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count recovery codes: %w", translate(err))
	}
	return int(n), nil
}

// RaiseLoginSession records that the person of login session id has just
// given a second factor: amr becomes the methods now used, mfa_time now.
// A session that is gone is ErrNotFound.
func (s *Store) RaiseLoginSession(ctx context.Context, id string, amr []string) error {
	res := s.db(ctx).Model(&LoginSession{}).Where("id = ?", id).
		Updates(map[string]any{"amr": strings.Join(amr, " "), "mfa_time": s.nowUTC()})
	if res.Error != nil {
		return fmt.Errorf("raise login session: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("raise login session: %w", ErrNotFound)
	}
	return nil
}
