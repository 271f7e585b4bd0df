package oauth

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/dpop"
	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/metrics"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"
	"github.com/ory/fosite/storage"
	"github.com/ory/fosite/token/hmac"
)

// Provider serves the OAuth 2.0 endpoints.
type Provider struct {
	fosite *fosite.Fosite
	fconf  *fosite.Config
	store  Store
	// pushed keeps pushed authorization requests (par.go); pushedKeys
	// seal resumed ones, the first signs.
	pushed     PushedStore
	pushedKeys [][]byte
	keys       *keys.Manager
	// ui is the login pages as the authorization endpoint sees them.
	ui LoginUI
	// clientIP is the address the sign-in throttle counts a request by.
	clientIP func(*http.Request) string
	strategy oauth2.CoreStrategy
	cfg      *config.Config
	metrics  *metrics.Metrics
	log      *slog.Logger
	// devices makes and recognises device and user codes (device.go);
	// deviceUI is the browser side of the device page.
	devices  deviceCodes
	deviceUI DeviceUI
	// dpop checks DPoP proofs (RFC 9449) at the token endpoint and userinfo.
	dpop *dpop.Verifier
	// now is the server's one clock: whatever decides validity or expiry
	// reads it, so a test moves time instead of waiting for it.
	now func() time.Time
}

// grantStorage is what the grant handlers need of the store: *store.Store
// itself for opaque access tokens, statelessAccessTokens for JWTs.
type grantStorage interface {
	oauth2.CoreStorage
	oauth2.TokenRevocationStorage
	pkce.PKCERequestStorage
	storage.Transactional
}

