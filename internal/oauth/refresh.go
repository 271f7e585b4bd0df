package oauth

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/metrics"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
)

// MaxGraceRepeats bounds how often one rotated refresh token may be
// presented again inside the grace period: enough for a burst of tabs or
// retries, too few to be a way around rotation.
const MaxGraceRepeats = 100

// refreshGrant replaces fosite's refresh handler. It adds what fosite lacks:
// an idempotent grace period (concurrent refreshes of one token all get the
// same successor, so the chain does not fork), an absolute lifetime that
// rotation never extends, client binding checked before reuse handling (so
// another client's guess cannot revoke the owner's grant), and a security
// event for every reuse.
type refreshGrant struct {
	strategy oauth2.CoreStrategy
	db       RefreshStore
	storage  grantStorage
	config   interface {
		fosite.AccessTokenLifespanProvider
		fosite.ScopeStrategyProvider
		fosite.AudienceStrategyProvider
	}
	idleTTL     time.Duration
	absoluteTTL time.Duration
	grace       time.Duration
	revokeFor   time.Duration
	// stateless is true for JWT access tokens, which store nothing.
	stateless bool
	metrics   *metrics.Metrics
	log       *slog.Logger
	// reuseLog rate-limits the reuse warning (newReuseLogLimiter).
	reuseLog *logLimiter
	now      func() time.Time
}

// Reuse warnings per instance: at most reuseLogBurst a minute; the next
// line written says how many were held back. Every reuse is still counted
// by the metric and, once per grant, in security_events.
const reuseLogBurst = 10

func newReuseLogLimiter(now func() time.Time) *logLimiter {
	return newLogLimiter(now, time.Minute, reuseLogBurst)
}

var _ fosite.TokenEndpointHandler = (*refreshGrant)(nil)

func (g *refreshGrant) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool { return false }

func (g *refreshGrant) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne("refresh_token")
}

var errRefreshInvalid = fosite.ErrInvalidGrant.WithHint("The refresh token is invalid, expired or revoked.")

// HandleTokenEndpointRequest validates the refresh token and prepares the
// new grant state (RFC 6749 §6).
func (g *refreshGrant) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !g.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	client := r.GetClient()
	if !client.GetGrantTypes().Has("refresh_token") {
		return fosite.ErrUnauthorizedClient.WithHint("The client is not allowed to use the refresh_token grant.")
	}
	token := r.GetRequestForm().Get("refresh_token")
	if token == "" {
		return fosite.ErrInvalidRequest.WithHint("The refresh_token parameter is missing.")
	}
	sig := g.strategy.RefreshTokenSignature(ctx, token)
	rec, err := g.db.FindRefreshToken(ctx, sig, grantsession.New(""))
	if errors.Is(err, store.ErrNotFound) {
		return errRefreshInvalid
	}
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	orig := rec.Request
	// The HMAC check makes a row found by a forged signature useless.
	if err := g.strategy.ValidateRefreshToken(ctx, orig, token); err != nil && !errors.Is(err, fosite.ErrTokenExpired) {
		return errRefreshInvalid
	}
	// Bound to its client, checked first: a token presented by another
	// client says nothing about the owner and must not revoke its grant.
	if orig.GetClient().GetID() != client.GetID() {
		return fosite.ErrInvalidGrant.WithHint("The refresh token was issued to another client.")
	}
	sess, ok := orig.GetSession().(*grantsession.Session)
	if !ok {
		return fosite.ErrServerError.WithHint("Unexpected session type.")
	}
	// A public client's chain bound to a DPoP key (RFC 9449 §5) needs a
	// proof by that key, checked before anything else about the token: a
	// thief who copied the token but not the key neither rotates the
	// chain nor, replaying a rotated token, trips reuse detection and
	// revokes the grant. The holder of the key keeps working (RFC 9700
	// §4.14.2: sender-constraining is the alternative to rotation's
	// tripwire). Without the key the token is useless, so there is
	// nothing for the revocation to protect.
	if bound := sess.RefreshJKT; bound != "" && requestJKT(ctx) != bound {
		if requestJKT(ctx) == "" {
			return errDPoPProof("The refresh token is bound to a DPoP key: send a DPoP proof signed with it.")
		}
		return errDPoPProof("The refresh token is bound to another DPoP key than the proof's.")
	}
	now := g.now().UTC()

	if !rec.Active {
		if rec.RotatedAt == nil {
			return fosite.ErrInvalidGrant.WithHint("The refresh token was revoked.")
		}
		successor, err := g.graceRepeat(ctx, token, sig, rec, now)
		if err != nil {
			return err
		}
		if successor == "" {
			g.reuseDetected(ctx, orig)
			return fosite.ErrInvalidGrant.WithHint("The refresh token was already used; the grant has been revoked.")
		}
		sess = sess.Clone().(*grantsession.Session)
		sess.GraceSuccessor = successor
	} else {
		if exp := sess.GetExpiresAt(fosite.RefreshToken); !exp.IsZero() && !exp.After(now) {
			return fosite.ErrInvalidGrant.WithHint("The refresh token expired.")
		}
		sess = sess.Clone().(*grantsession.Session)
	}
	// Carried by the successor from now on; the rotation checks it against
	// revoked_subjects.
	sess.GrantedAt = grantStart(orig)
	granted := sess.GrantedAt
	end := granted.Add(g.absoluteTTL)
	if !end.After(now) {
		return fosite.ErrInvalidGrant.WithHint("The grant reached its absolute lifetime; sign in again.")
	}

	r.SetID(orig.GetID())
	r.SetSession(sess)
	r.SetRequestedScopes(orig.GetRequestedScopes())
	r.SetRequestedAudience(orig.GetRequestedAudience())
	for _, s := range orig.GetGrantedScopes() {
		if !g.config.GetScopeStrategy(ctx)(client.GetScopes(), s) {
			return fosite.ErrInvalidScope.WithHintf("The client is no longer allowed scope '%s'.", s)
		}
		r.GrantScope(s)
	}
	if err := g.config.GetAudienceStrategy(ctx)(client.GetAudience(), orig.GetGrantedAudience()); err != nil {
		return err
	}
	for _, a := range orig.GetGrantedAudience() {
		r.GrantAudience(a)
	}
	sess.SetExpiresAt(fosite.AccessToken, now.Add(g.config.GetAccessTokenLifespan(ctx)).Round(time.Second))
	if sess.GraceSuccessor == "" {
		// Idle lifetime renewed by rotation, never past the absolute end.
		sess.SetExpiresAt(fosite.RefreshToken, minTime(now.Add(g.idleTTL), end).Round(time.Second))
	}
	return nil
}

