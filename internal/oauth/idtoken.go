package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/ory/fosite"
)

// idTokenClaims are the claims of an ID token (OpenID Connect Core 1.0
// §2, §5.1). aud is always the one client, so it is a single string (Core
// §2 allows it, and every library reads it) and azp, which Core asks for
// only when aud has several values, is left out.
type idTokenClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience string   `json:"aud"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	AuthTime int64    `json:"auth_time,omitempty"`
	Nonce    string   `json:"nonce,omitempty"`
	AtHash   string   `json:"at_hash,omitempty"`
	SID      string   `json:"sid,omitempty"`
	AMR      []string `json:"amr,omitempty"`
	ACR      string   `json:"acr,omitempty"`
	userClaims
}

// userClaims are the standard claims of a person (Core §5.1) the granted
// scopes allow (Core §5.4), each left out when the user has no value.
// userinfo answers the same claims for the same scopes.
type userClaims struct {
	// profile
	Name              string `json:"name,omitempty"`
	GivenName         string `json:"given_name,omitempty"`
	FamilyName        string `json:"family_name,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Picture           string `json:"picture,omitempty"`
	Locale            string `json:"locale,omitempty"`
	UpdatedAt         int64  `json:"updated_at,omitempty"`
	// email: email_verified only alongside an email, where false means
	// something.
	Email         string `json:"email,omitempty"`
	EmailVerified *bool  `json:"email_verified,omitempty"`
	// groups: not a Core claim; the name Kubernetes and oauth2-proxy read.
	Groups []string `json:"groups,omitempty"`
}

// claimScopes are the scopes that release claims read from the user.
var claimScopes = []string{ScopeProfile, ScopeEmail, ScopeGroups}

// profileClaims picks the claims of u that scopes allow.
func profileClaims(u *store.User, scopes fosite.Arguments) userClaims {
	var c userClaims
	if scopes.Has(ScopeProfile) {
		c.Name, c.GivenName, c.FamilyName = u.Name, u.GivenName, u.FamilyName
		c.PreferredUsername, c.Picture, c.Locale = u.Username, u.Picture, u.Locale
		if !u.UpdatedAt.IsZero() {
			c.UpdatedAt = u.UpdatedAt.Unix()
		}
	}
	if scopes.Has(ScopeEmail) && u.Email != "" {
		verified := u.EmailVerified
		c.Email, c.EmailVerified = u.Email, &verified
	}
	if scopes.Has(ScopeGroups) && len(u.Groups) > 0 {
		c.Groups = u.Groups
	}
	return c
}

// idTokenPlan is what an ID token needs that can fail, gathered before
// fosite writes any token: a request that cannot get its ID token (the
// user is gone, the database is down, no key for the client's algorithm)
// fails without leaving tokens behind.
type idTokenPlan struct {
	key  *keys.Key
	user *store.User
}

