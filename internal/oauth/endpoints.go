package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/dpop"
	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/tracing"
	"github.com/ory/fosite"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
)

// Public endpoint paths (the contract's).
const (
	PathToken      = "/oauth2/token"
	PathRevoke     = "/oauth2/revoke"
	PathIntrospect = "/oauth2/introspect"
	PathMetadata   = "/.well-known/oauth-authorization-server"
	PathJWKS       = "/.well-known/jwks.json"
	// OpenID Connect (contract, Round 2 additions).
	PathOpenIDConfiguration = "/.well-known/openid-configuration"
	PathUserinfo            = "/oauth2/userinfo"
	PathEndSession          = "/oauth2/logout"
)

// knownGrantTypes bounds the grant_type metric label.
var knownGrantTypes = map[string]bool{
	"authorization_code": true, "client_credentials": true, "password": true, "refresh_token": true,
	GrantTypeTokenExchange: true,
	GrantTypeDeviceCode:    true,
}

// Token serves POST /oauth2/token.
func (p *Provider) Token(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// The grant's span, under the HTTP request's; fosite's own spans
	// (Fosite.NewAccessRequest, Fosite.NewAccessResponse) and the
	// statements run are its children. A no-op when traces are off.
	ctx, span := tracing.Start(r.Context(), "oauth2.token")
	grant := "unknown"
	outcome := "ok"
	defer func() {
		p.metrics.TokenRequests.WithLabelValues(grant, outcome).Inc()
		p.metrics.TokenDuration.WithLabelValues(grant).Observe(time.Since(start).Seconds())
		if span.IsRecording() {
			span.SetAttributes(attribute.String("oauth.grant_type", grant), attribute.String("oauth.outcome", outcome))
			if outcome != "ok" {
				span.SetStatus(codes.Error, outcome)
			}
		}
		span.End()
	}()
	fail := func(ar fosite.AccessRequester, err error) {
		outcome = p.writeError(w, r, PathToken, ar, err)
	}

	if err := parsePostForm(r, tokenMultiValued); err != nil {
		fail(nil, err)
		return
	}
	switch g := r.PostForm.Get("grant_type"); {
	case knownGrantTypes[g]:
		grant = g
	case g != "":
		fail(nil, fosite.ErrUnsupportedGrantType.WithHintf("The grant type '%s' is not supported.", g))
		return
	}
	// The proof first, and its jti spent even if the request fails later
	// (internal/dpop's doc says why). Any failure is 400
	// invalid_dpop_proof, a replay included.
	jkt, err := p.checkProof(w, r, PathToken, "")
	if e, ok := dpop.AsError(err); ok {
		fail(nil, dpopError(e))
		return
	}
	if err != nil {
		// The replay store: 503 when the database is away.
		fail(nil, err)
		return
	}
	if jkt != "" {
		ctx = withJKT(ctx, jkt)
	}
	// RFC 8707 resource indicators name the audience; fosite only reads
	// "audience", so both feed the same list.
	if res := r.PostForm["resource"]; len(res) > 0 {
		r.PostForm["audience"] = append(r.PostForm["audience"], res...)
	}

	if grant == "password" || grant == "client_credentials" {
		// The grants whose scope is asked here; a code's and a refresh
		// token's scope was settled at the authorization endpoint.
		dropUnservedScopes(r.PostForm)
	}

	sess := grantsession.New("")
	ar, err := p.fosite.NewAccessRequest(p.withClientIP(ctx, r), r, sess)
	if err != nil {
		fail(ar, err)
		return
	}
	client := ar.GetClient()
	switch {
	case ar.GetGrantTypes().ExactOne("client_credentials"):
		// No person, so no ID token: openid asks for one (Core §3.1.2.1).
		if ar.GetRequestedScopes().Has(ScopeOpenID) {
			fail(ar, fosite.ErrInvalidScope.WithHint("The scope 'openid' needs a person; the client credentials grant has none."))
			return
		}
		// RFC 9068 §2.2: for client credentials the subject is the client.
		sess.Subject = client.GetID()
		p.grantRequested(ar)
	case ar.GetGrantTypes().ExactOne("password"):
		// sess.Username was set by throttledPasswords: the account's
		// username, which may not be what was typed (an email).
		sess.GrantedAt = p.now().UTC()
		// The password was checked just now; there is no browser session,
		// so no sid.
		sess.AuthTime = sess.GrantedAt
		sess.AMR = []string{login.AMRPassword}
		sess.ACR = ACRPassword
		p.grantRequested(ar)
	}
	if err := bindDPoP(ar, jkt); err != nil {
		fail(ar, err)
		return
	}
	idToken, err := p.planIDToken(ctx, ar)
	if err != nil {
		fail(ar, err)
		return
	}

	resp, err := p.fosite.NewAccessResponse(ctx, ar)
	if errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
		// Two redemptions of one code raced and this one lost: it is a
		// reuse like any other, so the grant the winner got is revoked.
		p.revokeCodeGrant(ctx, r.PostForm.Get("code"))
		err = fosite.ErrInvalidGrant.WithHint("The authorization code has already been used.")
	}
	if err != nil {
		fail(ar, err)
		return
	}
	if jkt != "" {
		// RFC 9449 §5: the token type says the access token is bound.
		resp.SetTokenType("DPoP")
	}
	if idToken != nil {
		if err := p.issueIDToken(ar, resp, idToken); err != nil {
			fail(ar, err)
			return
		}
		p.metrics.TokensIssued.WithLabelValues(grant, "id_token").Inc()
	}
	p.metrics.TokensIssued.WithLabelValues(grant, "access_token").Inc()
	if resp.GetExtra("refresh_token") != nil {
		p.metrics.TokensIssued.WithLabelValues(grant, "refresh_token").Inc()
	}
	p.log.LogAttrs(ctx, slog.LevelDebug, "token issued",
		slog.String("client_id", client.GetID()), slog.String("grant_type", grant), slog.String("grant_id", ar.GetID()))
	p.fosite.WriteAccessResponse(ctx, w, ar, resp)
}

