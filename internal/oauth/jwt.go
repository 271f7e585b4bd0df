package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
)

// accessClaims are the RFC 9068 claims of a JWT access token, plus the
// grant ID ("gid") that lets introspection see a revoked grant.
type accessClaims struct {
	jwt.Claims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope,omitempty"`
	GrantID  string `json:"gid"`
	// Cnf binds the token to a DPoP key (RFC 9449 §6.1).
	Cnf *confirmation `json:"cnf,omitempty"`
	// Act says who acts for the subject in a token issued by token
	// exchange (RFC 8693 §4.1); MayAct who may (§4.4).
	Act    *grantsession.Actor `json:"act,omitempty"`
	MayAct *grantsession.Actor `json:"may_act,omitempty"`
	// AMR and ACR say how the person of a user grant signed in (RFC 9068
	// §2.2.1), so that introspection of a JWT, which has no row, answers
	// them as it does for an opaque token.
	AMR []string `json:"amr,omitempty"`
	ACR string   `json:"acr,omitempty"`
}

// confirmation is RFC 7800's cnf with RFC 9449's member.
type confirmation struct {
	JKT string `json:"jkt"`
}

// jwtStrategy issues RFC 9068 JWT access tokens signed with the current key
// and leaves refresh tokens and authorization codes to the HMAC strategy.
type jwtStrategy struct {
	clockedHMAC
	keys   *keys.Manager
	issuer string
	// maxLifetime is LATCHKEY_ACCESS_TOKEN_TTL: no token Latchkey signs
	// lives longer, so one that claims to was not signed by Latchkey's
	// token endpoint (a key stolen with an old secret and a backup).
	maxLifetime time.Duration
	now         func() time.Time
	verified    verifiedCache
}

// verifiedCache remembers tokens whose signature already checked out, until
// they expire: resource servers introspect the same token again and again,
// and an ECDSA verification costs more than the rest of the request. It
// holds no revocation state, which is read from the database every time,
// and a hit counts only while the key that signed the token is published.
type verifiedCache struct {
	mu      sync.Mutex
	entries map[string]verifiedEntry
}

type verifiedEntry struct {
	claims *accessClaims
	kid    string
}

const verifiedCacheSize = 10000

func (c *verifiedCache) get(token string, now time.Time) (*accessClaims, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[token]
	if !ok || !e.claims.Expiry.Time().After(now) {
		return nil, ""
	}
	return e.claims, e.kid
}

func (c *verifiedCache) put(token, kid string, claims *accessClaims) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= verifiedCacheSize {
		// Dropping everything is crude but bounded, and refilling costs one
		// verification per live token.
		c.entries = make(map[string]verifiedEntry, 1024)
	}
	c.entries[token] = verifiedEntry{claims: claims, kid: kid}
}

var _ oauth2.CoreStrategy = (*jwtStrategy)(nil)

// isJWT tells a JWT (three dot-separated parts) from an HMAC token (two).
func isJWT(token string) bool { return strings.Count(token, ".") == 2 }

// AccessTokenSignature is the JWT's signature part; fosite uses it as the
// access token's key next to the refresh token.
func (s *jwtStrategy) AccessTokenSignature(_ context.Context, token string) string {
	if i := strings.LastIndexByte(token, '.'); i >= 0 {
		return token[i+1:]
	}
	return ""
}

