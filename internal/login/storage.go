package login

import (
	"context"
	"time"

	"github.com/latchkey/latchkey/internal/store"
)

// The interfaces below are what this package needs of persistence, each
// declared where it is used; *store.Store satisfies all of them (asserted
// in internal/server). Errors are the store's sentinels (store.ErrNotFound,
// store.ErrLocked, store.ErrUnavailable), tested with errors.Is.

// AttemptStore counts sign-in attempts for the Throttle (throttle.go).
type AttemptStore interface {
	// ReserveLoginAttempt counts one attempt against every key atomically
	// and returns the counts, or store.ErrLocked while a key is locked.
	ReserveLoginAttempt(ctx context.Context, window time.Duration, keys ...store.AttemptKey) ([]int, error)
	// ReleaseLoginAttempt takes back an attempt that was not a failure.
	ReleaseLoginAttempt(ctx context.Context, key string, limit int) error
	// ClearLoginFailures forgets a key's failures after a success.
	ClearLoginFailures(ctx context.Context, key string) error
}

// UserStore finds the account a sign-in names, for the Authenticator
// (authenticate.go).
type UserStore interface {
	FindUserByName(ctx context.Context, username string) (*store.User, error)
	// FindUsersByEmail returns up to limit users with that email, compared
	// case-insensitively; none is an empty list.
	FindUsersByEmail(ctx context.Context, email string, limit int) ([]*store.User, error)
}

// SessionStore keeps browser login sessions (login.go).
type SessionStore interface {
	CreateLoginSession(ctx context.Context, cookie string, ls *store.LoginSession) error
	// ReplaceLoginSession ends oldID and creates ls in one transaction.
	ReplaceLoginSession(ctx context.Context, oldID, cookie string, ls *store.LoginSession) error
	// TouchLoginSession returns a live session and records its use.
	TouchLoginSession(ctx context.Context, cookie string, idle time.Duration) (*store.LoginSession, error)
	// EndLoginSession ends a session and revokes the grants issued under it.
	EndLoginSession(ctx context.Context, sessionID string, revokeUntil time.Time) error
}

// ScopeStore has the descriptions of custom scopes (admin API).
type ScopeStore interface {
	// ScopeDescriptions returns the registered description of each of
	// names that has one.
	ScopeDescriptions(ctx context.Context, names []string) (map[string]string, error)
}

// Store is everything the pages need: the Handler's sessions, the user
// they show, and what its Authenticator and Throttle need. Clients are the
// OAuth side's business (the end-session endpoint checks logout addresses).
type Store interface {
	AttemptStore
	UserStore
	SessionStore
	FactorStore
	PasskeyStore
	ScopeStore
	FindUser(ctx context.Context, id string) (*store.User, error)
}

// FactorStore keeps second factors and recovery codes (mfa.go).
type FactorStore interface {
	ListFactors(ctx context.Context, userID string) ([]store.Factor, error)
	// EnrollFactor stores a factor (replacing a TOTP one) and, unless
	// recoveryHashes is nil, the person's new recovery codes.
	EnrollFactor(ctx context.Context, f *store.Factor, recoveryHashes []string) error
	// AdvanceFactorCounter records a use at counter, once: a counter not
	// above the last one is store.ErrNotFound.
	AdvanceFactorCounter(ctx context.Context, id string, counter int64) error
	ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []string) error
	// ConsumeRecoveryCode uses a code up, once; else store.ErrNotFound.
	ConsumeRecoveryCode(ctx context.Context, userID, hash string) error
	CountRecoveryCodes(ctx context.Context, userID string) (int, error)
	// RaiseLoginSession records a second factor on a login session.
	RaiseLoginSession(ctx context.Context, id string, amr []string) error
}
