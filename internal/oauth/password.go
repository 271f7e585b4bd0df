package oauth

import (
	"context"
	"errors"
	"net/http"

	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
)

// ipKey carries the client's IP from the HTTP handler to the password
// grant's throttle.
type ipKey struct{}

func (p *Provider) withClientIP(ctx context.Context, r *http.Request) context.Context {
	return context.WithValue(ctx, ipKey{}, p.clientIP(r))
}

// throttledPasswords checks the password grant's credentials with the
// login pages' Authenticator: the same throttle (counted before the check,
// so parallel guesses cannot overrun it) and the same bounded argon2id work.
type throttledPasswords struct {
	grantStorage
	auth    *login.Authenticator
	factors FactorStore
}

var _ oauth2.ResourceOwnerPasswordCredentialsGrantStorage = throttledPasswords{}

// Authenticate answers a locked-out username or IP as it answers a wrong
// password (fosite turns ErrNotFound into invalid_grant, RFC 6749 §5.2), so
// a lockout tells a guesser nothing. ErrBusy passes through to writeError,
// which answers 503 temporarily_unavailable.
//
// The person may have typed an email: the session records the account's
// username (introspection's "username"), read from the request fosite
// keeps in the context.
func (s throttledPasswords) Authenticate(ctx context.Context, username, password string) (string, error) {
	ip, _ := ctx.Value(ipKey{}).(string)
	u, err := s.auth.AuthenticateUser(ctx, username, password, ip)
	if errors.Is(err, store.ErrLocked) {
		return "", fosite.ErrNotFound.WithHint("locked")
	}
	if err != nil {
		return "", err
	}
	// A person who enrolled a second factor cannot be signed in by the
	// password alone: the grant has no step to ask for the factor.
	fs, err := s.factors.ListFactors(ctx, u.ID)
	if err != nil {
		return "", err
	}
	if len(fs) > 0 {
		// invalid_grant, as fosite answers ErrNotFound.
		return "", fosite.ErrNotFound.WithHint("second factor required")
	}
	if ar, ok := ctx.Value(fosite.AccessRequestContextKey).(fosite.AccessRequester); ok {
		if sess, ok := ar.GetSession().(*grantsession.Session); ok {
			sess.Username = u.Username
		}
	}
	return u.ID, nil
}

// writeBusy answers a password grant that could not be checked for load:
// RFC 6749 §5.2 JSON temporarily_unavailable with 503 and Retry-After, as for
// a database outage. Nothing was counted against the username.
func (p *Provider) writeBusy(w http.ResponseWriter, r *http.Request, endpoint string) string {
	p.log.WarnContext(r.Context(), "too many password checks", "endpoint", endpoint)
	p.metrics.OAuthErrors.WithLabelValues(endpoint, fosite.ErrTemporarilyUnavailable.ErrorField).Inc()
	w.Header().Set("Retry-After", login.BusyRetryAfter)
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{
		"error":             fosite.ErrTemporarilyUnavailable.ErrorField,
		"error_description": "Too many sign-ins are in progress. Retry shortly.",
	})
	return fosite.ErrTemporarilyUnavailable.ErrorField
}