// GenerateAccessToken signs fresh claims for every token: a refresh clones
// the stored session, so nothing is carried over but the grant.
func (s *jwtStrategy) GenerateAccessToken(_ context.Context, r fosite.Requester) (string, string, error) {
	key, err := s.keys.Current()
	if err != nil {
		return "", "", err
	}
	jti, err := secrets.RandomToken(16)
	if err != nil {
		return "", "", err
	}
	now := s.now().UTC()
	exp := r.GetSession().GetExpiresAt(fosite.AccessToken)
	if exp.IsZero() {
		return "", "", errors.New("access token expiry missing from the session")
	}
	aud := r.GetGrantedAudience()
	if len(aud) == 0 {
		// RFC 9068 §2.2 requires aud; with nothing granted the token is for
		// the issuer itself.
		aud = fosite.Arguments{s.issuer}
	}
	claims := accessClaims{
		Claims: jwt.Claims{
			Issuer:   s.issuer,
			Subject:  r.GetSession().GetSubject(),
			Audience: jwt.Audience(aud),
			Expiry:   jwt.NewNumericDate(exp),
			IssuedAt: jwt.NewNumericDate(now),
			ID:       jti,
		},
		ClientID: r.GetClient().GetID(),
		Scope:    strings.Join(r.GetGrantedScopes(), " "),
		GrantID:  r.GetID(),
	}
	if gs, ok := r.GetSession().(*grantsession.Session); ok && gs.CnfJKT != "" {
		claims.Cnf = &confirmation{JKT: gs.CnfJKT}
	}
	if gs, ok := r.GetSession().(*grantsession.Session); ok {
		claims.Act, claims.MayAct = gs.Act, gs.MayAct
		claims.AMR, claims.ACR = gs.AMR, gs.ACR
	}
	// Marshalled once with encoding/json and signed as is: go-jose's JWT
	// builder would re-decode the claims into a map and encode them again,
	// a fifth of the token endpoint's time.
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", "", fmt.Errorf("encode access token claims: %w", err)
	}
	jws, err := key.Signer.Sign(payload)
	if err != nil {
		return "", "", fmt.Errorf("sign access token: %w", err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		return "", "", fmt.Errorf("serialize access token: %w", err)
	}
	return token, s.AccessTokenSignature(context.Background(), token), nil
}

// ValidateAccessToken verifies signature, type, issuer and expiry. An
// opaque access token (issued by an instance in opaque mode, or before a
// switch to JWTs) is the HMAC strategy's to check.
func (s *jwtStrategy) ValidateAccessToken(ctx context.Context, r fosite.Requester, token string) error {
	if !isJWT(token) {
		return s.clockedHMAC.ValidateAccessToken(ctx, r, token)
	}
	_, err := s.verify(token)
	return err
}

// verify checks a JWT access token against the published keys. The
// algorithm list is pinned, so "none" and HMAC-with-a-public-key tricks
// never reach a key.
func (s *jwtStrategy) verify(token string) (*accessClaims, error) {
	if c, kid := s.verified.get(token, s.now()); c != nil {
		// A key that left the JWKS (retired after a secret rotation, say)
		// takes the tokens it signed with it, verified before or not.
		if _, ok := s.keys.Lookup(kid); ok {
			return c, nil
		}
	}
	parsed, err := jwt.ParseSigned(token, keys.Algorithms)
	if err != nil {
		return nil, fosite.ErrInvalidTokenFormat.WithWrap(err)
	}
	if len(parsed.Headers) != 1 {
		return nil, fosite.ErrInvalidTokenFormat.WithHint("The token must have exactly one signature.")
	}
	h := parsed.Headers[0]
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return nil, fosite.ErrInvalidTokenFormat.WithHint("The token is not an access token (typ at+jwt).")
	}
	key, ok := s.keys.Lookup(h.KeyID)
	if !ok || string(key.Alg) != h.Algorithm {
		return nil, fosite.ErrTokenSignatureMismatch.WithHint("The token is not signed by a published key.")
	}
	var c accessClaims
	if err := parsed.Claims(key.Public.Key, &c); err != nil {
		return nil, fosite.ErrTokenSignatureMismatch.WithWrap(err)
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: s.issuer, Time: s.now()}, 0); err != nil {
		if errors.Is(err, jwt.ErrExpired) {
			return nil, fosite.ErrTokenExpired.WithWrap(err)
		}
		return nil, fosite.ErrTokenClaim.WithWrap(err)
	}
	if c.Expiry == nil || c.IssuedAt == nil || c.ID == "" || c.ClientID == "" || c.GrantID == "" {
		return nil, fosite.ErrTokenClaim.WithHint("The token lacks exp, iat, jti, client_id or gid.")
	}
	// fosite rounds the session's expiry to the second and iat is
	// truncated, so a genuine token exceeds the lifetime by a second at most.
	if c.Expiry.Time().Sub(c.IssuedAt.Time()) > s.maxLifetime+time.Second {
		return nil, fosite.ErrTokenClaim.WithHint("The token claims a longer lifetime than access tokens are issued for.")
	}
	s.verified.put(token, h.KeyID, &c)
	return &c, nil
}

// everyFormat is the store as the grant and revocation handlers see it:
// revoking a grant's access tokens deletes its opaque rows and records the
// grant as revoked for its JWTs, whichever format this instance issues. A
// grant holds tokens of both formats when LATCHKEY_ACCESS_TOKEN_FORMAT is
// switched on a live database, or when a fleet runs both during the switch.
type everyFormat struct {
	Store
	// revokeFor is how long a grant stays on the deny-list: longer than
	// any access token issued under it lives.
	revokeFor time.Duration
	now       func() time.Time
}

