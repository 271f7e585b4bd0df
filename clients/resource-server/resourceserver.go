// Package resourceserver protects an HTTP API with Latchkey's access tokens.
// It verifies RFC 9068 JWT access tokens locally against the issuer's JWKS
// (keys cached for at most MaxKeyAge, refetched at a bounded rate when an
// unknown kid appears, the fetch made outside any lock with a short timeout
// so that valid tokens wait for it only when the keys have aged out,
// algorithms pinned), or, in introspection mode, asks Latchkey
// (RFC 7662) with a short cache and a bounded rate of calls. Failures answer as RFC 6750 says: 401 with
// WWW-Authenticate: Bearer error="invalid_token" for a missing, malformed,
// expired or revoked token, 403 insufficient_scope for a missing scope.
//
// With Config.ExternalURL set it also accepts DPoP-bound tokens (RFC 9449
// §7): Authorization: DPoP with a proof of possession of the key named by
// the token's cnf.jkt (dpop.go); such a token sent as a bearer token is
// refused, and failures answer WWW-Authenticate: DPoP
// error="invalid_dpop_proof".
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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
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
	// MaxKeyAge is how long fetched keys are trusted before the JWKS is
	// fetched again (default 5m, what Latchkey's JWKS says in its
	// Cache-Control): a key the issuer revokes (latchkey keys revoke)
	// stops verifying here within it. While the issuer cannot be reached
	// the keys already fetched stay in use.
	MaxKeyAge time.Duration
	// Leeway tolerates clock skew on exp, nbf and iat (default 30s).
	Leeway time.Duration
	// FetchTimeout bounds one JWKS fetch or one introspection call
	// (default 3s): a hanging issuer costs a request at most this long.
	FetchTimeout time.Duration
	// MaxTokenLifetime refuses a JWT whose exp - iat is longer: set it to
	// Latchkey's LATCHKEY_ACCESS_TOKEN_TTL (default 15m, Latchkey's
	// default; negative turns the check off). Latchkey never signs a longer
	// token, so one that claims to was made with a stolen key, for example
	// one opened with an old LATCHKEY_SECRET and a backup, and it would
	// otherwise be accepted for as long as it says.
	MaxTokenLifetime time.Duration

	// Introspection mode: set IntrospectionURL and the confidential
	// client's credentials. Every token is then checked by Latchkey, and a
	// revocation is seen within IntrospectionCacheTTL (default 5s): a
	// revoked token is still accepted until its cached answer expires.
	IntrospectionURL      string
	ClientID              string
	ClientSecret          string
	IntrospectionCacheTTL time.Duration
	// IntrospectionRate and IntrospectionBurst bound the calls made for
	// tokens not in the cache (default 20 a second, burst 40). Anyone can
	// send random strings as bearer tokens; without a bound each one costs a
	// call to Latchkey. Past the bound such a request answers 503 (see
	// ErrBusy) while cached tokens keep working.
	IntrospectionRate  rate.Limit
	IntrospectionBurst int

	// DPoP (RFC 9449). ExternalURL is this API's own URL as its clients
	// call it (scheme, host and any path prefix): a proof's htu must be
	// ExternalURL + the request path. It is configured, not taken from the
	// request, because the Host header is the sender's to choose. Without
	// it, tokens sent with the DPoP scheme are refused.
	ExternalURL string
	// DPoPAlgorithms are the proof algorithms accepted (default ES256,
	// ES384, ES512, RS256, PS256, EdDSA); only asymmetric ones may be given.
	DPoPAlgorithms []jose.SignatureAlgorithm
	// DPoPProofLifetime: a proof is accepted while its iat is at most this
	// old (default 1m) and at most Leeway ahead; its jti is remembered as long.
	DPoPProofLifetime time.Duration
	// MaxDPoPProofs bounds the replay cache (default 100000 live proofs).
	// Past it new proofs are refused with 503 rather than forgetting one
	// that could then be replayed. The cache is per process: see README.
	MaxDPoPProofs int
	// DPoPNonce makes every proof carry a nonce this API issued (§9):
	// without it the answer is 401 error="use_dpop_nonce" with a DPoP-Nonce
	// header. Nonces rotate every DPoPNonceLifetime (default 5m; the
	// previous one is still accepted) and are HMACs under DPoPNonceKey
	// (random when empty): give every instance of the API the same key.
	DPoPNonce         bool
	DPoPNonceLifetime time.Duration
	DPoPNonceKey      []byte

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
	// JKT is the token's cnf.jkt (RFC 9449 §6): the thumbprint of the key
	// it is bound to; empty for a bearer token.
	JKT string
}