// revokeCodeGrant revokes the grant of an authorization code that was
// redeemed twice.
func (p *Provider) revokeCodeGrant(ctx context.Context, code string) {
	req, err := p.store.GetAuthorizeCodeSession(ctx, p.strategy.AuthorizeCodeSignature(ctx, code), nil)
	if req == nil {
		p.log.WarnContext(ctx, "reused authorization code has no grant", "error", err)
		return
	}
	if err := p.store.RevokeGrant(ctx, req.GetID(), p.now().Add(p.cfg.RevocationWindow())); err != nil {
		p.log.ErrorContext(ctx, "revoke grant of reused code", "error", err, "grant_id", req.GetID())
		return
	}
	p.log.WarnContext(ctx, "authorization code reused; grant revoked", "grant_id", req.GetID(), "client_id", req.GetClient().GetID())
}

// grantRequested grants what fosite already checked the client may have:
// the requested scopes, and the requested audience or, when none was asked
// for, the client's registered audience.
func (p *Provider) grantRequested(ar fosite.Requester) {
	for _, s := range ar.GetRequestedScopes() {
		ar.GrantScope(s)
	}
	aud := ar.GetRequestedAudience()
	if len(aud) == 0 {
		aud = ar.GetClient().GetAudience()
	}
	for _, a := range aud {
		ar.GrantAudience(a)
	}
}