// planIDToken decides whether the token response carries an ID token
// (scope openid granted to a person, Core §3.1.3.3) and prepares it. It
// reads the user only when a scope releases claims of theirs: with openid
// alone the grant itself proves the user (deleting one revokes its codes
// and refresh tokens), and the refresh path stays one read lighter.
func (p *Provider) planIDToken(ctx context.Context, ar fosite.AccessRequester) (*idTokenPlan, error) {
	// Token exchange issues an access token only (RFC 8693 §2.2.1): the
	// person is not present, so there is nothing an ID token could attest.
	if ar.GetGrantTypes().ExactOne("client_credentials") || ar.GetGrantTypes().ExactOne(GrantTypeTokenExchange) {
		return nil, nil
	}
	granted := ar.GetGrantedScopes()
	if ar.GetGrantTypes().ExactOne("authorization_code") {
		// Granted to the request only as fosite issues the tokens
		// (codeScopes in provider.go).
		if s, ok := ar.GetSession().(*grantsession.Session); ok {
			granted = s.CodeScopes
		}
	}
	if !granted.Has(ScopeOpenID) {
		return nil, nil
	}
	client, ok := ar.GetClient().(*store.Client)
	if !ok {
		return nil, fosite.ErrServerError.WithHint("Unexpected client type.")
	}
	key, err := p.keys.CurrentFor(jose.SignatureAlgorithm(client.IDTokenAlg()))
	if errors.Is(err, keys.ErrNoSigningKey) {
		// Right after an upgrade from a database with one algorithm's keys,
		// the new chains are published but not yet signing (keys.New). A
		// published key of another algorithm beats refusing every sign-in
		// for the pre-publication period; a client that pinned its alg
		// refuses the token, as it would have refused the error.
		if cur, curErr := p.keys.Current(); curErr == nil {
			p.log.WarnContext(ctx, "no active key for the client's ID token algorithm yet; signing with the access token key",
				"client_id", client.ID, "want_alg", client.IDTokenAlg(), "alg", cur.Alg)
			key, err = cur, nil
		}
	}
	if err != nil {
		return nil, fosite.ErrServerError.WithHintf("No key signs ID tokens with %s.", client.IDTokenAlg()).WithWrap(err).WithDebug(err.Error())
	}
	plan := &idTokenPlan{key: key}
	if !granted.HasOneOf(claimScopes...) {
		return plan, nil
	}
	u, err := p.store.FindUser(ctx, ar.GetSession().GetSubject())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, fosite.ErrInvalidGrant.WithHint("The user of this grant no longer exists.")
	case errors.Is(err, store.ErrUnavailable):
		return nil, err
	case err != nil:
		return nil, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	plan.user = u
	return plan, nil
}

// issueIDToken signs the ID token of a token response whose access token
// is already made, and adds it to the response. One marshal, one
// signature.
//
// exp is iat plus the access token lifetime: a key retires from signing
// no sooner than that before it leaves the JWKS, so an ID token never
// outlives the key that verifies it, and the ID token lives as long as
// the access token issued with it.
func (p *Provider) issueIDToken(ar fosite.AccessRequester, resp fosite.AccessResponder, plan *idTokenPlan) error {
	sess, ok := ar.GetSession().(*grantsession.Session)
	if !ok {
		return fosite.ErrServerError.WithHint("Unexpected session type.")
	}
	now := p.now().UTC()
	claims := idTokenClaims{
		Issuer:   p.cfg.Issuer,
		Subject:  sess.Subject,
		Audience: ar.GetClient().GetID(),
		IssuedAt: now.Unix(),
		Expiry:   now.Add(p.cfg.AccessTokenTTL).Unix(),
		AuthTime: unix(sess.AuthTime),
		SID:      sess.SID,
		AMR:      sess.AMR,
		ACR:      sess.ACR,
	}
	// Core §12.2: a refreshed ID token carries no nonce; only the code
	// exchange echoes the authorization request's.
	if ar.GetGrantTypes().ExactOne("authorization_code") {
		claims.Nonce = sess.Nonce
	}
	if at := resp.GetAccessToken(); at != "" {
		claims.AtHash = atHash(plan.key.Alg, at)
	}
	if plan.user != nil {
		claims.userClaims = profileClaims(plan.user, ar.GetGrantedScopes())
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return fosite.ErrServerError.WithWrap(fmt.Errorf("encode ID token claims: %w", err))
	}
	token, err := plan.key.Sign(keys.TypIDToken, payload)
	if err != nil {
		return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	resp.SetExtra("id_token", token)
	return nil
}

// atHash is the at_hash of an access token (Core §3.1.3.6): the left half
// of the hash of its ASCII octets, base64url without padding. The hash is
// the one of the signing algorithm: SHA-256 for RS256 and ES256, SHA-512
// for EdDSA (Ed25519 hashes with SHA-512; the OpenID Foundation's
// conformance suite and other OPs use it).
func atHash(alg jose.SignatureAlgorithm, accessToken string) string {
	var h hash.Hash
	if alg == jose.EdDSA {
		h = sha512.New()
	} else {
		h = sha256.New()
	}
	h.Write([]byte(accessToken))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}