func (s everyFormat) RevokeAccessToken(ctx context.Context, requestID string) error {
	return s.Store.InTx(ctx, func(ctx context.Context) error {
		if err := s.Store.RevokeAccessToken(ctx, requestID); err != nil {
			return err
		}
		return s.Store.DenyGrantJWTs(ctx, requestID, s.now().Add(s.revokeFor))
	})
}

// statelessAccessTokens is the store as the grant handlers see it when
// access tokens are JWTs: issuing one writes nothing, and revoking a
// grant's access tokens records the grant as revoked until the last of them
// has expired, since the tokens themselves cannot be deleted.
type statelessAccessTokens struct {
	everyFormat
}

func (s statelessAccessTokens) CreateAccessTokenSession(context.Context, string, fosite.Requester) error {
	return nil
}

// jwtIntrospector answers introspection for JWT access tokens: signature,
// expiry, then the deny-lists, in one indexed read.
type jwtIntrospector struct {
	strategy *jwtStrategy
	store    JWTStore
	scopes   fosite.ScopeStrategy
}

var _ fosite.TokenIntrospector = (*jwtIntrospector)(nil)

func (v *jwtIntrospector) IntrospectToken(ctx context.Context, token string, _ fosite.TokenUse, ar fosite.AccessRequester, scopes []string) (fosite.TokenUse, error) {
	if !isJWT(token) {
		return "", fosite.ErrUnknownRequest
	}
	c, err := v.strategy.verify(token)
	if err != nil {
		return "", err
	}
	revoked, err := v.store.IsRevoked(ctx, c.ID, c.GrantID, c.Subject, c.IssuedAt.Time())
	if err != nil {
		return "", fosite.ErrServerError.WithWrap(err)
	}
	if revoked {
		return "", fosite.ErrInactiveToken.WithHint("The token or its grant was revoked.")
	}
	// A deleted client's tokens die with it (the cache sees deletions on
	// every instance at once).
	client, err := v.store.FindClient(ctx, c.ClientID)
	if errors.Is(err, store.ErrNotFound) {
		return "", fosite.ErrInactiveToken.WithHint("The client no longer exists.")
	}
	if err != nil {
		return "", fosite.ErrServerError.WithWrap(err)
	}
	granted := fosite.Arguments(strings.Fields(c.Scope))
	for _, s := range scopes {
		if s != "" && !v.scopes(granted, s) {
			return "", fosite.ErrInvalidScope.WithHintf("The scope '%s' was not granted.", s)
		}
	}
	sess := grantsession.New(c.Subject)
	sess.TokenID = c.ID
	if c.Cnf != nil {
		sess.CnfJKT = c.Cnf.JKT
	}
	sess.Act, sess.MayAct = c.Act, c.MayAct
	sess.AMR, sess.ACR = c.AMR, c.ACR
	sess.SetExpiresAt(fosite.AccessToken, c.Expiry.Time())
	req := &fosite.Request{
		ID:              c.GrantID,
		RequestedAt:     c.IssuedAt.Time(),
		Client:          client,
		GrantedScope:    granted,
		GrantedAudience: fosite.Arguments(c.Audience),
		Form:            map[string][]string{},
		Session:         sess,
	}
	ar.Merge(req)
	return fosite.AccessToken, nil
}

// hmacOnly keeps fosite's HMAC validator away from JWTs: fosite stops at the
// first validator that fails, so it must step aside rather than fail.
type hmacOnly struct {
	*oauth2.CoreValidator
}

func (v hmacOnly) IntrospectToken(ctx context.Context, token string, use fosite.TokenUse, ar fosite.AccessRequester, scopes []string) (fosite.TokenUse, error) {
	if isJWT(token) {
		return "", fosite.ErrUnknownRequest
	}
	return v.CoreValidator.IntrospectToken(ctx, token, use, ar, scopes)
}

