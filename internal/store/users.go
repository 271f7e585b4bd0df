package store

import (
	"context"
	"fmt"
	"time"
)

// User is a person who logs in. PasswordHash is argon2id in PHC format, so
// each hash carries the parameters it was made with.
type User struct {
	ID           string    `gorm:"column:id;primaryKey" json:"id"`
	Username     string    `gorm:"column:username" json:"username"`
	PasswordHash string    `gorm:"column:password_hash" json:"-"`
	CreatedAt    time.Time `gorm:"column:created_at" json:"created_at"`
	UpdatedAt    time.Time `gorm:"column:updated_at" json:"updated_at"`
}

// TableName tells GORM the table.
func (*User) TableName() string { return "users" }

// CreateUser stores a user. ErrAlreadyExists if the username is taken.
func (s *Store) CreateUser(ctx context.Context, u *User) error {
	now := s.nowUTC()
	u.CreatedAt, u.UpdatedAt = now, now
	if err := s.db(ctx).Create(u).Error; err != nil {
		return fmt.Errorf("create user: %w", translate(err))
	}
	return nil
}

// FindUserByName loads a user by username. ErrNotFound if there is none.
// The store only returns the hash: verifying a password, the stand-in hash
// for unknown users and the bound on argon2id work are policy, and live in
// internal/login (Authenticator).
func (s *Store) FindUserByName(ctx context.Context, username string) (*User, error) {
	if !lookupable(username) {
		return nil, fmt.Errorf("find user: %w", ErrNotFound)
	}
	var u User
	if err := s.db(ctx).Where("username = ?", username).Take(&u).Error; err != nil {
		return nil, fmt.Errorf("find user: %w", translate(err))
	}
	return &u, nil
}

// FindUser loads a user by ID. ErrNotFound if there is none.
func (s *Store) FindUser(ctx context.Context, id string) (*User, error) {
	if !lookupable(id) {
		return nil, fmt.Errorf("find user: %w", ErrNotFound)
	}
	var u User
	if err := s.db(ctx).Where("id = ?", id).Take(&u).Error; err != nil {
		return nil, fmt.Errorf("find user: %w", translate(err))
	}
	return &u, nil
}
