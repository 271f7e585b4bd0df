package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm/clause"
)

// Scope is a custom scope's description, shown on the consent page.
type Scope struct {
	Name        string    `gorm:"primaryKey;column:name"`
	Description string    `gorm:"column:description"`
	CreatedAt   time.Time `gorm:"column:created_at"`
	UpdatedAt   time.Time `gorm:"column:updated_at"`
}

// TableName tells GORM the table.
func (*Scope) TableName() string { return "scopes" }

// PutScope creates or replaces a scope's description in one statement (two
// concurrent PUTs both succeed, the last one wins), and reports whether it
// was created. sc is updated to the row as stored.
func (s *Store) PutScope(ctx context.Context, sc *Scope) (created bool, err error) {
	now := s.nowUTC()
	sc.CreatedAt, sc.UpdatedAt = now, now
	err = s.InTx(ctx, func(ctx context.Context) error {
		var n int64
		if err := s.db(ctx).Model(&Scope{}).Where("name = ?", sc.Name).Count(&n).Error; err != nil {
			return err
		}
		created = n == 0
		return s.db(ctx).Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "name"}},
			DoUpdates: clause.AssignmentColumns([]string{"description", "updated_at"}),
		}).Create(sc).Error
	})
	if err != nil {
		return false, fmt.Errorf("put scope: %w", translate(err))
	}
	if !created {
		if got, err := s.FindScope(ctx, sc.Name); err == nil {
			*sc = *got
		}
	}
	return created, nil
}

// FindScope returns a scope's description, or ErrNotFound.
func (s *Store) FindScope(ctx context.Context, name string) (*Scope, error) {
	var sc Scope
	err := s.db(ctx).Where("name = ?", name).Take(&sc).Error
	if err != nil {
		return nil, fmt.Errorf("find scope: %w", translate(err))
	}
	return &sc, nil
}

// ListScopes returns every described scope, by name.
func (s *Store) ListScopes(ctx context.Context) ([]*Scope, error) {
	var out []*Scope
	if err := s.db(ctx).Order("name").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list scopes: %w", translate(err))
	}
	return out, nil
}

// DeleteScope removes a scope's description; ErrNotFound if it has none.
func (s *Store) DeleteScope(ctx context.Context, name string) error {
	res := s.db(ctx).Where("name = ?", name).Delete(&Scope{})
	if res.Error != nil {
		return fmt.Errorf("delete scope: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("delete scope: %w", ErrNotFound)
	}
	return nil
}

// ScopeDescriptions returns the description of each of names that has
// one, in one query.
func (s *Store) ScopeDescriptions(ctx context.Context, names []string) (map[string]string, error) {
	out := map[string]string{}
	if len(names) == 0 {
		return out, nil
	}
	var rows []Scope
	if err := s.db(ctx).Where("name IN ?", names).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("scope descriptions: %w", translate(err))
	}
	for _, r := range rows {
		out[r.Name] = r.Description
	}
	return out, nil
}