// HasScope reports whether the token carries scope.
func (c *Claims) HasScope(scope string) bool { return slices.Contains(c.Scopes, scope) }

// ErrInvalidToken covers every reason a token is refused: unknown key,
// bad signature, wrong type, issuer or audience, expired, revoked.
var ErrInvalidToken = errors.New("invalid token")

// ErrBusy means the token could not be checked now: too many unknown tokens
// are being introspected. It is not the client's fault (503, not 401).
var ErrBusy = errors.New("too many tokens to introspect")

// Verifier checks tokens.
type Verifier struct {
	cfg Config

	// keys is read without a lock: verification of a token signed by a
	// known key never waits, even while a fetch hangs.
	keys atomic.Pointer[jose.JSONWebKeySet]
	// keysAt is when keys was fetched (UnixNano), for MaxKeyAge.
	keysAt atomic.Int64
	// fetchMu guards fetchedAt and inflight; it is never held across a fetch.
	fetchMu   sync.Mutex
	fetchedAt time.Time
	inflight  bool
	// fetches runs one JWKS fetch at a time and one introspection per token.
	fetches singleflight.Group

	limiter *rate.Limiter
	cacheMu sync.Mutex
	// Active answers and refusals are kept apart, so a flood of random
	// strings can only evict refusals, never the valid tokens' entries.
	active, inactive map[[32]byte]cached

	replay *replayCache
}

// maxCached bounds each introspection cache.
const maxCached = 10000

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
	if cfg.MaxKeyAge <= 0 {
		cfg.MaxKeyAge = 5 * time.Minute
	}
	if cfg.RefetchInterval <= 0 {
		cfg.RefetchInterval = 10 * time.Second
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = 3 * time.Second
	}
	if cfg.MaxTokenLifetime == 0 {
		cfg.MaxTokenLifetime = 15 * time.Minute
	}
	if cfg.IntrospectionCacheTTL <= 0 {
		cfg.IntrospectionCacheTTL = 5 * time.Second
	}
	if cfg.IntrospectionRate <= 0 {
		cfg.IntrospectionRate = 20
	}
	if cfg.IntrospectionBurst <= 0 {
		cfg.IntrospectionBurst = 40
	}
	if cfg.IntrospectionURL != "" && (cfg.ClientID == "" || cfg.ClientSecret == "") {
		return nil, errors.New("resourceserver: introspection needs ClientID and ClientSecret")
	}
	if err := checkDPoPConfig(&cfg); err != nil {
		return nil, err
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Verifier{cfg: cfg, limiter: rate.NewLimiter(cfg.IntrospectionRate, cfg.IntrospectionBurst),
		active: map[[32]byte]cached{}, inactive: map[[32]byte]cached{},
		replay: &replayCache{seen: map[[32]byte]time.Time{}, max: cfg.MaxDPoPProofs}}, nil
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
	ClientID string        `json:"client_id"`
	Scope    string        `json:"scope"`
	Cnf      *confirmation `json:"cnf"`
}

// confirmation is RFC 7800's cnf claim, with RFC 9449's jkt member.
type confirmation struct {
	JKT string `json:"jkt"`
}

func (c *confirmation) jkt() string {
	if c == nil {
		return ""
	}
	return c.JKT
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
	if v.cfg.MaxTokenLifetime > 0 {
		// Latchkey rounds exp to the second, hence the second of slack.
		if c.IssuedAt == nil {
			return nil, fmt.Errorf("%w: no iat", ErrInvalidToken)
		}
		if life := c.Expiry.Time().Sub(c.IssuedAt.Time()); life > v.cfg.MaxTokenLifetime+time.Second {
			return nil, fmt.Errorf("%w: lifetime %s exceeds %s", ErrInvalidToken, life, v.cfg.MaxTokenLifetime)
		}
	}
	return &Claims{Subject: c.Subject, ClientID: c.ClientID, Scopes: strings.Fields(c.Scope), Audience: c.Audience, Expiry: c.Expiry.Time(), ID: c.ID, JKT: c.Cnf.jkt()}, nil
}