// Revoke serves POST /oauth2/revoke (RFC 7009). Revoking either token of a
// grant revokes the grant's access and refresh tokens. Unknown tokens answer
// 200 (§2.2); a token of another client is refused with unauthorized_client
// (§2.1), where fosite's own writer would answer 200 and hide it.
func (p *Provider) Revoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := parsePostForm(r, nil); err != nil {
		p.writeError(w, r, PathRevoke, nil, err)
		return
	}
	if err := p.fosite.NewRevocationRequest(ctx, r); err != nil {
		p.writeError(w, r, PathRevoke, nil, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(http.StatusOK)
}

// introspection is the RFC 7662 §2.2 answer.
type introspection struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Username  string   `json:"username,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	Exp       int64    `json:"exp,omitempty"`
	Iat       int64    `json:"iat,omitempty"`
	Sub       string   `json:"sub,omitempty"`
	Aud       []string `json:"aud,omitempty"`
	Iss       string   `json:"iss,omitempty"`
	Jti       string   `json:"jti,omitempty"`
	// Cnf is the DPoP key the token is bound to (RFC 9449 §6.2).
	Cnf *confirmation `json:"cnf,omitempty"`
	// Act is the acting party of an exchanged token (RFC 8693 §4.1),
	// answered as the JWT carries it so that a resource server sees the
	// delegation in either format.
	Act *grantsession.Actor `json:"act,omitempty"`
	// AMR and ACR say how the person of a user grant signed in (OpenID
	// Connect Core §2, as in the ID token), so that a resource server can
	// ask for a second factor without decoding an ID token.
	AMR []string `json:"amr,omitempty"`
	ACR string   `json:"acr,omitempty"`
}

// Introspect serves POST /oauth2/introspect (RFC 7662). The caller must
// authenticate as a confidential client; unknown, expired and revoked tokens
// are all {"active":false}.
func (p *Provider) Introspect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := parsePostForm(r, nil); err != nil {
		p.writeError(w, r, PathIntrospect, nil, err)
		return
	}
	caller, err := p.fosite.AuthenticateClient(ctx, r, r.PostForm)
	if err != nil {
		// RFC 7662 §2.3: a caller that is not authorized gets 401, also
		// when it sent no credentials at all.
		if rfc := fosite.ErrorToRFC6749Error(err); rfc.ErrorField == fosite.ErrInvalidRequest.ErrorField {
			err = fosite.ErrInvalidClient.WithHint("Introspection requires client authentication.")
		}
		p.writeError(w, r, PathIntrospect, nil, err)
		return
	}
	if caller.IsPublic() {
		p.writeError(w, r, PathIntrospect, nil, fosite.ErrInvalidClient.WithHint("Introspection requires a confidential client."))
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		p.writeError(w, r, PathIntrospect, nil, fosite.ErrInvalidRequest.WithHint("The 'token' parameter is missing."))
		return
	}
	// RFC 7662 §2.1: an unknown hint is ignored and every kind searched.
	hint := fosite.TokenUse(r.PostForm.Get("token_type_hint"))
	if hint != fosite.AccessToken && hint != fosite.RefreshToken {
		hint = ""
	}

	answer := introspection{Active: false}
	use, ar, err := p.fosite.IntrospectToken(ctx, token, hint, grantsession.New(""))
	switch {
	case errors.Is(err, store.ErrUnavailable):
		// Not "inactive": a resource server would log the user out for a
		// database hiccup.
		p.writeError(w, r, PathIntrospect, nil, err)
		return
	case err != nil:
		if !isInactive(err) {
			// Storage trouble must not read as a valid token; it reads as
			// inactive, and it is logged for the operator.
			p.log.WarnContext(ctx, "introspection failed", "error", err, "client_id", caller.GetID())
		}
	default:
		answer = p.describe(ctx, use, token, ar)
	}
	writeJSON(w, http.StatusOK, answer)
}

func (p *Provider) describe(ctx context.Context, use fosite.TokenUse, token string, ar fosite.AccessRequester) introspection {
	sess := ar.GetSession()
	out := introspection{
		Active:   true,
		Scope:    strings.Join(ar.GetGrantedScopes(), " "),
		ClientID: ar.GetClient().GetID(),
		Username: sess.GetUsername(),
		Sub:      sess.GetSubject(),
		Aud:      ar.GetGrantedAudience(),
		Iss:      p.cfg.Issuer,
		Iat:      ar.GetRequestedAt().Unix(),
	}
	if use == fosite.RefreshToken {
		out.TokenType = "refresh_token"
		out.Exp = unix(sess.GetExpiresAt(fosite.RefreshToken))
		out.Jti = secrets.SignatureKey(p.strategy.RefreshTokenSignature(ctx, token))
	} else {
		out.TokenType = "Bearer"
		out.Exp = unix(sess.GetExpiresAt(fosite.AccessToken))
		out.Jti = secrets.SignatureKey(p.strategy.AccessTokenSignature(ctx, token))
	}
	// An opaque token's id is its storage key, which identifies it without
	// revealing it; a JWT has its own jti.
	if s, ok := sess.(*grantsession.Session); ok {
		if s.TokenID != "" {
			out.Jti = s.TokenID
		}
		if use != fosite.RefreshToken {
			out.Act = s.Act
		}
		out.AMR, out.ACR = s.AMR, s.ACR
		// RFC 9449 §6.2: a bound access token is of type DPoP and says
		// its key; a bound refresh token says its key too.
		switch {
		case use == fosite.RefreshToken && s.RefreshJKT != "":
			out.Cnf = &confirmation{JKT: s.RefreshJKT}
		case use != fosite.RefreshToken && s.CnfJKT != "":
			out.TokenType = "DPoP"
			out.Cnf = &confirmation{JKT: s.CnfJKT}
		}
	}
	// JWTs carry no personal data, so the username of a user grant is
	// looked up rather than read from the token.
	if out.Username == "" && out.Sub != "" && out.Sub != out.ClientID {
		if u, err := p.store.FindUser(ctx, out.Sub); err == nil {
			out.Username = u.Username
		}
	}
	return out
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// isInactive tells a token that is simply not valid from a failure to look.
func isInactive(err error) bool {
	for _, e := range []error{
		fosite.ErrNotFound, fosite.ErrInactiveToken, fosite.ErrTokenExpired, fosite.ErrTokenSignatureMismatch,
		fosite.ErrInvalidTokenFormat, fosite.ErrInvalidatedAuthorizeCode, fosite.ErrTokenClaim,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	var rfc *fosite.RFC6749Error
	if errors.As(err, &rfc) && rfc.Unwrap() == nil {
		return true
	}
	return errors.Is(err, store.ErrNotFound)
}

// writeError writes an RFC 6749 §5.2 error, counts it and logs server-side
// failures. It returns the error code for metrics.
func (p *Provider) writeError(w http.ResponseWriter, r *http.Request, endpoint string, ar fosite.AccessRequester, err error) string {
	if errors.Is(err, store.ErrUnavailable) {
		// RFC 6749 §5.2 has no 503, but temporarily_unavailable is its word
		// for this, and Retry-After tells clients when to come back.
		p.log.ErrorContext(r.Context(), "database unavailable", "endpoint", endpoint, "error", err)
		p.metrics.OAuthErrors.WithLabelValues(endpoint, fosite.ErrTemporarilyUnavailable.ErrorField).Inc()
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{
			"error": fosite.ErrTemporarilyUnavailable.ErrorField, "error_description": "The server is temporarily unable to reach its database. Retry shortly.",
		})
		return fosite.ErrTemporarilyUnavailable.ErrorField
	}
	if errors.Is(err, login.ErrBusy) {
		return p.writeBusy(w, r, endpoint)
	}
	rfc := fosite.ErrorToRFC6749Error(err)
	p.metrics.OAuthErrors.WithLabelValues(endpoint, rfc.ErrorField).Inc()
	p.logError(r, endpoint, rfc)
	if rfc.ErrorField == fosite.ErrInvalidClient.ErrorField {
		setBasicChallenge(w, r)
	}
	p.fosite.WriteAccessError(r.Context(), w, ar, rfc)
	return rfc.ErrorField
}

func (p *Provider) logError(r *http.Request, endpoint string, rfc *fosite.RFC6749Error) {
	level := slog.LevelInfo
	if rfc.CodeField >= 500 {
		level = slog.LevelError
	}
	// The debug text can carry a driver error; it goes to the log only,
	// never to the client. No form values are logged: they hold secrets.
	p.log.Log(r.Context(), level, "oauth error", "endpoint", endpoint, "error", rfc.ErrorField,
		"hint", rfc.HintField, "debug", rfc.DebugField, "status", rfc.CodeField)
}

// setBasicChallenge answers RFC 6749 §5.2: a client that tried HTTP Basic
// authentication and failed gets 401 with WWW-Authenticate.
func setBasicChallenge(w http.ResponseWriter, r *http.Request) {
	if len(r.Header.Values("Authorization")) > 0 {
		w.Header().Set("WWW-Authenticate", `Basic realm="latchkey", charset="UTF-8"`)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	writeJSONBody(w, v)
}

func writeJSONBody(w http.ResponseWriter, v any) {
	_ = json.NewEncoder(w).Encode(v)
}
