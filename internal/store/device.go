package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Device codes of the device authorization grant (RFC 8628): what a device
// polls the token endpoint with while a person approves it on /device.

// DeviceStatus is where a device code is in its life.
type DeviceStatus string

const (
	// DevicePending: waiting for a person to type the user code.
	DevicePending DeviceStatus = "pending"
	// DeviceApproved: a person allowed it; the token endpoint may redeem it once.
	DeviceApproved DeviceStatus = "approved"
	// DeviceDenied: a person refused it.
	DeviceDenied DeviceStatus = "denied"
	// DeviceUsed: redeemed for tokens.
	DeviceUsed DeviceStatus = "used"
	// DeviceRevoked: approved, then the login session that approved it
	// ended or its user was revoked before it was redeemed.
	DeviceRevoked DeviceStatus = "revoked"
)

// DeviceCode is one device authorization request.
type DeviceCode struct {
	// Signature is the HMAC of the device_code, UserCode the HMAC of the
	// normalised user code: neither code is stored.
	Signature string `gorm:"column:signature;primaryKey"`
	UserCode  string `gorm:"column:user_code"`
	// RequestID is the grant's ID, kept by every token issued from it.
	RequestID string       `gorm:"column:request_id"`
	ClientID  string       `gorm:"column:client_id"`
	Scopes    []string     `gorm:"column:scopes;serializer:json"`
	Audience  []string     `gorm:"column:audience;serializer:json"`
	Status    DeviceStatus `gorm:"column:status"`
	// Interval is the least number of seconds between two polls; each
	// slow_down grows it.
	Interval int `gorm:"column:interval_seconds"`
	// Set on approval: who approved, under which login session, and the
	// grant's session as JSON (grantsession.Session).
	UserID         *string   `gorm:"column:user_id"`
	LoginSessionID *string   `gorm:"column:login_session_id"`
	SessionData    *string   `gorm:"column:session_data"`
	RequestedAt    time.Time `gorm:"column:requested_at"`
	ExpiresAt      time.Time `gorm:"column:expires_at"`
}

// TableName tells GORM the table.
func (*DeviceCode) TableName() string { return "device_codes" }

// DeviceApproval is what the verification page records when a person
// allows a device code.
type DeviceApproval struct {
	UserID, LoginSessionID string
	// SessionData is the grant's session as JSON.
	SessionData string
}

// CreateDeviceCode stores a new pending device code. A user code that a
// live row already has is ErrAlreadyExists (the caller draws another); an
// expired row holding it is deleted first, so the janitor's pace never
// makes a code unusable. A missing client is ErrMissingReference.
func (s *Store) CreateDeviceCode(ctx context.Context, dc *DeviceCode) error {
	row := *dc
	row.Status = DevicePending
	row.RequestedAt, row.ExpiresAt = row.RequestedAt.UTC(), row.ExpiresAt.UTC()
	if row.RequestedAt.IsZero() {
		row.RequestedAt = s.nowUTC()
	}
	row.Scopes, row.Audience = nonNil(row.Scopes), nonNil(row.Audience)
	err := s.db(ctx).Create(&row).Error
	if err == nil {
		return nil
	}
	if err = translate(err); !errors.Is(err, ErrAlreadyExists) {
		return fmt.Errorf("store device code: %w", err)
	}
	res := s.db(ctx).Where("user_code = ? AND expires_at <= ?", row.UserCode, s.nowUTC()).Delete(&DeviceCode{})
	if res.Error != nil {
		return fmt.Errorf("delete expired device code: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("store device code: %w", err)
	}
	if err := s.db(ctx).Create(&row).Error; err != nil {
		return fmt.Errorf("store device code: %w", translate(err))
	}
	return nil
}

// GetDeviceCode returns the device code of a signature, whatever its
// status or expiry: one read by primary key, the whole cost of a poll.
func (s *Store) GetDeviceCode(ctx context.Context, signature string) (*DeviceCode, error) {
	var dc DeviceCode
	if err := s.db(ctx).Where("signature = ?", signature).Take(&dc).Error; err != nil {
		return nil, fmt.Errorf("find device code: %w", translate(err))
	}
	return &dc, nil
}

// FindPendingDeviceCode returns the live pending device code of a user
// code, or ErrNotFound: a code that is unknown, expired, or already
// approved or denied is no code at all to the person typing it.
func (s *Store) FindPendingDeviceCode(ctx context.Context, userCode string) (*DeviceCode, error) {
	var dc DeviceCode
	err := s.db(ctx).Where("user_code = ? AND status = ? AND expires_at > ?", userCode, DevicePending, s.nowUTC()).Take(&dc).Error
	if err != nil {
		return nil, fmt.Errorf("find device code by user code: %w", translate(err))
	}
	return &dc, nil
}

// ApproveDeviceCode records a person's approval of the pending device code
// signature and ties its grant to their login session, in one transaction:
// logout revokes it like any grant of the session, redeemed or not. It is
// conditional, so a code is decided once; a code no longer pending and
// live is ErrNotFound.
func (s *Store) ApproveDeviceCode(ctx context.Context, signature string, a DeviceApproval) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		dc, err := s.decideDevice(ctx, signature, "status = ?, user_id = ?, login_session_id = ?, session_data = ?",
			DeviceApproved, a.UserID, a.LoginSessionID, a.SessionData)
		if err != nil {
			return err
		}
		return s.linkGrant(ctx, a.LoginSessionID, dc.RequestID, dc.ClientID)
	})
}