// key finds a published key, fetching the JWKS on first use, once the keys
// are older than MaxKeyAge (a revoked key goes), and, at most every
// RefetchInterval, when a kid is unknown (a rotation). The fetch
// runs outside any lock, once however many requests want it, and for at
// most FetchTimeout; a request whose kid is known never waits for it.
func (v *Verifier) key(ctx context.Context, kid, alg string) (*jose.JSONWebKey, error) {
	now := v.cfg.Now()
	known := findKey(v.keys.Load(), kid, alg)
	if known != nil && now.Sub(time.Unix(0, v.keysAt.Load())) < v.cfg.MaxKeyAge {
		return known, nil
	}
	v.fetchMu.Lock()
	due := v.fetchedAt.IsZero() || now.Sub(v.fetchedAt) >= v.cfg.RefetchInterval
	if !due && !v.inflight {
		v.fetchMu.Unlock()
		if known != nil {
			// Old, but a fetch was just tried: the issuer is not answering.
			return known, nil
		}
		if v.keys.Load() == nil {
			// The last fetch failed: the issuer is unreachable, not the token wrong.
			return nil, fmt.Errorf("fetch JWKS: %w", errNoKeys)
		}
		return nil, fmt.Errorf("%w: unknown key %q", ErrInvalidToken, kid)
	}
	if due {
		// Reserved before the fetch is made, so a flood of forged kids
		// makes one fetch per interval, not one per request.
		v.fetchedAt, v.inflight = now, true
	}
	// Under fetchMu, so that a fetch marked in flight is still in the group
	// and this call joins it rather than starting another.
	ch := v.fetches.DoChan("jwks", func() (any, error) {
		defer func() {
			v.fetchMu.Lock()
			v.inflight = false
			v.fetchMu.Unlock()
		}()
		// The fetch serves every request that joined it: it must not end
		// when the first caller goes away, only at FetchTimeout.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.cfg.FetchTimeout)
		defer cancel()
		set, err := v.fetchJWKS(ctx)
		if err != nil {
			return nil, err
		}
		v.keys.Store(set) // a failed fetch keeps the keys we had
		v.keysAt.Store(v.cfg.Now().UnixNano())
		return set, nil
	})
	v.fetchMu.Unlock()
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("fetch JWKS: %w", ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			if known != nil {
				return known, nil
			}
			return nil, res.Err
		}
		if k := findKey(res.Val.(*jose.JSONWebKeySet), kid, alg); k != nil {
			return k, nil
		}
		return nil, fmt.Errorf("%w: unknown key %q", ErrInvalidToken, kid)
	}
}

var errNoKeys = errors.New("no keys fetched yet")

func findKey(set *jose.JSONWebKeySet, kid, alg string) *jose.JSONWebKey {
	if set == nil {
		return nil
	}
	for i, k := range set.Keys {
		if k.KeyID == kid && (k.Algorithm == "" || k.Algorithm == alg) && k.Use != "enc" {
			return &set.Keys[i]
		}
	}
	return nil
}

func (v *Verifier) fetchJWKS(ctx context.Context) (*jose.JSONWebKeySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
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
	return &set, nil
}

// introspect asks Latchkey, remembering answers for IntrospectionCacheTTL:
// a token revoked meanwhile is accepted until its entry expires. Calls for
// tokens not in the cache are rate-limited, and concurrent requests with
// the same token make one call.
func (v *Verifier) introspect(ctx context.Context, token string) (*Claims, error) {
	sum := sha256.Sum256([]byte(token))
	if c, ok := v.cached(sum); ok {
		if c == nil {
			return nil, fmt.Errorf("%w: inactive", ErrInvalidToken)
		}
		return c, nil
	}
	ch := v.fetches.DoChan(string(sum[:]), func() (any, error) {
		if !v.limiter.AllowN(v.cfg.Now(), 1) {
			return nil, ErrBusy
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.cfg.FetchTimeout)
		defer cancel()
		claims, err := v.callIntrospection(ctx, token)
		if err != nil {
			return nil, err
		}
		v.remember(sum, claims)
		return claims, nil
	})
	var res singleflight.Result
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("introspect: %w", ctx.Err())
	case res = <-ch:
	}
	if res.Err != nil {
		return nil, res.Err
	}
	claims := res.Val.(*Claims)
	if claims == nil {
		return nil, fmt.Errorf("%w: inactive", ErrInvalidToken)
	}
	return claims, nil
}

