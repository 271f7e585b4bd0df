package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
)

// UserInfo is a user as the admin API and the CLI show it: never the hash.
type UserInfo struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Profile
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

func userInfo(u *store.User) *UserInfo {
	return &UserInfo{
		ID: u.ID, Username: u.Username, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt,
		Profile: Profile{
			Email: u.Email, EmailVerified: u.EmailVerified, Name: u.Name, GivenName: u.GivenName,
			FamilyName: u.FamilyName, Picture: u.Picture, Locale: u.Locale, Groups: slices.Clone(u.Groups),
		},
	}
}

// setProfile copies a checked profile onto the row.
func setProfile(u *store.User, p Profile) {
	u.Email, u.EmailVerified, u.Name, u.GivenName, u.FamilyName = p.Email, p.EmailVerified, p.Name, p.GivenName, p.FamilyName
	u.Picture, u.Locale, u.Groups = p.Picture, p.Locale, p.Groups
}

// InputError is a user request that breaks a rule; the API answers 400.
type InputError struct{ Description string }

func (e *InputError) Error() string { return e.Description }

// ErrUsernameTaken is returned for a duplicate username; the API answers 409.
var ErrUsernameTaken = errors.New("username is taken")

// Password bounds: NIST SP 800-63B asks for at least 8 characters and
// allowing at least 64; the upper bound keeps argon2id's input sane.
const (
	minPasswordLen = 8
	maxPasswordLen = 1024
)

func checkUsername(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 128 {
		return "", &InputError{"username must be 1 to 128 characters"}
	}
	for _, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar {
			return "", &InputError{"username must not contain spaces or control characters"}
		}
	}
	return name, nil
}

func checkPassword(password string) error {
	if len(password) < minPasswordLen || len(password) > maxPasswordLen {
		return &InputError{fmt.Sprintf("password must be %d to %d bytes", minPasswordLen, maxPasswordLen)}
	}
	return nil
}

// revokeUntil is how long revocation records must outlive a revocation:
// the longest an access token issued before it may live.
func (s *Service) revokeUntil() time.Time {
	return s.policy.Now().Add(s.policy.RevokeFor)
}

// CreateUser makes a user with an argon2id password hash and no profile.
func (s *Service) CreateUser(ctx context.Context, username, password string) (*UserInfo, error) {
	return s.CreateUserWithProfile(ctx, username, password, Profile{})
}

// CreateUserWithProfile makes a user with an argon2id password hash and the
// given profile, every field checked first: nothing is stored when one is
// refused.
func (s *Service) CreateUserWithProfile(ctx context.Context, username, password string, p Profile) (*UserInfo, error) {
	name, err := checkUsername(username)
	if err != nil {
		return nil, err
	}
	if err := checkPassword(password); err != nil {
		return nil, err
	}
	p, err = p.check()
	if err != nil {
		return nil, err
	}
	hash, err := secrets.HashPassword(password, secrets.DefaultArgon2Params)
	if err != nil {
		return nil, err
	}
	id, err := secrets.NewID()
	if err != nil {
		return nil, err
	}
	u := &store.User{ID: id, Username: name, PasswordHash: hash}
	setProfile(u, p)
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		if err := s.store.CreateUser(ctx, u); err != nil {
			return err
		}
		return s.record(ctx, ActionUserCreate, TargetUser, u.ID, nil, userInfo(u))
	})
	if err != nil {
		if errors.Is(err, store.ErrAlreadyExists) {
			return nil, ErrUsernameTaken
		}
		return nil, err
	}
	return userInfo(u), nil
}

// GetUser returns one user. store.ErrNotFound if there is none.
func (s *Service) GetUser(ctx context.Context, id string) (*UserInfo, error) {
	u, err := s.store.FindUser(ctx, id)
	if err != nil {
		return nil, err
	}
	return userInfo(u), nil
}

// UpdateUser applies a partial update under the user's row lock, so two
// PATCHes of different fields at once both land. The result is checked as
// a whole (email_verified without an email is refused however it came
// about); a refused patch changes nothing.
func (s *Service) UpdateUser(ctx context.Context, id string, patch *UserPatch) (*UserInfo, error) {
	var (
		saved  *store.User
		before *UserInfo
	)
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		if err := s.store.UpdateUser(ctx, id, func(u *store.User) error {
			saved, before = u, userInfo(u)
			return patch.update(u)
		}); err != nil {
			return err
		}
		return s.record(ctx, ActionUserUpdate, TargetUser, id, before, userInfo(saved))
	})
	if err != nil {
		if errors.Is(err, store.ErrAlreadyExists) {
			return nil, ErrUsernameTaken
		}
		return nil, err
	}
	return userInfo(saved), nil
}

// update applies the patch to u, checking the result as a whole.
func (patch *UserPatch) update(u *store.User) error {
	cur := userInfo(u)
	if err := patch.applyTo(&cur.Username, &cur.Profile); err != nil {
		return err
	}
	p, err := cur.Profile.check()
	if err != nil {
		return err
	}
	u.Username = cur.Username
	setProfile(u, p)
	return nil
}

// ListUsers returns every user.
func (s *Service) ListUsers(ctx context.Context) ([]UserInfo, error) {
	us, err := s.store.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]UserInfo, 0, len(us))
	for _, u := range us {
		out = append(out, *userInfo(u))
	}
	return out, nil
}

// DeleteUser removes a user and revokes everything they hold.
func (s *Service) DeleteUser(ctx context.Context, id string) error {
	return s.store.InTx(ctx, func(ctx context.Context) error {
		u, err := s.store.FindUser(ctx, id)
		if err != nil {
			return err
		}
		if err := s.store.DeleteUser(ctx, id, s.revokeUntil()); err != nil {
			return err
		}
		return s.record(ctx, ActionUserDelete, TargetUser, id, userInfo(u), nil)
	})
}

// SetPassword replaces a user's password and, as a changed password must,
// signs them out everywhere: every grant and login session is revoked.
func (s *Service) SetPassword(ctx context.Context, id, password string) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	hash, err := secrets.HashPassword(password, secrets.DefaultArgon2Params)
	if err != nil {
		return err
	}
	return s.store.InTx(ctx, func(ctx context.Context) error {
		if err := s.store.SetPasswordHash(ctx, id, hash); err != nil {
			return err
		}
		if err := s.store.RevokeSubject(ctx, id, s.revokeUntil()); err != nil {
			return err
		}
		// The entry says that the password changed; neither it nor its
		// hash is in the user's view.
		return s.recordUser(ctx, ActionUserSetPassword, id)
	})
}

// RevokeUserTokens revokes every grant and login session of a user.
func (s *Service) RevokeUserTokens(ctx context.Context, id string) error {
	return s.store.InTx(ctx, func(ctx context.Context) error {
		if _, err := s.store.FindUser(ctx, id); err != nil {
			return err
		}
		if err := s.store.RevokeSubject(ctx, id, s.revokeUntil()); err != nil {
			return err
		}
		return s.recordUser(ctx, ActionUserRevokeTokens, id)
	})
}

// recordUser records an action on a user that changes nothing of their
// view, with the view as it is as after.
func (s *Service) recordUser(ctx context.Context, action, id string) error {
	u, err := s.store.FindUser(ctx, id)
	if err != nil {
		return err
	}
	return s.record(ctx, action, TargetUser, id, nil, userInfo(u))
}