// graceRepeat answers a rotated token presented again: inside the grace
// period, and within the repeat budget, it returns the successor the first
// presentation got; otherwise "" (reuse).
func (g *refreshGrant) graceRepeat(ctx context.Context, token, sig string, rec *store.RefreshRecord, now time.Time) (string, error) {
	if g.grace <= 0 || rec.Successor == nil || now.Sub(*rec.RotatedAt) > g.grace {
		return "", nil
	}
	ok, err := g.db.ClaimGraceUse(ctx, sig, MaxGraceRepeats)
	if err != nil {
		return "", fosite.ErrServerError.WithWrap(err)
	}
	if !ok {
		return "", nil
	}
	plain, err := secrets.OpenWithToken(token, rec.Successor, []byte(secrets.SignatureKey(sig)))
	if err != nil {
		// The token's own HMAC checked out, so the sealed successor should
		// open: a failure is a damaged row or a changed secret, not a
		// thief. Refuse (a repeat without its successor would fork the
		// chain) but say so, and do not call it reuse.
		g.log.ErrorContext(ctx, "sealed refresh successor cannot be opened", "error", err, "grant_id", rec.Request.GetID())
		return "", fosite.ErrInvalidGrant.WithHint("The refresh token cannot be used; sign in again.").WithWrap(err)
	}
	successor := string(plain)
	// Only while the successor is itself live: once the chain moved on or
	// the grant was revoked, handing it out would give a dead token, so the
	// repeat fails instead.
	active, err := g.db.RefreshTokenLive(ctx, g.strategy.RefreshTokenSignature(ctx, successor), grantStart(rec.Request))
	if err != nil {
		return "", fosite.ErrServerError.WithWrap(err)
	}
	if !active {
		return "", fosite.ErrInvalidGrant.WithHint("The refresh token was already used.")
	}
	return successor, nil
}

// reuseDetected revokes the whole grant of a replayed refresh token and
// leaves a trail: a metric for every replay, and a warning and an audit row
// only for the replay whose revocation changed something. Replaying one
// rotated token again and again, or many in parallel, records one event per
// grant; the warnings are rate-limited on top, since an attacker holding
// many grants could still produce one line each.
func (g *refreshGrant) reuseDetected(ctx context.Context, orig fosite.Requester) {
	ip, _ := ctx.Value(ipKey{}).(string)
	subject := orig.GetSession().GetSubject()
	g.metrics.RefreshReuse.Inc()
	changed, err := g.db.RevokeLiveGrant(ctx, orig.GetID(), g.now().Add(g.revokeFor))
	if err != nil {
		g.log.ErrorContext(ctx, "revoke grant after refresh token reuse", "error", err, "grant_id", orig.GetID())
		return
	}
	if !changed {
		g.log.DebugContext(ctx, "refresh token reuse on a revoked grant", "client_id", orig.GetClient().GetID(), "grant_id", orig.GetID())
		return
	}
	if ok, suppressed := g.reuseLog.allow(); ok {
		g.log.WarnContext(ctx, "refresh token reuse detected; grant revoked", "client_id", orig.GetClient().GetID(),
			"subject", subject, "grant_id", orig.GetID(), "ip", ip, "suppressed", suppressed)
	}
	if err := g.db.RecordSecurityEvent(ctx, &store.SecurityEvent{
		Kind: "refresh_token_reuse", ClientID: orig.GetClient().GetID(), Subject: subject, RequestID: orig.GetID(), IP: ip,
	}); err != nil {
		g.log.ErrorContext(ctx, "record refresh token reuse", "error", err)
	}
}

