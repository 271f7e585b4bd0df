package store

import (
	"context"
	"fmt"
	"time"

	"github.com/ory/fosite"
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

// PutScope creates or replaces a scope's description and reports whether
// it was created; sc is updated to the row as stored. An insert that does
// nothing on conflict, then an update: concurrent PUTs all succeed, the
// last one wins, without a transaction to serialize.
func (s *Store) PutScope(ctx context.Context, sc *Scope) (created bool, err error) {
	now := s.nowUTC()
	sc.CreatedAt, sc.UpdatedAt = now, now
	for range 3 {
		res := s.db(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(sc)
		if res.Error != nil {
			return false, fmt.Errorf("put scope: %w", translate(res.Error))
		}
		if res.RowsAffected == 1 {
			return true, nil
		}
		res = s.db(ctx).Model(&Scope{}).Where("name = ?", sc.Name).
			Updates(map[string]any{"description": sc.Description, "updated_at": now})
		if res.Error != nil {
			return false, fmt.Errorf("put scope: %w", translate(res.Error))
		}
		if res.RowsAffected == 1 {
			got, err := s.FindScope(ctx, sc.Name)
			if err != nil {
				return false, err
			}
			*sc = *got
			return false, nil
		}
		// Deleted between the two statements: insert again.
	}
	return false, fmt.Errorf("put scope %q: %w", sc.Name, fosite.ErrSerializationFailure)
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
