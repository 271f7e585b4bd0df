package oauth

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/metrics"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"
	"github.com/ory/fosite/token/hmac"
)

// Provider serves the OAuth 2.0 endpoints.
type Provider struct {
	fosite   *fosite.Fosite
	fconf    *fosite.Config
	store    *store.Store
	strategy oauth2.CoreStrategy
	cfg      *config.Config
	metrics  *metrics.Metrics
	log      *slog.Logger
}

// AccessTokenStrategy is the seam where the access token format is chosen:
// the opaque HMAC strategy, or (LATCHKEY_ACCESS_TOKEN_FORMAT=jwt) a signer
// that issues RFC 9068 JWTs.
type AccessTokenStrategy = oauth2.CoreStrategy

// New builds the fosite configuration and composes the provider from
// explicitly typed handlers, so a storage method missing from the store is a
// compile error rather than fosite's start-up panic.
func New(cfg *config.Config, st *store.Store, m *metrics.Metrics, log *slog.Logger) (*Provider, error) {
	hmacKey, err := secrets.DeriveKey([]byte(cfg.Secret), secrets.PurposeTokenHMAC)
	if err != nil {
		return nil, fmt.Errorf("derive token key: %w", err)
	}
	hasher, err := secrets.NewClientSecretHasher([]byte(cfg.Secret))
	if err != nil {
		return nil, fmt.Errorf("derive client secret key: %w", err)
	}
	fc := &fosite.Config{
		AccessTokenLifespan:   cfg.AccessTokenTTL,
		RefreshTokenLifespan:  cfg.RefreshTokenTTL,
		AuthorizeCodeLifespan: cfg.AuthCodeTTL,
		AccessTokenIssuer:     cfg.Issuer,
		TokenURL:              cfg.IssuerURL(PathToken),
		GlobalSecret:          hmacKey,
		TokenEntropy:          32,
		ClientSecretsHasher:   hasher,
		// "a" grants exactly "a"; fosite's default would let scope "a"
		// cover "a.b", which nobody registering scopes expects.
		ScopeStrategy:            fosite.ExactScopeStrategy,
		AudienceMatchingStrategy: fosite.ExactAudienceMatchingStrategy,
		// Refresh tokens only for grants that include offline_access.
		RefreshTokenScopes:             []string{"offline_access"},
		EnforcePKCEForPublicClients:    true,
		EnablePKCEPlainChallengeMethod: false,
		SendDebugMessagesToClients:     false,
	}
	if cfg.AccessTokenFormat == config.FormatJWT {
		log.Warn("JWT access tokens are not available in this build yet; issuing opaque access tokens",
			"setting", "LATCHKEY_ACCESS_TOKEN_FORMAT")
	}
	strategy := oauth2.NewHMACSHAStrategy(&hmac.HMACStrategy{Config: fc}, fc)

	helper := &oauth2.HandleHelper{AccessTokenStrategy: strategy, AccessTokenStorage: st, Config: fc}
	code := &oauth2.AuthorizeExplicitGrantHandler{
		AccessTokenStrategy:    strategy,
		RefreshTokenStrategy:   strategy,
		AuthorizeCodeStrategy:  strategy,
		CoreStorage:            st,
		TokenRevocationStorage: st,
		Config:                 fc,
	}
	pkceHandler := &pkce.Handler{AuthorizeCodeStrategy: strategy, Storage: st, Config: fc}
	clientCredentials := &oauth2.ClientCredentialsGrantHandler{HandleHelper: helper, Config: fc}
	refresh := &oauth2.RefreshTokenGrantHandler{
		AccessTokenStrategy:    strategy,
		RefreshTokenStrategy:   strategy,
		TokenRevocationStorage: st,
		Config:                 fc,
	}
	password := &trustedPasswordGrant{inner: &oauth2.ResourceOwnerPasswordCredentialsGrantHandler{
		ResourceOwnerPasswordCredentialsGrantStorage: st,
		HandleHelper:         helper,
		RefreshTokenStrategy: strategy,
		Config:               fc,
	}}
	fc.AuthorizeEndpointHandlers.Append(code)
	fc.AuthorizeEndpointHandlers.Append(pkceHandler)
	fc.TokenEndpointHandlers.Append(code)
	fc.TokenEndpointHandlers.Append(pkceHandler)
	fc.TokenEndpointHandlers.Append(clientCredentials)
	fc.TokenEndpointHandlers.Append(refresh)
	fc.TokenEndpointHandlers.Append(password)
	fc.TokenIntrospectionHandlers.Append(&oauth2.CoreValidator{CoreStrategy: strategy, CoreStorage: st, Config: fc})
	fc.RevocationHandlers.Append(&oauth2.TokenRevocationHandler{
		TokenRevocationStorage: st,
		AccessTokenStrategy:    strategy,
		RefreshTokenStrategy:   strategy,
	})

	return &Provider{
		fosite:   fosite.NewOAuth2Provider(st, fc),
		fconf:    fc,
		store:    st,
		strategy: strategy,
		cfg:      cfg,
		metrics:  m,
		log:      log,
	}, nil
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