// cached returns a live cache entry: claims, or nil for a refused token.
func (v *Verifier) cached(sum [32]byte) (*Claims, bool) {
	now := v.cfg.Now()
	v.cacheMu.Lock()
	defer v.cacheMu.Unlock()
	if c, ok := v.active[sum]; ok && now.Before(c.until) {
		return c.claims, true
	}
	if c, ok := v.inactive[sum]; ok && now.Before(c.until) {
		return nil, true
	}
	return nil, false
}

func (v *Verifier) remember(sum [32]byte, claims *Claims) {
	now := v.cfg.Now()
	until := now.Add(v.cfg.IntrospectionCacheTTL)
	cache := v.inactive
	if claims != nil {
		cache = v.active
		if claims.Expiry.Before(until) {
			until = claims.Expiry
		}
	}
	v.cacheMu.Lock()
	defer v.cacheMu.Unlock()
	if len(cache) >= maxCached {
		for k, c := range cache {
			if !now.Before(c.until) {
				delete(cache, k)
			}
		}
		if len(cache) >= maxCached {
			clear(cache) // only reachable with that many live entries of one kind
		}
	}
	cache[sum] = cached{claims: claims, until: until}
}

// callIntrospection makes one RFC 7662 call; nil claims mean "not active
// for this API".
func (v *Verifier) callIntrospection(ctx context.Context, token string) (*Claims, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.cfg.IntrospectionURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("introspect: %w", err)
	}
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
		Active   bool          `json:"active"`
		Sub      string        `json:"sub"`
		ClientID string        `json:"client_id"`
		Scope    string        `json:"scope"`
		Aud      []string      `json:"aud"`
		Exp      int64         `json:"exp"`
		Jti      string        `json:"jti"`
		Iss      string        `json:"iss"`
		Type     string        `json:"token_type"`
		Cnf      *confirmation `json:"cnf"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&in); err != nil {
		return nil, fmt.Errorf("introspect: %w", err)
	}
	// A DPoP-bound token introspects as token_type DPoP with cnf.jkt
	// (RFC 9449 §6.2); token_type DPoP without cnf is refused, since there
	// is no key to hold the proof against.
	bearer, dpop := strings.EqualFold(in.Type, "Bearer"), strings.EqualFold(in.Type, "DPoP") && in.Cnf.jkt() != ""
	if in.Active && in.Iss == v.cfg.Issuer && (bearer || dpop) && slices.Contains(in.Aud, v.cfg.Audience) {
		return &Claims{Subject: in.Sub, ClientID: in.ClientID, Scopes: strings.Fields(in.Scope), Audience: in.Aud, Expiry: time.Unix(in.Exp, 0), ID: in.Jti, JKT: in.Cnf.jkt()}, nil
	}
	return nil, nil
}

type claimsKey struct{}

// FromContext returns the claims the middleware put in the request context.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok
}

// Middleware requires a valid access token carrying every scope in scopes:
// a bearer token (RFC 6750), or, when ExternalURL is set, a DPoP-bound token
// with its proof (RFC 9449 §7). A DPoP-bound token sent as a bearer token is
// refused (§7.2): whoever copied it has no key to prove possession with.
func (v *Verifier) Middleware(scopes ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			var claims *Claims
			switch {
			case strings.EqualFold(scheme, "Bearer") && token != "":
				claims = v.bearer(w, r, token)
			case strings.EqualFold(scheme, "DPoP") && token != "" && v.dpopEnabled():
				claims = v.dpop(w, r, token)
			default:
				// RFC 6750 §3.1: no error code when no token was sent.
				v.challenge(w, http.StatusUnauthorized, "Bearer", `realm="api"`)
				return
			}
			if claims == nil {
				return // answered
			}
			for _, s := range scopes {
				if !claims.HasScope(s) {
					v.challenge(w, http.StatusForbidden, schemeOf(claims), fmt.Sprintf(`realm="api", error="insufficient_scope", scope=%q`, strings.Join(scopes, " ")))
					return
				}
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)))
		})
	}
}

func schemeOf(c *Claims) string {
	if c.JKT != "" {
		return "DPoP"
	}
	return "Bearer"
}

const invalidTokenChallenge = `realm="api", error="invalid_token", error_description="the access token is invalid, expired or revoked"`

// bearer checks a token sent with the Bearer scheme, or answers and
// returns nil.
func (v *Verifier) bearer(w http.ResponseWriter, r *http.Request, token string) *Claims {
	claims, err := v.Verify(r.Context(), token)
	if err != nil {
		v.refuseToken(w, "Bearer", err)
		return nil
	}
	if claims.JKT != "" {
		v.challenge(w, http.StatusUnauthorized, "Bearer", `realm="api", error="invalid_token", error_description="a DPoP-bound token needs the DPoP scheme and a proof"`)
		return nil
	}
	return claims
}

// dpop checks a token sent with the DPoP scheme and its proof (RFC 9449
// §4.3, §7.1), or answers and returns nil. The proof is checked first: it
// costs no call to the issuer, so requests without a key cannot make any.
func (v *Verifier) dpop(w http.ResponseWriter, r *http.Request, token string) *Claims {
	jkt, proof, err := v.verifyProof(r, token)
	if errors.Is(err, errUseNonce) {
		w.Header().Set("DPoP-Nonce", v.Nonce())
		v.challenge(w, http.StatusUnauthorized, "DPoP", `error="use_dpop_nonce", error_description="send the nonce given in DPoP-Nonce"`)
		return nil
	}
	if err != nil {
		v.refuseProof(w, err)
		return nil
	}
	claims, err := v.Verify(r.Context(), token)
	if err != nil {
		v.refuseToken(w, "DPoP", err)
		return nil
	}
	if claims.JKT == "" {
		v.challenge(w, http.StatusUnauthorized, "DPoP", `error="invalid_token", error_description="the access token is not DPoP-bound"`)
		return nil
	}
	if claims.JKT != jkt {
		v.refuseProof(w, fmt.Errorf("%w: the proof's key is not the one the token is bound to", ErrInvalidProof))
		return nil
	}
	// Recorded last, once the proof is known to come from the token's
	// holder: nobody else can fill the cache.
	if err := v.recordProof(jkt, proof); err != nil {
		if errors.Is(err, ErrReplayCacheFull) {
			w.Header().Set("Retry-After", "1")
			v.challenge(w, http.StatusServiceUnavailable, "", "")
			return nil
		}
		v.refuseProof(w, err)
		return nil
	}
	if v.cfg.DPoPNonce {
		// §8.2: a fresh nonce on success lets the client keep up with rotation.
		w.Header().Set("DPoP-Nonce", v.Nonce())
	}
	return claims
}

func (v *Verifier) refuseProof(w http.ResponseWriter, err error) {
	desc := strings.ReplaceAll(strings.TrimPrefix(err.Error(), ErrInvalidProof.Error()+": "), `"`, "'")
	v.challenge(w, http.StatusUnauthorized, "DPoP", fmt.Sprintf(`error="invalid_dpop_proof", error_description=%q`, desc))
}

