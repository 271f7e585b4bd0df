package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm/clause"
)

// User is a person who logs in. PasswordHash is argon2id in PHC format, so
// each hash carries the parameters it was made with.
type User struct {
	ID           string    `gorm:"column:id;primaryKey" json:"id"`
	Username     string    `gorm:"column:username" json:"username"`
	PasswordHash string    `gorm:"column:password_hash" json:"-"`
	CreatedAt    time.Time `gorm:"column:created_at" json:"created_at"`
	UpdatedAt    time.Time `gorm:"column:updated_at" json:"updated_at"`

	// The profile: OpenID Connect standard claims (Core 1.0 §5.1), empty
	// when the user has none. The admin service validates them; the store
	// keeps what it is given.
	Email         string   `gorm:"column:email" json:"email"`
	EmailVerified bool     `gorm:"column:email_verified" json:"email_verified"`
	Name          string   `gorm:"column:name" json:"name"`
	GivenName     string   `gorm:"column:given_name" json:"given_name"`
	FamilyName    string   `gorm:"column:family_name" json:"family_name"`
	Picture       string   `gorm:"column:picture" json:"picture"`
	Locale        string   `gorm:"column:locale" json:"locale"`
	Groups        []string `gorm:"column:groups;serializer:json" json:"groups"`
}

// TableName tells GORM the table.
func (*User) TableName() string { return "users" }

// CreateUser stores a user. ErrAlreadyExists if the username is taken.
func (s *Store) CreateUser(ctx context.Context, u *User) error {
	u.Groups = nonNil(u.Groups)
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

// FindUsersByEmail loads up to limit users whose email is email, compared
// case-insensitively (lower() on both sides: every letter on PostgreSQL,
// ASCII letters on SQLite). Email is not unique, so the caller decides what
// several matches mean; none is an empty list, not ErrNotFound. The
// users_email_lower index serves the lookup.
func (s *Store) FindUsersByEmail(ctx context.Context, email string, limit int) ([]*User, error) {
	if email == "" || !lookupable(email) {
		return nil, nil
	}
	var us []*User
	if err := s.db(ctx).Where("lower(email) = lower(?)", email).Order("id").Limit(limit).Find(&us).Error; err != nil {
		return nil, fmt.Errorf("find users by email: %w", translate(err))
	}
	return us, nil
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

// UpdateUser changes a user under a row lock, the way UpdateClient changes
// a client: it reads the current row (FOR UPDATE on PostgreSQL; SQLite's
// BEGIN IMMEDIATE already admits one writer), lets update change it, and
// saves every column except the ID and the creation time, in one
// transaction; once UpdateUser returns nil, the *User update was given is
// what was saved, updated_at included. Two admin PATCHes of different
// fields at once therefore both land. An error from update aborts and is returned as is;
// ErrNotFound if there is no such user, ErrAlreadyExists if update
// renamed the user to a taken username.
func (s *Store) UpdateUser(ctx context.Context, id string, update func(*User) error) error {
	if !lookupable(id) {
		return fmt.Errorf("update user: %w", ErrNotFound)
	}
	return s.InTx(ctx, func(ctx context.Context) error {
		var u User
		q := s.db(ctx).Where("id = ?", id)
		if s.dialect == DialectPostgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.Take(&u).Error; err != nil {
			return fmt.Errorf("update user: %w", translate(err))
		}
		created := u.CreatedAt
		if err := update(&u); err != nil {
			return err
		}
		u.ID, u.CreatedAt, u.UpdatedAt, u.Groups = id, created, s.nowUTC(), nonNil(u.Groups)
		// Select("*") writes zero values too (false, empty), so a field
		// cleared by update is cleared in the row. UpdateColumns, not
		// Updates: GORM would stamp updated_at with its own clock, and the
		// caller is promised the row as saved.
		res := s.db(ctx).Model(&User{}).Where("id = ?", id).Select("*").Omit("id", "created_at").UpdateColumns(&u)
		if res.Error != nil {
			return fmt.Errorf("update user: %w", translate(res.Error))
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("update user: %w", ErrNotFound)
		}
		return nil
	})
}
