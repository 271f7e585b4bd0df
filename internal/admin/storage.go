package admin

import (
	"context"
	"time"

	"github.com/latchkey/latchkey/internal/store"
)

// The admin service's needs of persistence, declared here and satisfied by
// *store.Store (asserted in internal/server). Errors are the store's
// sentinels (store.ErrNotFound, store.ErrConflict…), tested with errors.Is.

// ClientStore keeps registered clients (clients.go).
type ClientStore interface {
	CreateClient(ctx context.Context, c *store.Client) error
	FindClient(ctx context.Context, id string) (*store.Client, error)
	ListClients(ctx context.Context) ([]*store.Client, error)
	// UpdateClient runs update on the current row under a lock and saves
	// it, so that concurrent updates do not overwrite each other.
	UpdateClient(ctx context.Context, id string, update func(*store.Client) error) error
	DeleteClient(ctx context.Context, id string) error
}

// UserStore keeps accounts (users.go).
type UserStore interface {
	CreateUser(ctx context.Context, u *store.User) error
	FindUser(ctx context.Context, id string) (*store.User, error)
	ListUsers(ctx context.Context) ([]*store.User, error)
	// UpdateUser runs update on the current row under a lock and saves
	// it, so that concurrent PATCHes do not overwrite each other.
	UpdateUser(ctx context.Context, id string, update func(*store.User) error) error
	// DeleteUser removes the account and revokes its grants until
	// revokeUntil.
	DeleteUser(ctx context.Context, id string, revokeUntil time.Time) error
	SetPasswordHash(ctx context.Context, id, hash string) error
	// RevokeSubject revokes every grant of a user.
	RevokeSubject(ctx context.Context, subject string, until time.Time) error
	// InTx runs fn in one transaction carried in its context.
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
}

// Store is everything the Service needs.
type Store interface {
	ClientStore
	UserStore
	ScopeStore
	FactorStore
	AdminTokenStore
	AuditStore
}

// FactorStore lists and removes a person's second factors (factors.go).
type FactorStore interface {
	ListFactors(ctx context.Context, userID string) ([]store.Factor, error)
	CountRecoveryCodes(ctx context.Context, userID string) (int, error)
	// DeleteFactors removes factorID, or every factor when it is empty,
	// and the recovery codes once none is left.
	DeleteFactors(ctx context.Context, userID, factorID string) error
}
