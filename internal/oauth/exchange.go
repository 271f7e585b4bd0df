package oauth

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
)

// Token exchange (RFC 8693) identifiers.
const (
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	// TokenTypeAccessToken is the only token type exchanged and issued: a
	// Latchkey access token, JWT or opaque (RFC 8693 §3).
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
)

// ExchangeStore is what token exchange needs beyond fosite's storage.
type ExchangeStore interface {
	// CreateExchangedAccessToken stores an opaque access token issued into
	// the subject token's grant, only while that grant is live.
	CreateExchangedAccessToken(ctx context.Context, subjectSignature, accessSignature string, r fosite.Requester) error
}

// introspector is fosite's introspection as the exchange uses it: the same
// handlers that answer /oauth2/introspect, so a subject token is valid here
// exactly when introspection calls it active.
type introspector interface {
	IntrospectToken(ctx context.Context, token string, use fosite.TokenUse, session fosite.Session, scopes ...string) (fosite.TokenUse, fosite.AccessRequester, error)
}

// tokenExchangeGrant is the token exchange grant (RFC 8693 §2) for
// delegation: a confidential client registered for it presents a person's
// access token and gets a new access token for the same person, no wider
// in scope or audience than the subject token and its own registration,
// that names it as the actor (act). The new token belongs to the subject
// token's grant (same request ID), so whatever revokes that grant revokes
// it too, in both formats. No refresh token is issued: the exchanged token
// is meant for one hop and never outlives the subject token.
type tokenExchangeGrant struct {
	strategy   oauth2.CoreStrategy
	introspect introspector
	store      ExchangeStore
	config     interface {
		fosite.AccessTokenLifespanProvider
		fosite.ScopeStrategyProvider
	}
	// stateless is true for JWT access tokens, which store nothing.
	stateless bool
	now       func() time.Time
}

var _ fosite.TokenEndpointHandler = (*tokenExchangeGrant)(nil)

func (g *tokenExchangeGrant) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool {
	return false
}

func (g *tokenExchangeGrant) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne(GrantTypeTokenExchange)
}

// errInvalidTarget is RFC 8693 §2.2.2's error for an audience or resource
// the server will not issue a token for; fosite has no sentinel for it.
func errInvalidTarget(hint string) *fosite.RFC6749Error {
	return (&fosite.RFC6749Error{
		ErrorField:       "invalid_target",
		DescriptionField: "The requested resource is invalid, missing, unknown, or malformed.",
		CodeField:        http.StatusBadRequest,
	}).WithHint(hint)
}

