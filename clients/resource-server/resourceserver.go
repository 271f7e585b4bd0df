// Package resourceserver protects an HTTP API with Latchkey's access tokens.
// It verifies RFC 9068 JWT access tokens locally against the issuer's JWKS
// (keys cached, refetched at a bounded rate when an unknown kid appears,
// algorithms pinned), or, in introspection mode, asks Latchkey (RFC 7662)
// with a short cache. Failures answer as RFC 6750 says: 401 with
// WWW-Authenticate: Bearer error="invalid_token" for a missing, malformed,
// expired or revoked token, 403 insufficient_scope for a missing scope.
package resourceserver

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Config describes the issuer and what this API accepts.
type Config struct {
	// Issuer is Latchkey's issuer URL, the expected "iss".
	Issuer string
	// Audience must be in the token's "aud": this API's identifier.
	Audience string
	// JWKSURL defaults to Issuer + "/.well-known/jwks.json".
	JWKSURL string
	// Algorithms are the only ones accepted (default ES256, RS256, EdDSA).
	Algorithms []jose.SignatureAlgorithm
	// RefetchInterval bounds how often an unknown kid makes the JWKS be
	// fetched again (default 10s): a flood of forged kids cannot turn this
	// API into a client hammering the issuer.
	RefetchInterval time.Duration
	// Leeway tolerates clock skew on exp, nbf and iat (default 30s).
	Leeway time.Duration

	// Introspection mode: set IntrospectionURL and the confidential
	// client's credentials. Every token is then checked by Latchkey, and a
	// revocation is seen within IntrospectionCacheTTL (default 5s).
	IntrospectionURL      string
	ClientID              string
	ClientSecret          string
	IntrospectionCacheTTL time.Duration

	HTTPClient *http.Client
	Now        func() time.Time
}

// Claims is what a request may learn about its token.
type Claims struct {
	Subject  string
	ClientID string
	Scopes   []string
	Audience []string
	Expiry   time.Time
	ID       string
}

// HasScope reports whether the token carries scope.
func (c *Claims) HasScope(scope string) bool { return slices.Contains(c.Scopes, scope) }

// ErrInvalidToken covers every reason a token is refused: unknown key,
// bad signature, wrong type, issuer or audience, expired, revoked.
var ErrInvalidToken = errors.New("invalid token")

// Verifier checks tokens.
type Verifier struct {
	cfg Config

	mu        sync.Mutex
	keys      jose.JSONWebKeySet
	fetchedAt time.Time

	cacheMu sync.Mutex
	cache   map[[32]byte]cached
}

type cached struct {
	claims *Claims
	until  time.Time
}

// New checks the configuration. Keys are fetched on first use.
func New(cfg Config) (*Verifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("resourceserver: Issuer and Audience are required")
	}
	if cfg.JWKSURL == "" {
		cfg.JWKSURL = strings.TrimSuffix(cfg.Issuer, "/") + "/.well-known/jwks.json"
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA}
	}
	if cfg.RefetchInterval <= 0 {
		cfg.RefetchInterval = 10 * time.Second
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.IntrospectionCacheTTL <= 0 {
		cfg.IntrospectionCacheTTL = 5 * time.Second
	}
	if cfg.IntrospectionURL != "" && (cfg.ClientID == "" || cfg.ClientSecret == "") {
		return nil, errors.New("resourceserver: introspection needs ClientID and ClientSecret")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Verifier{cfg: cfg, cache: map[[32]byte]cached{}}, nil
}

// Verify checks a token and returns its claims, or an error wrapping
// ErrInvalidToken.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if v.cfg.IntrospectionURL != "" {
		return v.introspect(ctx, token)
	}
	return v.verifyJWT(ctx, token)
}

type accessClaims struct {
	jwt.Claims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
}

func (v *Verifier) verifyJWT(ctx context.Context, token string) (*Claims, error) {
	parsed, err := jwt.ParseSigned(token, v.cfg.Algorithms)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	h := parsed.Headers[0]
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return nil, fmt.Errorf("%w: not an access token (typ %q)", ErrInvalidToken, typ)
	}
	key, err := v.key(ctx, h.KeyID, h.Algorithm)
	if err != nil {
		return nil, err
	}
	var c accessClaims
	if err := parsed.Claims(key.Key, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: v.cfg.Issuer, AnyAudience: jwt.Audience{v.cfg.Audience}, Time: v.cfg.Now()}, v.cfg.Leeway); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if c.Expiry == nil {
		return nil, fmt.Errorf("%w: no exp", ErrInvalidToken)
	}
	return &Claims{Subject: c.Subject, ClientID: c.ClientID, Scopes: strings.Fields(c.Scope), Audience: c.Audience, Expiry: c.Expiry.Time(), ID: c.ID}, nil
}

