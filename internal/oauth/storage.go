package oauth

import (
	"context"
	"time"

	"github.com/latchkey/latchkey/internal/dpop"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"
	"github.com/ory/fosite/storage"

	"github.com/latchkey/latchkey/internal/store"
)

// The interfaces below are what this package needs of persistence, each
// declared next to the code that uses it; *store.Store satisfies all of
// them (asserted in internal/server). fosite's own storage interfaces are
// embedded as they are. Errors are the store's sentinels (store.ErrNotFound,
// store.ErrUnavailable) or fosite's, tested with errors.Is.

// ConsentStore keeps what a user has allowed a client (authorize.go).
type ConsentStore interface {
	FindConsent(ctx context.Context, userID, clientID string) (*store.Consent, error)
	// AddConsent adds scopes to a consent under a row lock.
	AddConsent(ctx context.Context, userID, clientID string, scopes []string) error
}

// RefreshStore is what the refresh grant needs beyond fosite's storage
// (refresh.go): rotation once per token, the grace period's bookkeeping,
// reuse handling.
type RefreshStore interface {
	FindRefreshToken(ctx context.Context, signature string, prototype fosite.Session) (*store.RefreshRecord, error)
	// RotateRefreshTokenOnce rotates a token unless another request did.
	RotateRefreshTokenOnce(ctx context.Context, rot store.Rotation) error
	// ClaimGraceUse counts one use of a rotated token in its grace period,
	// false past max.
	ClaimGraceUse(ctx context.Context, signature string, max int) (bool, error)
	RefreshTokenLive(ctx context.Context, signature string, grantedAt time.Time) (bool, error)
	CreateGraceAccessToken(ctx context.Context, successorSignature, accessSignature string, r fosite.Requester, grantedAt time.Time) error
	// RevokeLiveGrant revokes a grant and reports whether it was live, so
	// that a reuse is recorded once per grant.
	RevokeLiveGrant(ctx context.Context, requestID string, until time.Time) (changed bool, err error)
	RecordSecurityEvent(ctx context.Context, ev *store.SecurityEvent) error
}

// JWTStore is what the JWT access-token handlers need (jwt.go): the
// deny-lists that stand in for rows a JWT does not have.
type JWTStore interface {
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
	// RevokeGrant revokes every token of a grant.
	RevokeGrant(ctx context.Context, requestID string, until time.Time) error
	// DenyGrantJWTs puts a grant's JWTs on the deny-list until until.
	DenyGrantJWTs(ctx context.Context, requestID string, until time.Time) error
	RevokeJTI(ctx context.Context, jti string, until time.Time) error
	IsRevoked(ctx context.Context, jti, requestID, subject string, issuedAt time.Time) (bool, error)
	FindClient(ctx context.Context, id string) (*store.Client, error)
}

// Store is everything the provider needs: fosite's storage for its
// handlers, and ours for the endpoints, the refresh grant and JWTs. The
// password grant's Authenticate is not asked of the store: the grant checks
// passwords with login.Authenticator (password.go).
type Store interface {
	fosite.Storage
	oauth2.CoreStorage
	oauth2.TokenRevocationStorage
	pkce.PKCERequestStorage
	storage.Transactional
	ConsentStore
	RefreshStore
	JWTStore
	PushedStore
	ExchangeStore
	DeviceStore
	FindUser(ctx context.Context, id string) (*store.User, error)
	FactorStore
	dpop.Replay
}

// FactorStore tells whether a person has second factors: the password
// grant, which can ask for none, refuses them (no bypass of a factor).
type FactorStore interface {
	ListFactors(ctx context.Context, userID string) ([]store.Factor, error)
}