// HandleTokenEndpointRequest validates the exchange (RFC 8693 §2.1) and
// prepares the new token's session. §2.2.2: a subject or actor token that
// is invalid for any reason, or unacceptable by policy (may_act), is
// invalid_request, not invalid_grant.
func (g *tokenExchangeGrant) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !g.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	client := r.GetClient()
	// Registration refuses the grant to public clients; the check here
	// keeps a client stored before that rule from using it.
	if !client.GetGrantTypes().Has(GrantTypeTokenExchange) || client.IsPublic() {
		return fosite.ErrUnauthorizedClient.WithHint("The client is not allowed to use the token exchange grant.")
	}
	form := r.GetRequestForm()
	subjectToken := form.Get("subject_token")
	switch {
	case subjectToken == "":
		return fosite.ErrInvalidRequest.WithHint("The subject_token parameter is missing.")
	case form.Get("subject_token_type") == "":
		return fosite.ErrInvalidRequest.WithHint("The subject_token_type parameter is missing.")
	case form.Get("subject_token_type") != TokenTypeAccessToken:
		return fosite.ErrInvalidRequest.WithHintf("The subject_token_type must be '%s'.", TokenTypeAccessToken)
	}
	if t := form.Get("requested_token_type"); t != "" && t != TokenTypeAccessToken {
		return fosite.ErrInvalidRequest.WithHintf("The requested_token_type must be '%s'; no other token type is issued.", TokenTypeAccessToken)
	}
	actorToken, actorType := form.Get("actor_token"), form.Get("actor_token_type")
	switch {
	case actorToken != "" && actorType == "":
		return fosite.ErrInvalidRequest.WithHint("The actor_token_type parameter is missing.")
	case actorToken == "" && actorType != "":
		return fosite.ErrInvalidRequest.WithHint("The actor_token_type parameter is sent without an actor_token.")
	case actorToken != "" && actorType != TokenTypeAccessToken:
		return fosite.ErrInvalidRequest.WithHintf("The actor_token_type must be '%s'.", TokenTypeAccessToken)
	}

	subject, err := g.accessToken(ctx, subjectToken, "subject_token")
	if err != nil {
		return err
	}
	subjectSess, ok := subject.GetSession().(*grantsession.Session)
	if !ok {
		return fosite.ErrServerError.WithHint("Unexpected session type.")
	}
	// A client credentials token speaks for a client, not a person: its
	// client asks for its own token instead. Refusing it also keeps
	// exchanged tokens inside grants that RFC 7009, logout and user
	// revocation reach as a whole (a client credentials JWT is revoked by
	// its jti alone).
	if subjectSess.GetSubject() == subject.GetClient().GetID() {
		return fosite.ErrInvalidRequest.WithHint("The subject_token is a client credentials token; token exchange is for tokens that represent a person.")
	}

	// The actor is the calling client, or whom its actor token names. An
	// actor token must have been issued to the caller: otherwise a client
	// could put any party it holds a token of into act.
	actor := client.GetID()
	if actorToken != "" {
		at, err := g.accessToken(ctx, actorToken, "actor_token")
		if err != nil {
			return err
		}
		if at.GetClient().GetID() != client.GetID() {
			return fosite.ErrInvalidRequest.WithHint("The actor_token was issued to another client.")
		}
		actor = at.GetSession().GetSubject()
	}
	// RFC 8693 §4.4: may_act names who may act for the subject.
	if m := subjectSess.MayAct; m != nil && m.Sub != actor {
		return fosite.ErrInvalidRequest.WithHint("The subject_token does not allow this party to act for its subject (may_act).")
	}

	scopes, err := g.scopes(ctx, client, r.GetRequestedScopes(), subject.GetGrantedScopes())
	if err != nil {
		return err
	}
	audience, err := exchangeAudience(client.GetAudience(), r.GetRequestedAudience(), subject.GetGrantedAudience())
	if err != nil {
		return err
	}

	sess := grantsession.New(subjectSess.GetSubject())
	sess.Username = subjectSess.Username
	// When the grant began, for revoked_subjects (a JWT subject token's
	// iat stands in: its session is rebuilt from the claims).
	sess.GrantedAt = grantStart(subject)
	sess.Act = &grantsession.Actor{Sub: actor, Act: subjectSess.Act}
	// Never longer than the subject token: a revocation of it by jti (or
	// its expiry) must not leave a longer-lived copy behind.
	exp := g.now().UTC().Add(g.config.GetAccessTokenLifespan(ctx)).Round(time.Second)
	if se := subjectSess.GetExpiresAt(fosite.AccessToken); !se.IsZero() && se.Before(exp) {
		exp = se
	}
	sess.SetExpiresAt(fosite.AccessToken, exp)

	// The subject's grant: its revocation deletes this token's row or
	// deny-lists its JWT by grant ID.
	r.SetID(subject.GetID())
	r.SetSession(sess)
	for _, s := range scopes {
		r.GrantScope(s)
	}
	for _, a := range audience {
		r.GrantAudience(a)
	}
	return nil
}

