package oauth

import (
	"context"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
)

// clockedHMAC is fosite's HMAC strategy with the expiry of opaque access
// tokens, refresh tokens and authorization codes decided on the server's
// clock. fosite compares them with time.Now, which cannot be injected; its
// check still runs after ours, and with the production clock it is the
// same check. A test clock that runs ahead of the wall clock (never behind
// it) therefore decides alone.
type clockedHMAC struct {
	*oauth2.HMACSHAStrategy
	now func() time.Time
}

var _ oauth2.CoreStrategy = clockedHMAC{}

func (s clockedHMAC) ValidateAccessToken(ctx context.Context, r fosite.Requester, token string) error {
	if exp, ok := s.expired(r, fosite.AccessToken); ok {
		return fosite.ErrTokenExpired.WithHintf("Access token expired at '%s'.", exp)
	}
	return s.HMACSHAStrategy.ValidateAccessToken(ctx, r, token)
}

func (s clockedHMAC) ValidateRefreshToken(ctx context.Context, r fosite.Requester, token string) error {
	if exp, ok := s.expired(r, fosite.RefreshToken); ok {
		return fosite.ErrTokenExpired.WithHintf("Refresh token expired at '%s'.", exp)
	}
	return s.HMACSHAStrategy.ValidateRefreshToken(ctx, r, token)
}

func (s clockedHMAC) ValidateAuthorizeCode(ctx context.Context, r fosite.Requester, token string) error {
	if exp, ok := s.expired(r, fosite.AuthorizeCode); ok {
		return fosite.ErrTokenExpired.WithHintf("Authorize code expired at '%s'.", exp)
	}
	return s.HMACSHAStrategy.ValidateAuthorizeCode(ctx, r, token)
}

// expired returns the session's expiry of kind and whether it has passed;
// the hints above are fosite's own. A zero expiry is left to fosite, which
// then counts from the request time.
func (s clockedHMAC) expired(r fosite.Requester, kind fosite.TokenType) (time.Time, bool) {
	exp := r.GetSession().GetExpiresAt(kind)
	return exp, !exp.IsZero() && exp.Before(s.now().UTC())
}