// DenyDeviceCode records a person's refusal of the pending device code
// signature; ErrNotFound as for ApproveDeviceCode.
func (s *Store) DenyDeviceCode(ctx context.Context, signature string) error {
	_, err := s.decideDevice(ctx, signature, "status = ?", DeviceDenied)
	return err
}

// decideDevice moves a live pending device code on, in one conditional
// statement: of two decisions racing, one wins.
func (s *Store) decideDevice(ctx context.Context, signature, set string, args ...any) (*DeviceCode, error) {
	var got []DeviceCode
	args = append(args, signature, DevicePending, s.nowUTC())
	err := s.db(ctx).Raw(`UPDATE device_codes SET `+set+` WHERE signature = ? AND status = ? AND expires_at > ?
RETURNING signature, request_id, client_id`, args...).Scan(&got).Error
	if err != nil {
		return nil, fmt.Errorf("decide device code: %w", translate(err))
	}
	if len(got) == 0 {
		return nil, fmt.Errorf("decide device code: %w", ErrNotFound)
	}
	return &got[0], nil
}

// SlowDownDeviceCode raises the device code's interval to seconds (RFC
// 8628 §3.5 slow_down), never lowering it: every instance enforces it from
// then on.
func (s *Store) SlowDownDeviceCode(ctx context.Context, signature string, seconds int) error {
	err := s.db(ctx).Model(&DeviceCode{}).Where("signature = ? AND interval_seconds < ?", signature, seconds).
		Update("interval_seconds", seconds).Error
	if err != nil {
		return fmt.Errorf("slow down device code: %w", translate(err))
	}
	return nil
}

// ClaimDeviceCode marks the approved, live device code of clientID used,
// under its grant's lock (grantlock.go): a logout or revocation of the
// grant either finishes first, and the code is no longer approved, or
// waits until the tokens issued from it exist and revokes them too. The
// caller's transaction should also hold the token rows it creates. It is a
// conditional update: of two redemptions racing on any instances exactly
// one wins, the other gets ErrNotFound.
func (s *Store) ClaimDeviceCode(ctx context.Context, dc *DeviceCode) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.lockGrants(ctx, dc.RequestID); err != nil {
			return err
		}
		res := s.db(ctx).Model(&DeviceCode{}).
			Where("signature = ? AND client_id = ? AND status = ? AND expires_at > ?", dc.Signature, dc.ClientID, DeviceApproved, s.nowUTC()).
			Update("status", DeviceUsed)
		if res.Error != nil {
			return fmt.Errorf("claim device code: %w", translate(res.Error))
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("claim device code: %w", ErrNotFound)
		}
		return nil
	})
}

// revokeDeviceCodes ends the approved, unredeemed device codes matching
// where: their grant is revoked before it has a token.
func (s *Store) revokeDeviceCodes(ctx context.Context, query string, args ...any) error {
	err := s.db(ctx).Model(&DeviceCode{}).Where(query, args...).Where("status = ?", DeviceApproved).
		Update("status", DeviceRevoked).Error
	if err != nil {
		return fmt.Errorf("revoke device codes: %w", translate(err))
	}
	return nil
}