// hmacRevoker revokes an opaque access token or a refresh token (RFC 7009)
// by revoking its whole grant in one transaction: refresh tokens, opaque
// access tokens, unused codes and the grant's JWTs, under the grant lock.
// It replaces fosite's handler, which revoked in two transactions (taking
// the lock three times) and read a rotated refresh token as already
// revoked while the chain its successor continues lived on (RFC 7009 §2.1
// asks that revoking a refresh token reach its grant). JWTs are
// jwtRevoker's: they have no rows to find.
type hmacRevoker struct {
	strategy oauth2.CoreStrategy
	// tokens finds a token's grant, live or not.
	tokens interface {
		GetRefreshTokenSession(ctx context.Context, signature string, s fosite.Session) (fosite.Requester, error)
		GetAccessTokenSession(ctx context.Context, signature string, s fosite.Session) (fosite.Requester, error)
		DeleteAccessTokenSession(ctx context.Context, signature string) error
	}
	grants interface {
		RevokeGrant(ctx context.Context, requestID string, until time.Time) error
	}
	revokeFor time.Duration // config.Config.RevocationWindow
	now       func() time.Time
}

var _ fosite.RevocationHandler = hmacRevoker{}

func (r hmacRevoker) RevokeToken(ctx context.Context, token string, hint fosite.TokenType, c fosite.Client) error {
	if isJWT(token) {
		return fosite.ErrUnknownRequest
	}
	lookups := []func() (fosite.Requester, error){
		func() (fosite.Requester, error) {
			return r.tokens.GetRefreshTokenSession(ctx, r.strategy.RefreshTokenSignature(ctx, token), nil)
		},
		func() (fosite.Requester, error) {
			return r.tokens.GetAccessTokenSession(ctx, r.strategy.AccessTokenSignature(ctx, token), nil)
		},
	}
	if hint == fosite.AccessToken {
		lookups[0], lookups[1] = lookups[1], lookups[0]
	}
	for _, lookup := range lookups {
		// An inactive row comes back with its request: a rotated or revoked
		// token still names its grant.
		req, err := lookup()
		if req == nil {
			if err != nil && !errors.Is(err, fosite.ErrNotFound) {
				return fosite.ErrTemporarilyUnavailable.WithWrap(err)
			}
			continue
		}
		if req.GetClient().GetID() != c.GetID() {
			return fosite.ErrUnauthorizedClient.WithHint("The token was issued to another client.")
		}
		// An exchanged access token (act; only access tokens carry it)
		// lives in another client's grant: it goes alone, as its JWT twin
		// does in jwtRevoker.
		if gs, ok := req.GetSession().(*grantsession.Session); ok && gs.Act != nil {
			if err := r.tokens.DeleteAccessTokenSession(ctx, r.strategy.AccessTokenSignature(ctx, token)); err != nil && !errors.Is(err, fosite.ErrNotFound) {
				return fosite.ErrTemporarilyUnavailable.WithWrap(err)
			}
			return nil
		}
		if err := r.grants.RevokeGrant(ctx, req.GetID(), r.now().Add(r.revokeFor)); err != nil {
			return fosite.ErrTemporarilyUnavailable.WithWrap(err)
		}
		return nil
	}
	// Unknown tokens are not an error (RFC 7009 §2.2).
	return nil
}

// jwtRevoker revokes a JWT access token (RFC 7009): a client-credentials
// token's jti goes on the deny-list until it expires; a user grant is
// revoked whole, refresh tokens and opaque access tokens included, as
// revoking an opaque token does. It runs whatever format this instance
// issues: JWTs issued before a switch to opaque tokens live on until they
// expire.
type jwtRevoker struct {
	strategy  *jwtStrategy
	store     JWTStore
	revokeFor time.Duration // config.Config.RevocationWindow
}

var _ fosite.RevocationHandler = (*jwtRevoker)(nil)

func (r *jwtRevoker) RevokeToken(ctx context.Context, token string, _ fosite.TokenType, client fosite.Client) error {
	if !isJWT(token) {
		return fosite.ErrUnknownRequest
	}
	c, err := r.strategy.verify(token)
	if err != nil {
		// Invalid or expired: nothing to revoke (RFC 7009 §2.2).
		return nil
	}
	if c.ClientID != client.GetID() {
		return fosite.ErrUnauthorizedClient.WithHint("The token was issued to another client.")
	}
	if c.Subject == c.ClientID || c.Act != nil {
		// Client credentials: the grant is this one token and has no
		// refresh tokens, so the deny-list entry is the whole revocation,
		// one small write. An exchanged token (act) lives in a grant that
		// belongs to another client: revoking it must not sign the person
		// out of that client, so only the token itself goes.
		return r.store.RevokeJTI(ctx, c.ID, c.Expiry.Time())
	}
	// The grant's deny-list entry outlives every token issued under it, so
	// it covers this token too: no jti row of its own.
	return r.store.RevokeGrant(ctx, c.GrantID, r.strategy.now().Add(r.revokeFor))
}