func (v *Verifier) refuseToken(w http.ResponseWriter, scheme string, err error) {
	if !errors.Is(err, ErrInvalidToken) {
		// The issuer could not be reached, or too many unknown
		// tokens are being checked: not the client's fault.
		w.Header().Set("Retry-After", "1")
		v.challenge(w, http.StatusServiceUnavailable, "", "")
		return
	}
	v.challenge(w, http.StatusUnauthorized, scheme, invalidTokenChallenge)
}

// challenge answers status with a WWW-Authenticate challenge of scheme
// first and, when this API accepts DPoP, the other scheme's plain
// challenge after it (RFC 9449 §7.1: several challenges, algs listed).
func (v *Verifier) challenge(w http.ResponseWriter, status int, scheme, params string) {
	if scheme != "" {
		dpopChallenge := "DPoP algs=" + strconv.Quote(v.algsParam())
		switch scheme {
		case "Bearer":
			w.Header().Add("WWW-Authenticate", "Bearer "+params)
			if v.dpopEnabled() {
				w.Header().Add("WWW-Authenticate", dpopChallenge)
			}
		case "DPoP":
			w.Header().Add("WWW-Authenticate", dpopChallenge+", "+params)
			w.Header().Add("WWW-Authenticate", `Bearer realm="api"`)
		}
	}
	writeError(w, status)
}

func writeError(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "{\"error\":%q}\n", http.StatusText(status))
}