// New builds the fosite configuration and composes the provider from
// explicitly typed handlers, so a storage method missing from the store is a
// compile error rather than fosite's start-up panic. now is the clock (nil
// is time.Now); fosite's own checks (token and code expiry in its
// validators) read the wall clock, which it offers no way to replace.
func New(cfg *config.Config, db Store, km *keys.Manager, pages *login.Handler, m *metrics.Metrics, log *slog.Logger, now func() time.Time) (*Provider, error) {
	if now == nil {
		now = time.Now
	}
	hmacKeys, err := cfg.SystemSecrets().DeriveKeys(secrets.PurposeTokenHMAC)
	if err != nil {
		return nil, fmt.Errorf("derive token key: %w", err)
	}
	pushedKeys, err := cfg.SystemSecrets().DeriveKeys(PurposePushedResume)
	if err != nil {
		return nil, fmt.Errorf("derive pushed request key: %w", err)
	}
	nonceKeys, err := cfg.SystemSecrets().DeriveKeys(secrets.PurposeDPoPNonce)
	if err != nil {
		return nil, fmt.Errorf("derive dpop nonce key: %w", err)
	}
	deviceKeys, err := cfg.SystemSecrets().DeriveKeys(secrets.PurposeDeviceCode)
	if err != nil {
		return nil, fmt.Errorf("derive device code key: %w", err)
	}
	codes := deviceCodes{keys: deviceKeys}
	hasher, err := secrets.NewClientSecretHasher(cfg.SystemSecrets())
	if err != nil {
		return nil, fmt.Errorf("derive client secret key: %w", err)
	}
	fc := &fosite.Config{
		AccessTokenLifespan:   cfg.AccessTokenTTL,
		RefreshTokenLifespan:  cfg.RefreshTokenTTL,
		AuthorizeCodeLifespan: cfg.AuthCodeTTL,
		AccessTokenIssuer:     cfg.Issuer,
		TokenURL:              cfg.IssuerURL(PathToken),
		GlobalSecret:          hmacKeys[0],
		// Tokens made under an older LATCHKEY_SECRET still verify.
		RotatedGlobalSecrets: hmacKeys[1:],
		TokenEntropy:         32,
		ClientSecretsHasher:  hasher,
		// "a" grants exactly "a"; fosite's default would let scope "a"
		// cover "a.b", which nobody registering scopes expects.
		ScopeStrategy:            fosite.ExactScopeStrategy,
		AudienceMatchingStrategy: fosite.ExactAudienceMatchingStrategy,
		// Refresh tokens only for grants that include offline_access.
		RefreshTokenScopes:          []string{"offline_access"},
		EnforcePKCEForPublicClients: true,
		EnforcePKCE:                 cfg.PKCEForAll(),
		// What the code's row keeps of the authorization request. fosite's
		// default is code and redirect_uri; the challenge is kept too so
		// that the code itself says it needs a verifier (pkce.go).
		SanitationWhiteList:            []string{"code", "redirect_uri", "code_challenge", "code_challenge_method"},
		EnablePKCEPlainChallengeMethod: false,
		SendDebugMessagesToClients:     false,
		// fosite wants a state of at least 8 characters; no specification
		// sets a length. 1 is the least fosite takes: an absent state is
		// still its last check, which Authorize overrules when PKCE is used.
		MinParameterEntropy: 1,
	}
	hmacStrategy := clockedHMAC{HMACSHAStrategy: oauth2.NewHMACSHAStrategy(&hmac.HMACStrategy{Config: fc}, fc), now: now}

	// The access token format is chosen here and nowhere else. JWTs are
	// verified (introspection, revocation) in both formats: those issued
	// before a switch to opaque tokens live on until they expire.
	jwts := &jwtStrategy{clockedHMAC: hmacStrategy, keys: km, issuer: cfg.Issuer, maxLifetime: cfg.AccessTokenTTL, now: now}
	revoking := everyFormat{Store: db, revokeFor: cfg.RevocationWindow(), now: now}
	var (
		strategy  oauth2.CoreStrategy = hmacStrategy
		st        grantStorage        = revoking
		coreCheck                     = &oauth2.CoreValidator{CoreStrategy: hmacStrategy, CoreStorage: db, Config: fc}
	)
	stateless := cfg.AccessTokenFormat == config.FormatJWT
	if stateless {
		strategy = jwts
		st = statelessAccessTokens{revoking}
		coreCheck.CoreStrategy = jwts
	}

	helper := &oauth2.HandleHelper{AccessTokenStrategy: strategy, AccessTokenStorage: st, Config: fc}
	code := &oauth2.AuthorizeExplicitGrantHandler{
		AccessTokenStrategy:    strategy,
		RefreshTokenStrategy:   strategy,
		AuthorizeCodeStrategy:  strategy,
		CoreStorage:            codeScopes{st},
		TokenRevocationStorage: st,
		Config:                 fc,
	}
	// fosite's PKCE handler stores the challenge with the code; pkceGrant,
	// not fosite, checks it at the token endpoint (see pkce.go).
	pkceHandler := &pkce.Handler{AuthorizeCodeStrategy: strategy, Storage: st, Config: fc}
	pkceCheck := &pkceGrant{codes: strategy, storage: st, forAll: cfg.PKCEForAll()}
	clientCredentials := &oauth2.ClientCredentialsGrantHandler{HandleHelper: helper, Config: fc}
	refresh := &refreshGrant{
		strategy:    strategy,
		db:          db,
		storage:     st,
		config:      fc,
		idleTTL:     cfg.RefreshTokenTTL,
		absoluteTTL: cfg.RefreshTokenMaxLifetime,
		grace:       cfg.RefreshGracePeriod,
		revokeFor:   cfg.RevocationWindow(),
		stateless:   stateless,
		metrics:     m,
		log:         log,
		reuseLog:    newReuseLogLimiter(now),
		now:         now,
	}
	password := &trustedPasswordGrant{inner: &oauth2.ResourceOwnerPasswordCredentialsGrantHandler{
		ResourceOwnerPasswordCredentialsGrantStorage: throttledPasswords{grantStorage: st, auth: pages.Authenticator(), factors: db},
		HandleHelper:         helper,
		RefreshTokenStrategy: strategy,
		Config:               fc,
	}}
	exchange := &tokenExchangeGrant{
		strategy: strategy,
		// fosite's introspection reads the handlers from fc when called,
		// so the ones appended below are the ones it runs.
		introspect: &fosite.Fosite{Config: fc},
		store:      db,
		config:     fc,
		stateless:  stateless,
		now:        now,
	}
	device := &deviceGrant{
		strategy: strategy, storage: st, devices: db, codes: codes,
		// Codes polled within a code's lifetime are remembered, 100,000
		// at most (a few MB).
		polls:  newPollTracker(100_000, cfg.DeviceCodeTTL),
		config: fc, idleTTL: cfg.RefreshTokenTTL, absoluteTTL: cfg.RefreshTokenMaxLifetime, now: now,
	}
	fc.AuthorizeEndpointHandlers.Append(code)
	fc.AuthorizeEndpointHandlers.Append(pkceHandler)
	tokenHandlers := []fosite.TokenEndpointHandler{
		only[*oauth2.ClientCredentialsGrantHandler]{clientCredentials},
		only[*oauth2.AuthorizeExplicitGrantHandler]{code},
		pkceCheck,
		refresh,
		password,
		exchange,
		device,
	}
	for _, h := range tokenHandlers {
		fc.TokenEndpointHandlers.Append(h)
	}
	// fosite drops a handler whose type it already has; losing the PKCE
	// handler that way would switch PKCE off, so count them.
	if len(fc.TokenEndpointHandlers) != len(tokenHandlers) {
		return nil, fmt.Errorf("token endpoint handlers: %d of %d registered", len(fc.TokenEndpointHandlers), len(tokenHandlers))
	}
	// Both formats, whichever this instance issues: every revocation path
	// reaches the whole grant in both representations.
	fc.TokenIntrospectionHandlers.Append(&jwtIntrospector{strategy: jwts, store: db, scopes: fc.ScopeStrategy})
	fc.TokenIntrospectionHandlers.Append(hmacOnly{coreCheck})
	fc.RevocationHandlers.Append(&jwtRevoker{strategy: jwts, store: db, revokeFor: cfg.RevocationWindow()})
	fc.RevocationHandlers.Append(hmacRevoker{strategy: strategy, tokens: st, grants: db, revokeFor: cfg.RevocationWindow(), now: now})

	return &Provider{
		fosite:     withClientAuth(fosite.NewOAuth2Provider(db, fc), fc, db, cfg, log, now),
		fconf:      fc,
		store:      db,
		pushed:     db,
		pushedKeys: pushedKeys,
		keys:       km,
		ui:         pages,
		clientIP:   pages.ClientIP,
		devices:    codes,
		deviceUI:   pages,
		strategy:   strategy,
		cfg:        cfg,
		metrics:    m,
		log:        log,
		dpop:       dpop.New(db, nonceKeys[0], cfg.DPoPNonce, now),
		now:        now,
	}, nil
}