// key finds a published key, fetching the JWKS on first use and again,
// at most every RefetchInterval, when a kid is unknown (a rotation).
func (v *Verifier) key(ctx context.Context, kid, alg string) (*jose.JSONWebKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	find := func() *jose.JSONWebKey {
		for i, k := range v.keys.Keys {
			if k.KeyID == kid && (k.Algorithm == "" || k.Algorithm == alg) && k.Use != "enc" {
				return &v.keys.Keys[i]
			}
		}
		return nil
	}
	if k := find(); k != nil {
		return k, nil
	}
	if !v.fetchedAt.IsZero() && v.cfg.Now().Sub(v.fetchedAt) < v.cfg.RefetchInterval {
		return nil, fmt.Errorf("%w: unknown key %q", ErrInvalidToken, kid)
	}
	v.fetchedAt = v.cfg.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch JWKS: %s", resp.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("decode JWKS: %w", err)
	}
	v.keys = set
	if k := find(); k != nil {
		return k, nil
	}
	return nil, fmt.Errorf("%w: unknown key %q", ErrInvalidToken, kid)
}

// introspect asks Latchkey, remembering answers for a few seconds.
func (v *Verifier) introspect(ctx context.Context, token string) (*Claims, error) {
	sum := sha256.Sum256([]byte(token))
	now := v.cfg.Now()
	v.cacheMu.Lock()
	if c, ok := v.cache[sum]; ok && now.Before(c.until) {
		v.cacheMu.Unlock()
		if c.claims == nil {
			return nil, fmt.Errorf("%w: inactive", ErrInvalidToken)
		}
		return c.claims, nil
	}
	v.cacheMu.Unlock()

	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, v.cfg.IntrospectionURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(v.cfg.ClientID), url.QueryEscape(v.cfg.ClientSecret))
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("introspect: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("introspect: %s", resp.Status)
	}
	var in struct {
		Active   bool     `json:"active"`
		Sub      string   `json:"sub"`
		ClientID string   `json:"client_id"`
		Scope    string   `json:"scope"`
		Aud      []string `json:"aud"`
		Exp      int64    `json:"exp"`
		Jti      string   `json:"jti"`
		Iss      string   `json:"iss"`
		Type     string   `json:"token_type"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&in); err != nil {
		return nil, fmt.Errorf("introspect: %w", err)
	}
	var claims *Claims
	if in.Active && in.Iss == v.cfg.Issuer && strings.EqualFold(in.Type, "Bearer") && slices.Contains(in.Aud, v.cfg.Audience) {
		claims = &Claims{Subject: in.Sub, ClientID: in.ClientID, Scopes: strings.Fields(in.Scope), Audience: in.Aud, Expiry: time.Unix(in.Exp, 0), ID: in.Jti}
	}
	until := now.Add(v.cfg.IntrospectionCacheTTL)
	if claims != nil && claims.Expiry.Before(until) {
		until = claims.Expiry
	}
	v.cacheMu.Lock()
	if len(v.cache) > 10000 {
		clear(v.cache)
	}
	v.cache[sum] = cached{claims: claims, until: until}
	v.cacheMu.Unlock()
	if claims == nil {
		return nil, fmt.Errorf("%w: inactive", ErrInvalidToken)
	}
	return claims, nil
}

type claimsKey struct{}

// FromContext returns the claims the middleware put in the request context.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok
}

// Middleware requires a valid bearer token carrying every scope in scopes.
func (v *Verifier) Middleware(scopes ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || token == "" {
				// RFC 6750 §3.1: no error code when no token was sent.
				challenge(w, http.StatusUnauthorized, `Bearer realm="api"`)
				return
			}
			claims, err := v.Verify(r.Context(), token)
			if err != nil {
				if !errors.Is(err, ErrInvalidToken) {
					// The issuer could not be reached: not the client's fault.
					challenge(w, http.StatusServiceUnavailable, "")
					return
				}
				challenge(w, http.StatusUnauthorized, `Bearer realm="api", error="invalid_token", error_description="the access token is invalid, expired or revoked"`)
				return
			}
			for _, s := range scopes {
				if !claims.HasScope(s) {
					challenge(w, http.StatusForbidden, fmt.Sprintf(`Bearer realm="api", error="insufficient_scope", scope=%q`, strings.Join(scopes, " ")))
					return
				}
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)))
		})
	}
}

func challenge(w http.ResponseWriter, status int, header string) {
	if header != "" {
		w.Header().Set("WWW-Authenticate", header)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "{\"error\":%q}\n", http.StatusText(status))
}
