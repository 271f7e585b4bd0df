package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/ory/fosite"
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

// Authenticate implements fosite's password-grant storage method with no
// throttle. It returns the user's stable ID, or fosite.ErrNotFound for an
// unknown user and for a wrong password alike. The server never calls it:
// the login pages and the password grant go through login.Authenticator,
// which counts the attempt first and bounds the argon2id work.
func (s *Store) Authenticate(ctx context.Context, username, password string) (string, error) {
	u, err := s.FindUserByName(ctx, username)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return "", err
	}
	// An unknown user is checked against a stand-in hash so that it costs
	// the same time as a wrong password and the two cannot be told apart.
	hash, err := s.dummyHash()
	if err != nil {
		return "", err
	}
	if u != nil {
		hash = u.PasswordHash
	}
	// argon2id takes 19 MiB per check: bound how many run at once, or a
	// burst of sign-ins becomes a memory exhaustion attack. More than one
	// per core would not be faster anyway.
	select {
	case s.passwordChecks <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	ok, verr := secrets.VerifyPassword(hash, password)
	<-s.passwordChecks
	if verr != nil {
		return "", fmt.Errorf("verify password: %w", verr)
	}
	if u == nil || !ok {
		return "", fmt.Errorf("authenticate: %w", fosite.ErrNotFound)
	}
	return u.ID, nil
}
