package store

import (
	"context"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/ory/fosite"
	"gorm.io/gorm"
)

// RefreshRecord is a refresh token row with what rotation needs to know.
type RefreshRecord struct {
	Request fosite.Requester
	Active  bool
	// RotatedAt is set once the token was exchanged for a successor; an
	// inactive token without it was revoked.
	RotatedAt *time.Time
	// Successor is the successor token, sealed under a key derived from
	// this token (nil for strict rotation).
	Successor []byte
	GraceUses int
}

type refreshState struct {
	Request   requestRow `gorm:"embedded"`
	RotatedAt *time.Time `gorm:"column:rotated_at"`
	Successor []byte     `gorm:"column:successor"`
	GraceUses int        `gorm:"column:grace_uses"`
}

// FindRefreshToken loads a refresh token whatever its state, in one read.
func (s *Store) FindRefreshToken(ctx context.Context, signature string, prototype fosite.Session) (*RefreshRecord, error) {
	var row refreshState
	if err := s.db(ctx).Table(tableRefresh).Where("signature = ?", secrets.SignatureKey(signature)).Take(&row).Error; err != nil {
		return nil, fmt.Errorf("find refresh token: %w", translate(err))
	}
	req, err := s.toRequest(ctx, &row.Request, prototype)
	if err != nil {
		return nil, err
	}
	return &RefreshRecord{Request: req, Active: row.Request.Active, RotatedAt: row.RotatedAt, Successor: row.Successor, GraceUses: row.GraceUses}, nil
}

// ClaimGraceUse counts one repeat of a rotated token, refusing past max.
func (s *Store) ClaimGraceUse(ctx context.Context, signature string, max int) (bool, error) {
	res := s.db(ctx).Table(tableRefresh).
		Where("signature = ? AND active = ? AND rotated_at IS NOT NULL AND grace_uses < ?", secrets.SignatureKey(signature), false, max).
		Update("grace_uses", gorm.Expr("grace_uses + 1"))
	if res.Error != nil {
		return false, fmt.Errorf("claim grace use: %w", translate(res.Error))
	}
	return res.RowsAffected == 1, nil
}

// SecurityEvent is an audit record.
type SecurityEvent struct {
	ID        string    `gorm:"column:id;primaryKey" json:"id"`
	Kind      string    `gorm:"column:kind" json:"kind"`
	ClientID  string    `gorm:"column:client_id" json:"client_id"`
	Subject   string    `gorm:"column:subject" json:"subject"`
	RequestID string    `gorm:"column:request_id" json:"request_id"`
	IP        string    `gorm:"column:ip" json:"ip"`
	CreatedAt time.Time `gorm:"column:created_at" json:"created_at"`
}

// TableName tells GORM the table.
func (*SecurityEvent) TableName() string { return "security_events" }

// RecordSecurityEvent appends an audit record.
func (s *Store) RecordSecurityEvent(ctx context.Context, ev *SecurityEvent) error {
	if ev.ID == "" {
		id, err := secrets.RandomToken(16)
		if err != nil {
			return err
		}
		ev.ID = id
	}
	ev.CreatedAt = s.nowUTC()
	if err := s.db(ctx).Create(ev).Error; err != nil {
		return fmt.Errorf("record security event: %w", translate(err))
	}
	return nil
}