// accessToken introspects a subject or actor token. Only access tokens
// count: a refresh token is not what the type parameter says it is.
func (g *tokenExchangeGrant) accessToken(ctx context.Context, token, param string) (fosite.AccessRequester, error) {
	use, ar, err := g.introspect.IntrospectToken(ctx, token, fosite.AccessToken, grantsession.New(""))
	switch {
	case errors.Is(err, store.ErrUnavailable):
		return nil, err
	case err != nil && !isInactive(err):
		return nil, fosite.ErrServerError.WithWrap(err)
	case err != nil || use != fosite.AccessToken:
		return nil, fosite.ErrInvalidRequest.WithHintf("The %s is invalid, expired or revoked.", param)
	}
	return ar, nil
}

// scopes is what the new token gets: what was asked for, each scope held
// by both the subject token and the caller's registration (else
// invalid_scope); with nothing asked, every scope of the subject token the
// caller is registered for.
func (g *tokenExchangeGrant) scopes(ctx context.Context, client fosite.Client, requested, subject fosite.Arguments) (fosite.Arguments, error) {
	has := g.config.GetScopeStrategy(ctx)
	if len(requested) == 0 {
		var out fosite.Arguments
		for _, s := range subject {
			if has(client.GetScopes(), s) {
				out = append(out, s)
			}
		}
		return out, nil
	}
	for _, s := range requested {
		if !has(client.GetScopes(), s) {
			return nil, fosite.ErrInvalidScope.WithHintf("The client is not allowed to request scope '%s'.", s)
		}
		if !has(subject, s) {
			return nil, fosite.ErrInvalidScope.WithHintf("The scope '%s' is wider than the subject_token's.", s)
		}
	}
	return requested, nil
}

// exchangeAudience is the new token's audience: what was asked for
// (audience or resource), each within both the caller's registered
// audience and the subject token's (else invalid_target); with nothing
// asked, the subject token's audience the caller is registered for.
func exchangeAudience(registered, requested, subject []string) ([]string, error) {
	in := func(list []string, a string) bool {
		for _, x := range list {
			if x == a {
				return true
			}
		}
		return false
	}
	if len(requested) == 0 {
		var out []string
		for _, a := range subject {
			if in(registered, a) {
				out = append(out, a)
			}
		}
		return out, nil
	}
	for _, a := range requested {
		if !in(registered, a) {
			return nil, errInvalidTarget("The client is not registered for audience '" + a + "'.")
		}
		if !in(subject, a) {
			return nil, errInvalidTarget("The audience '" + a + "' is not one of the subject_token's.")
		}
	}
	return requested, nil
}

// PopulateTokenEndpointResponse issues the access token (RFC 8693 §2.2.1).
// An opaque one is stored under the grant's lock, only while the subject
// token's grant is live: a revocation racing the exchange either deletes it
// with the rest or makes the exchange fail.
func (g *tokenExchangeGrant) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !g.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	access, accessSig, err := g.strategy.GenerateAccessToken(ctx, r)
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	if !g.stateless {
		// A JWT subject has no row to check; its grant's deny-list entry
		// is checked instead.
		var subjectSig string
		if subject := r.GetRequestForm().Get("subject_token"); !isJWT(subject) {
			subjectSig = g.strategy.AccessTokenSignature(ctx, subject)
		}
		storeReq := r.Sanitize(nil)
		storeReq.SetID(r.GetID())
		err := g.store.CreateExchangedAccessToken(ctx, subjectSig, accessSig, storeReq)
		if errors.Is(err, store.ErrGrantRevoked) {
			return fosite.ErrInvalidRequest.WithHint("The subject_token is invalid, expired or revoked.")
		}
		if err != nil {
			return fosite.ErrServerError.WithWrap(err)
		}
	}
	sess := r.GetSession()
	resp.SetAccessToken(access)
	resp.SetTokenType("bearer")
	resp.SetExpiresIn(sess.GetExpiresAt(fosite.AccessToken).Sub(g.now()).Round(time.Second))
	resp.SetScopes(r.GetGrantedScopes())
	resp.SetExtra("issued_token_type", TokenTypeAccessToken)
	return nil
}