// PopulateTokenEndpointResponse issues the new tokens. The database work of
// a rotation is one transaction whose first statement is the conditional
// update of the old token; a loser of a race rolls back and answers from
// the winner's successor, so concurrent refreshes converge on one chain.
func (g *refreshGrant) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !g.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	sess := r.GetSession().(*grantsession.Session)
	access, accessSig, err := g.strategy.GenerateAccessToken(ctx, r)
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	storeReq := r.Sanitize(nil)
	storeReq.SetID(r.GetID())

	// On a repeat the access token is new but the refresh token is the one
	// the first request got.
	refresh, storeAccess := sess.GraceSuccessor, sess.GraceSuccessor != ""
	if refresh == "" {
		oldToken := r.GetRequestForm().Get("refresh_token")
		oldSig := g.strategy.RefreshTokenSignature(ctx, oldToken)
		newToken, newSig, err := g.strategy.GenerateRefreshToken(ctx, r)
		if err != nil {
			return fosite.ErrServerError.WithWrap(err)
		}
		var sealed []byte
		if g.grace > 0 {
			if sealed, err = secrets.SealWithToken(oldToken, []byte(newToken), []byte(secrets.SignatureKey(oldSig))); err != nil {
				return fosite.ErrServerError.WithWrap(err)
			}
		}
		// Under the grant's lock, and refused once the grant or its subject
		// is revoked (store/grantlock.go): a revocation racing this refresh
		// either sees the successor or makes the rotation fail. JWT access
		// tokens store nothing; an opaque one is stored in the same
		// transaction.
		err = g.db.RotateRefreshTokenOnce(ctx, store.Rotation{
			OldSignature: oldSig, Sealed: sealed, NewSignature: newSig, AccessSignature: accessSig,
			Request: storeReq, GrantedAt: sess.GrantedAt, StoreAccessToken: !g.stateless,
		})
		switch {
		case errors.Is(err, fosite.ErrSerializationFailure):
			// Another request rotated this token first: answer as a repeat.
			rec, ferr := g.db.FindRefreshToken(ctx, oldSig, grantsession.New(""))
			if ferr != nil || rec.RotatedAt == nil {
				return fosite.ErrInvalidGrant.WithHint("The refresh token was revoked.")
			}
			successor, gerr := g.graceRepeat(ctx, oldToken, oldSig, rec, g.now().UTC())
			if gerr != nil {
				return gerr
			}
			if successor == "" {
				return fosite.ErrInvalidGrant.WithHint("The refresh token was already used.")
			}
			refresh, storeAccess = successor, true
		case err != nil:
			return fosite.ErrServerError.WithWrap(err)
		default:
			refresh = newToken
		}
	}
	if storeAccess && !g.stateless {
		// A grace repeat's access token, stored under the grant's lock and
		// only while the successor is live: checked and inserted in one
		// transaction, so a revocation cannot fall between the two.
		err := g.db.CreateGraceAccessToken(ctx, g.strategy.RefreshTokenSignature(ctx, refresh), accessSig, storeReq, sess.GrantedAt)
		if errors.Is(err, store.ErrGrantRevoked) {
			return fosite.ErrInvalidGrant.WithHint("The refresh token was revoked.")
		}
		if err != nil {
			return fosite.ErrServerError.WithWrap(err)
		}
	}
	resp.SetAccessToken(access)
	resp.SetTokenType("bearer")
	resp.SetExpiresIn(sess.GetExpiresAt(fosite.AccessToken).Sub(g.now()).Round(time.Second))
	resp.SetScopes(r.GetGrantedScopes())
	resp.SetExtra("refresh_token", refresh)
	return nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// grantStart is when a grant began: the session's GrantedAt, or, for a
// grant stored before sessions carried it, the request time.
func grantStart(r fosite.Requester) time.Time {
	if s, ok := r.GetSession().(*grantsession.Session); ok && !s.GrantedAt.IsZero() {
		return s.GrantedAt
	}
	return r.GetRequestedAt()
}