// only runs a fosite token handler just for the requests it handles. fosite
// asks every handler about every request, and its handlers refuse with an
// error that captures a stack trace: a few percent of the token endpoint.
//
// It is generic so that each wrapped handler has a type of its own:
// fosite's handler lists drop a handler whose type is already listed.
type only[H fosite.TokenEndpointHandler] struct {
	h H
}

func (o only[H]) CanSkipClientAuth(ctx context.Context, r fosite.AccessRequester) bool {
	return o.h.CanSkipClientAuth(ctx, r)
}

func (o only[H]) CanHandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) bool {
	return o.h.CanHandleTokenEndpointRequest(ctx, r)
}

func (o only[H]) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !o.h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	return o.h.HandleTokenEndpointRequest(ctx, r)
}

func (o only[H]) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !o.h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	return o.h.PopulateTokenEndpointResponse(ctx, r, resp)
}

// trustedPasswordGrant lets only confidential clients marked trusted use the
// resource owner password grant. The check runs before fosite looks at the
// credentials, so an untrusted client learns nothing about the password and
// costs no argon2id hash.
type trustedPasswordGrant struct {
	inner *oauth2.ResourceOwnerPasswordCredentialsGrantHandler
}

var _ fosite.TokenEndpointHandler = (*trustedPasswordGrant)(nil)

func (g *trustedPasswordGrant) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !g.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	c, ok := r.GetClient().(*store.Client)
	if !ok || c.Public || !c.Trusted {
		return fosite.ErrUnauthorizedClient.WithHint("The password grant is allowed only for trusted confidential clients.")
	}
	if c.RequireMFA {
		return fosite.ErrUnauthorizedClient.WithHint("This client requires a second factor, which the password grant cannot perform.")
	}
	return g.inner.HandleTokenEndpointRequest(ctx, r)
}

func (g *trustedPasswordGrant) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	return g.inner.PopulateTokenEndpointResponse(ctx, r, resp)
}

func (g *trustedPasswordGrant) CanSkipClientAuth(ctx context.Context, r fosite.AccessRequester) bool {
	return false
}

func (g *trustedPasswordGrant) CanHandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) bool {
	return g.inner.CanHandleTokenEndpointRequest(ctx, r)
}

// codeScopes tells the token endpoint which scopes a code carries while
// fosite's code handler checks it: fosite grants them only when it issues
// the tokens, and whether an ID token is due (scope openid) must be known
// before, so that its failures leave nothing issued. It costs no query:
// the code's row is the one the handler reads anyway.
type codeScopes struct {
	grantStorage
}

func (c codeScopes) GetAuthorizeCodeSession(ctx context.Context, signature string, s fosite.Session) (fosite.Requester, error) {
	req, err := c.grantStorage.GetAuthorizeCodeSession(ctx, signature, s)
	if req != nil {
		if gs, ok := req.GetSession().(*grantsession.Session); ok {
			gs.CodeScopes = req.GetGrantedScopes()
		}
	}
	return req, err
}
