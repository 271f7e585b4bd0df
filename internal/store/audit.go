package store

import (
	"context"
	"fmt"
	"time"
)

// AdminToken is a named admin API token. TokenHash is the hex SHA-256 of
// the token: the token itself is shown once and never stored.
type AdminToken struct {
	Name      string     `gorm:"column:name;primaryKey"`
	TokenHash string     `gorm:"column:token_hash"`
	CreatedAt time.Time  `gorm:"column:created_at"`
	RotatedAt *time.Time `gorm:"column:rotated_at"`
	ExpiresAt *time.Time `gorm:"column:expires_at"`
}

// TableName tells GORM the table.
func (*AdminToken) TableName() string { return "admin_tokens" }

// CreateAdminToken stores a new named token; ErrAlreadyExists when the name
// (or, vanishingly unlikely, the hash) is taken.
func (s *Store) CreateAdminToken(ctx context.Context, t *AdminToken) error {
	t.CreatedAt = s.nowUTC()
	if err := s.db(ctx).Create(t).Error; err != nil {
		return fmt.Errorf("create admin token: %w", translate(err))
	}
	return nil
}

// FindAdminTokenByHash returns the token whose hash is tokenHash, expired
// or not (the caller decides), or ErrNotFound. One query on the unique
// index: the admin guard runs it on every request.
func (s *Store) FindAdminTokenByHash(ctx context.Context, tokenHash string) (*AdminToken, error) {
	var t AdminToken
	if err := s.db(ctx).Where("token_hash = ?", tokenHash).Take(&t).Error; err != nil {
		return nil, fmt.Errorf("find admin token: %w", translate(err))
	}
	return &t, nil
}

// FindAdminToken returns the named token, or ErrNotFound.
func (s *Store) FindAdminToken(ctx context.Context, name string) (*AdminToken, error) {
	var t AdminToken
	if err := s.db(ctx).Where("name = ?", name).Take(&t).Error; err != nil {
		return nil, fmt.Errorf("find admin token: %w", translate(err))
	}
	return &t, nil
}

// ListAdminTokens returns every named token, by name.
func (s *Store) ListAdminTokens(ctx context.Context) ([]*AdminToken, error) {
	var out []*AdminToken
	if err := s.db(ctx).Order("name").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list admin tokens: %w", translate(err))
	}
	return out, nil
}

// RotateAdminToken replaces the named token's hash (and expiry), so the
// old token stops working at once; ErrNotFound if there is no such token.
func (s *Store) RotateAdminToken(ctx context.Context, name, tokenHash string, expiresAt *time.Time) error {
	res := s.db(ctx).Model(&AdminToken{}).Where("name = ?", name).
		Updates(map[string]any{"token_hash": tokenHash, "rotated_at": s.nowUTC(), "expires_at": expiresAt})
	if res.Error != nil {
		return fmt.Errorf("rotate admin token: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("rotate admin token: %w", ErrNotFound)
	}
	return nil
}

// DeleteAdminToken revokes the named token; ErrNotFound if there is none.
func (s *Store) DeleteAdminToken(ctx context.Context, name string) error {
	res := s.db(ctx).Where("name = ?", name).Delete(&AdminToken{})
	if res.Error != nil {
		return fmt.Errorf("delete admin token: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("delete admin token: %w", ErrNotFound)
	}
	return nil
}

// AuditEntry is one admin change. Before and After are JSON documents of
// the target without secrets (nil for a creation's before, a deletion's
// after); the admin service builds them.
type AuditEntry struct {
	ID         int64     `gorm:"column:id;primaryKey;autoIncrement" json:"id"`
	At         time.Time `gorm:"column:at" json:"at"`
	Actor      string    `gorm:"column:actor" json:"actor"`
	Action     string    `gorm:"column:action" json:"action"`
	TargetType string    `gorm:"column:target_type" json:"target_type"`
	TargetID   string    `gorm:"column:target_id" json:"target_id"`
	RequestID  string    `gorm:"column:request_id" json:"request_id,omitempty"`
	Before     *string   `gorm:"column:before" json:"-"`
	After      *string   `gorm:"column:after" json:"-"`
}

// TableName tells GORM the table.
func (*AuditEntry) TableName() string { return "audit_log" }

// AppendAudit writes e, dated now, in the context's transaction when it
// carries one: the entry commits or rolls back with the change it records.
func (s *Store) AppendAudit(ctx context.Context, e *AuditEntry) error {
	e.ID = 0
	e.At = s.nowUTC()
	if err := s.db(ctx).Create(e).Error; err != nil {
		return fmt.Errorf("append audit entry: %w", translate(err))
	}
	return nil
}

// AuditFilter selects audit entries. Zero fields select everything.
type AuditFilter struct {
	// Since keeps entries at or after it.
	Since time.Time
	Actor string
	// TargetType and TargetID (the latter only with the former) name the
	// target.
	TargetType string
	TargetID   string
	// Before is the cursor: entries with a smaller id (older) only.
	Before int64
	// Limit bounds the answer (at least 1).
	Limit int
}

// ListAudit returns entries matching f, newest first.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]*AuditEntry, error) {
	q := s.db(ctx).Model(&AuditEntry{})
	if !f.Since.IsZero() {
		q = q.Where("at >= ?", f.Since.UTC())
	}
	if f.Actor != "" {
		q = q.Where("actor = ?", f.Actor)
	}
	if f.TargetType != "" {
		q = q.Where("target_type = ?", f.TargetType)
		if f.TargetID != "" {
			q = q.Where("target_id = ?", f.TargetID)
		}
	}
	if f.Before > 0 {
		q = q.Where("id < ?", f.Before)
	}
	var out []*AuditEntry
	if err := q.Order("id DESC").Limit(max(f.Limit, 1)).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list audit entries: %w", translate(err))
	}
	return out, nil
}
