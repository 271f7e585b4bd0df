package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/redirecturi"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
)

// Token endpoint authentication methods (RFC 7591 §2).
const (
	AuthSecretBasic   = "client_secret_basic"
	AuthSecretPost    = "client_secret_post"
	AuthPrivateKeyJWT = "private_key_jwt"
	AuthNone          = "none"
)

// GrantTypeDeviceCode is the device authorization grant's grant type (RFC
// 8628 §3.4), for public and confidential clients alike.
const GrantTypeDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"

// GrantTypeTokenExchange is RFC 8693's grant type (the same as
// oauth.GrantTypeTokenExchange; admin does not import the OAuth layer).
const GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"

var (
	knownAuthMethods = []string{AuthSecretBasic, AuthSecretPost, AuthPrivateKeyJWT, AuthNone}
	knownGrantTypes  = []string{"authorization_code", "client_credentials", "password", "refresh_token", GrantTypeTokenExchange, GrantTypeDeviceCode}
	// RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E.
	scopeToken = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]+$`)
	clientIDRe = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,128}$`)
)

// ClientMetadata is a client as the admin API and CLI show it: RFC 7591
// metadata plus Latchkey's "trusted".
type ClientMetadata struct {
	ClientID                string          `json:"client_id,omitempty"`
	ClientSecret            string          `json:"client_secret,omitempty"`
	ClientSecretExpiresAt   *int64          `json:"client_secret_expires_at,omitempty"`
	ClientIDIssuedAt        int64           `json:"client_id_issued_at,omitempty"`
	ClientName              string          `json:"client_name,omitempty"`
	RedirectURIs            []string        `json:"redirect_uris"`
	PostLogoutRedirectURIs  []string        `json:"post_logout_redirect_uris,omitempty"`
	GrantTypes              []string        `json:"grant_types"`
	ResponseTypes           []string        `json:"response_types"`
	Scope                   string          `json:"scope"`
	Audience                []string        `json:"audience"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	JWKS                    json.RawMessage `json:"jwks,omitempty"`
	JWKSURI                 string          `json:"jwks_uri,omitempty"`
	// TokenEndpointAuthSigningAlg pins the algorithm of a private_key_jwt
	// client's assertions (RFC 7591 §2).
	TokenEndpointAuthSigningAlg string `json:"token_endpoint_auth_signing_alg,omitempty"`
	Trusted                     bool   `json:"trusted"`
	// ApplicationType is OpenID Connect Dynamic Client Registration's
	// "web" or "native"; registration defaults it from the redirect URIs.
	ApplicationType string `json:"application_type,omitempty"`
	// IDTokenSignedResponseAlg is RS256, ES256 or EdDSA (OpenID Connect
	// Dynamic Client Registration §2); registration stores RS256 when unset.
	IDTokenSignedResponseAlg string `json:"id_token_signed_response_alg,omitempty"`
	// BackchannelLogoutURI is where logout tokens will be sent (OpenID
	// Connect Back-Channel Logout 1.0 §2.2); SessionRequired asks for sid
	// in them and needs the URI.
	BackchannelLogoutURI             string `json:"backchannel_logout_uri,omitempty"`
	BackchannelLogoutSessionRequired bool   `json:"backchannel_logout_session_required,omitempty"`
	// RequirePushedAuthorizationRequests refuses the client's authorization
	// requests unless pushed to /oauth2/par first (RFC 9126 §6); needs the
	// authorization_code grant.
	RequirePushedAuthorizationRequests bool `json:"require_pushed_authorization_requests,omitempty"`
	// DPoPBoundAccessTokens refuses the client any token without a DPoP
	// proof (RFC 9449 §5.2).
	DPoPBoundAccessTokens bool `json:"dpop_bound_access_tokens,omitempty"`
	// RequireMFA makes the client's authorization requests need a sign-in
	// with a second factor (a step-up when the session has none) and
	// refuses it the password grant.
	RequireMFA bool `json:"require_mfa,omitempty"`
	// LogoURI and ClientURI (RFC 7591 §2) are shown on the consent page:
	// https, or http to a loopback host.
	LogoURI   string `json:"logo_uri,omitempty"`
	ClientURI string `json:"client_uri,omitempty"`
	// Warnings are in answers only: registration rules that were not
	// broken but should not be relied on (http://localhost, RFC 8252 §8.3).
	Warnings []string `json:"warnings,omitempty"`
}

// MetadataError is a registration that breaks a rule. Code is RFC 7591
// §3.2.2's invalid_client_metadata or invalid_redirect_uri.
type MetadataError struct {
	Code        string
	Description string
}

func (e *MetadataError) Error() string { return e.Code + ": " + e.Description }

func invalidMetadata(format string, args ...any) error {
	return &MetadataError{Code: "invalid_client_metadata", Description: fmt.Sprintf(format, args...)}
}

func invalidRedirect(format string, args ...any) error {
	return &MetadataError{Code: "invalid_redirect_uri", Description: fmt.Sprintf(format, args...)}
}

// ErrPublicClient is returned when a secret is asked of a client that has
// none: a public client, or a private_key_jwt one.
var ErrPublicClient = errors.New("this client has no secret")

// Service manages clients.
type Service struct {
	store  Store
	hasher *secrets.ClientSecretHasher
	policy Policy
}

// Policy is what the service needs of the configuration and the server.
type Policy struct {
	// RevokeFor is how long revoking a user is remembered
	// (config.Config.RevocationWindow); zero assumes the default access
	// token lifetime.
	RevokeFor time.Duration
	// Now is the clock revocations are dated by; nil is time.Now.
	Now func() time.Time
}

// NewService returns the admin service.
func NewService(st Store, hasher *secrets.ClientSecretHasher, p Policy) *Service {
	if p.RevokeFor <= 0 {
		p.RevokeFor = 16 * time.Minute // the default access token lifetime and a margin
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	return &Service{store: st, hasher: hasher, policy: p}
}

// printable reports whether a metadata string is text a person could have
// meant: valid UTF-8 with no control characters or replacement characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return false
		}
	}
	return true
}

// normalize applies RFC 7591 defaults and checks every rule, returning the
// row to store.
func normalize(md *ClientMetadata) (*store.Client, error) {
	fields := append([]string{md.ClientID, md.ClientName, md.Scope, md.TokenEndpointAuthMethod, md.TokenEndpointAuthSigningAlg, md.JWKSURI, md.ApplicationType, md.IDTokenSignedResponseAlg, md.BackchannelLogoutURI, md.LogoURI, md.ClientURI}, md.RedirectURIs...)
	fields = append(append(append(append(fields, md.PostLogoutRedirectURIs...), md.Audience...), md.GrantTypes...), md.ResponseTypes...)
	for _, f := range fields {
		if !printable(f) {
			return nil, invalidMetadata("metadata must be valid UTF-8 text without control characters")
		}
	}
	c := &store.Client{
		ID:                      md.ClientID,
		Name:                    strings.TrimSpace(md.ClientName),
		TokenEndpointAuthMethod: md.TokenEndpointAuthMethod,
		Trusted:                 md.Trusted,
		JWKSURI:                 md.JWKSURI,
	}
	if c.ID != "" && !clientIDRe.MatchString(c.ID) {
		return nil, invalidMetadata("client_id must be 1-128 characters of A-Z a-z 0-9 . _ ~ -")
	}
	// "/admin/clients/.." is cleaned to "/admin/" before any handler sees
	// it: such a client could never be read, replaced or deleted.
	if c.ID == "." || c.ID == ".." {
		return nil, invalidMetadata("client_id must not be %q", c.ID)
	}
	if len(c.Name) > 200 {
		return nil, invalidMetadata("client_name must be at most 200 characters")
	}
	if c.TokenEndpointAuthMethod == "" {
		c.TokenEndpointAuthMethod = AuthSecretBasic // RFC 7591 §2 default
	}
	if !slices.Contains(knownAuthMethods, c.TokenEndpointAuthMethod) {
		return nil, invalidMetadata("token_endpoint_auth_method %q is not one of %s", c.TokenEndpointAuthMethod, strings.Join(knownAuthMethods, ", "))
	}
	c.Public = c.TokenEndpointAuthMethod == AuthNone

	c.GrantTypes = dedupe(md.GrantTypes)
	if len(c.GrantTypes) == 0 {
		c.GrantTypes = []string{"authorization_code"} // RFC 7591 §2 default
	}
	for _, g := range c.GrantTypes {
		if !slices.Contains(knownGrantTypes, g) {
			return nil, invalidMetadata("grant type %q is not supported; use %s", g, strings.Join(knownGrantTypes, ", "))
		}
		// Token exchange too: a public client could not be told from anyone
		// who copied its client_id, and its callers would trade a token
		// they hold for another with no proof of who is acting (RFC 8693
		// §2.1 expects the acting party to authenticate).
		if c.Public && (g == "client_credentials" || g == "password" || g == GrantTypeTokenExchange) {
			return nil, invalidMetadata("a public client (token_endpoint_auth_method none) cannot use the %s grant", g)
		}
	}
	usesCode := slices.Contains(c.GrantTypes, "authorization_code")

	c.ResponseTypes = dedupe(md.ResponseTypes)
	if len(c.ResponseTypes) == 0 && usesCode {
		c.ResponseTypes = []string{"code"}
	}
	for _, rt := range c.ResponseTypes {
		if rt != "code" {
			return nil, invalidMetadata("response type %q is not supported; only \"code\"", rt)
		}
	}
	if len(c.ResponseTypes) > 0 && !usesCode {
		return nil, invalidMetadata("response_types \"code\" needs the authorization_code grant type")
	}

	c.RedirectURIs = dedupe(md.RedirectURIs)
	if usesCode && len(c.RedirectURIs) == 0 {
		return nil, invalidRedirect("the authorization_code grant needs at least one redirect URI")
	}
	for _, u := range c.RedirectURIs {
		if err := validateRedirectURI(u, c.Public); err != nil {
			return nil, err
		}
	}
	// Logout sends the browser to a post-logout redirect URI as the
	// authorization endpoint sends it to a redirect URI: the same rules,
	// application_type's included.
	c.PostLogoutRedirectURIs = dedupe(md.PostLogoutRedirectURIs)
	for _, u := range c.PostLogoutRedirectURIs {
		if err := validateRedirectURI(u, c.Public); err != nil {
			return nil, inField("post_logout_redirect_uris", err)
		}
	}
	if err := applicationType(md, c); err != nil {
		return nil, err
	}
	if err := brandingMetadata(md, c); err != nil {
		return nil, err
	}
	if err := oidcMetadata(md, c); err != nil {
		return nil, err
	}
	c.RequirePushedAuthorizationRequests = md.RequirePushedAuthorizationRequests
	c.RequireMFA = md.RequireMFA
	if c.RequirePushedAuthorizationRequests && !usesCode {
		// Like backchannel_logout_session_required without a URI: a rule
		// with nothing to apply to is more likely a mistake than a wish.
		return nil, invalidMetadata("require_pushed_authorization_requests needs the authorization_code grant type")
	}
	// Any grant can carry a proof, so there is nothing it conflicts with.
	c.DPoPBoundAccessTokens = md.DPoPBoundAccessTokens

	c.Scopes = dedupe(strings.Fields(md.Scope))
	for _, s := range c.Scopes {
		if !scopeToken.MatchString(s) {
			return nil, invalidMetadata("scope %q has characters RFC 6749 §3.3 does not allow", s)
		}
	}
	c.Audience = dedupe(md.Audience)
	for _, a := range c.Audience {
		if a == "" || strings.ContainsAny(a, " \t\r\n") || len(a) > 2048 {
			return nil, invalidMetadata("audience %q must be a non-empty string without spaces", a)
		}
	}

	if c.TokenEndpointAuthMethod == AuthPrivateKeyJWT {
		if err := validateJWKS(md, c); err != nil {
			return nil, err
		}
	} else if (len(md.JWKS) > 0 && string(md.JWKS) != "null") || md.JWKSURI != "" || md.TokenEndpointAuthSigningAlg != "" {
		return nil, invalidMetadata("jwks, jwks_uri and token_endpoint_auth_signing_alg are only used with token_endpoint_auth_method private_key_jwt")
	}
	return c, nil
}

func validateJWKS(md *ClientMetadata, c *store.Client) error {
	hasSet := len(md.JWKS) > 0 && string(md.JWKS) != "null"
	if hasSet == (md.JWKSURI != "") {
		return invalidMetadata("private_key_jwt needs exactly one of jwks and jwks_uri")
	}
	alg := md.TokenEndpointAuthSigningAlg
	if alg != "" && !keys.ClientAssertionAlgorithm(alg) {
		return invalidMetadata("token_endpoint_auth_signing_alg %q is not one of %s", alg, strings.Join(assertionAlgs(), ", "))
	}
	c.TokenEndpointAuthSigningAlg = alg
	if md.JWKSURI != "" {
		u, err := url.Parse(md.JWKSURI)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return invalidMetadata("jwks_uri must be an https URL")
		}
		return nil
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(md.JWKS, &set); err != nil {
		return invalidMetadata("jwks is not a JSON Web Key Set: %v", err)
	}
	if len(set.Keys) == 0 {
		return invalidMetadata("jwks has no keys")
	}
	usable := false
	for i := range set.Keys {
		k := &set.Keys[i]
		if !k.IsPublic() {
			return invalidMetadata("jwks must hold public keys only (key %q is private)", k.KeyID)
		}
		if k.Use == "" {
			k.Use = "sig"
		}
		if k.Use != "sig" {
			continue // an encryption key, say: never used to verify
		}
		fits := keys.FittingAlgorithms(k.Key)
		if len(fits) == 0 {
			return invalidMetadata("jwks key %q cannot verify any of %s (RSA keys need at least %d bits)", k.KeyID, strings.Join(assertionAlgs(), ", "), keys.MinRSABits)
		}
		if k.Algorithm != "" && !slices.Contains(fits, k.Algorithm) {
			return invalidMetadata("jwks key %q says alg %q, which does not fit the key", k.KeyID, k.Algorithm)
		}
		if alg == "" || (slices.Contains(fits, alg) && (k.Algorithm == "" || k.Algorithm == alg)) {
			usable = true
		}
	}
	if !usable {
		if alg != "" {
			return invalidMetadata("jwks has no signature key for token_endpoint_auth_signing_alg %s", alg)
		}
		return invalidMetadata("jwks has no signature key")
	}
	b, err := json.Marshal(set)
	if err != nil {
		return invalidMetadata("jwks cannot be encoded: %v", err)
	}
	c.JWKS = string(b)
	return nil
}

// validateRedirectURI applies RFC 6749 §3.1.2 (absolute, no fragment),
// RFC 9700 §2.1 (https, except loopback) and RFC 8252 §7 (private-use
// schemes and loopback redirects for native apps).
func validateRedirectURI(raw string, public bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return invalidRedirect("redirect URI %q is not a URI: %v", raw, err)
	}
	if !u.IsAbs() {
		return invalidRedirect("redirect URI %q must be absolute", raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return invalidRedirect("redirect URI %q must not have a fragment (RFC 6749 §3.1.2)", raw)
	}
	if u.User != nil {
		return invalidRedirect("redirect URI %q must not carry user information", raw)
	}
	// Nothing here is a pattern: a "*" would only mislead whoever reads the
	// registration into thinking it matches more than itself.
	if strings.Contains(raw, "*") {
		return invalidRedirect("redirect URI %q: wildcards are not supported; register each redirect URI in full", raw)
	}
	switch scheme := strings.ToLower(u.Scheme); scheme {
	case "https":
		if u.Host == "" {
			return invalidRedirect("redirect URI %q has no host", raw)
		}
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return invalidRedirect("redirect URI %q must use https; plain http is allowed only for loopback addresses (RFC 8252 §7.3)", raw)
		}
		if err := redirecturi.CheckLoopback(u); err != nil {
			return invalidRedirect("redirect URI %q: %v", raw, err)
		}
	case "javascript", "data", "file", "vbscript", "about", "blob", "ftp", "ws", "wss":
		return invalidRedirect("redirect URI %q uses a scheme that cannot be a redirect target", raw)
	default:
		// RFC 8252 §7.1: private-use schemes are reverse domain names.
		if !public {
			return invalidRedirect("redirect URI %q: private-use schemes are for public native clients only", raw)
		}
		if !redirecturi.IsPrivateUse(u) {
			return invalidRedirect("redirect URI %q: a private-use scheme must be a reverse domain name such as com.example.app (RFC 8252 §7.1)", raw)
		}
	}
	return nil
}

// inField names the metadata field a redirect rule was broken in.
func inField(field string, err error) error {
	var me *MetadataError
	if errors.As(err, &me) {
		return &MetadataError{Code: me.Code, Description: field + ": " + me.Description}
	}
	return err
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func dedupe(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func assertionAlgs() []string {
	out := make([]string, 0, len(keys.ClientAssertionAlgorithms))
	for _, a := range keys.ClientAssertionAlgorithms {
		out = append(out, string(a))
	}
	return out
}

// hasSecret reports whether a client authenticates with a secret: public
// clients have none, and private_key_jwt clients prove themselves with
// their key alone.
func hasSecret(c *store.Client) bool {
	return !c.Public && c.TokenEndpointAuthMethod != AuthPrivateKeyJWT
}

// toMetadata renders a stored client; it never includes the secret.
func toMetadata(c *store.Client) *ClientMetadata {
	md := &ClientMetadata{
		ClientID:                    c.ID,
		ClientIDIssuedAt:            c.CreatedAt.Unix(),
		ClientName:                  c.Name,
		RedirectURIs:                nonNil(c.RedirectURIs),
		PostLogoutRedirectURIs:      c.PostLogoutRedirectURIs,
		GrantTypes:                  nonNil(c.GrantTypes),
		ResponseTypes:               nonNil(c.ResponseTypes),
		Scope:                       strings.Join(c.Scopes, " "),
		Audience:                    nonNil(c.Audience),
		TokenEndpointAuthMethod:     c.TokenEndpointAuthMethod,
		JWKSURI:                     c.JWKSURI,
		Trusted:                     c.Trusted,
		ApplicationType:             c.AppType(),
		TokenEndpointAuthSigningAlg: c.TokenEndpointAuthSigningAlg,

		IDTokenSignedResponseAlg:         c.IDTokenAlg(),
		BackchannelLogoutURI:             c.BackchannelLogoutURI,
		BackchannelLogoutSessionRequired: c.BackchannelLogoutSessionRequired,

		RequirePushedAuthorizationRequests: c.RequirePushedAuthorizationRequests,
		DPoPBoundAccessTokens:              c.DPoPBoundAccessTokens,
		RequireMFA:                         c.RequireMFA,
		LogoURI:                            c.LogoURI,
		ClientURI:                          c.ClientURI,
	}
	if c.JWKS != "" {
		md.JWKS = json.RawMessage(c.JWKS)
	}
	return md
}

func nonNil(a []string) []string {
	if a == nil {
		return []string{}
	}
	return a
}

// withSecret adds a freshly generated secret to c and md.
func (s *Service) withSecret(ctx context.Context, c *store.Client, md *ClientMetadata) error {
	secret, err := secrets.NewClientSecret()
	if err != nil {
		return err
	}
	hash, err := s.hasher.Hash(ctx, []byte(secret))
	if err != nil {
		return err
	}
	c.SecretHash = hash
	md.ClientSecret = secret
	never := int64(0) // RFC 7591 §3.2.1: 0 means the secret does not expire
	md.ClientSecretExpiresAt = &never
	return nil
}

// CreateClient registers a client. For a confidential client the answer
// carries the secret; it is not stored and is never shown again.
func (s *Service) CreateClient(ctx context.Context, md *ClientMetadata) (*ClientMetadata, error) {
	c, err := normalize(md)
	if err != nil {
		return nil, err
	}
	if c.ID == "" {
		if c.ID, err = secrets.NewID(); err != nil {
			return nil, err
		}
	}
	out := &ClientMetadata{}
	if hasSecret(c) {
		if err := s.withSecret(ctx, c, out); err != nil {
			return nil, err
		}
	}
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		if err := s.store.CreateClient(ctx, c); err != nil {
			return err
		}
		return s.record(ctx, ActionClientCreate, TargetClient, c.ID, nil, toMetadata(c))
	})
	if err != nil {
		if errors.Is(err, store.ErrAlreadyExists) {
			return nil, invalidMetadata("client_id %q is already registered", c.ID)
		}
		return nil, err
	}
	res := toMetadata(c)
	res.ClientSecret, res.ClientSecretExpiresAt = out.ClientSecret, out.ClientSecretExpiresAt
	res.Warnings = redirectWarnings(c)
	return res, nil
}

// GetClient returns a client's metadata. store.ErrNotFound if unknown.
func (s *Service) GetClient(ctx context.Context, id string) (*ClientMetadata, error) {
	c, err := s.store.FindClient(ctx, id)
	if err != nil {
		return nil, err
	}
	return toMetadata(c), nil
}

// ListClients returns every client's metadata.
func (s *Service) ListClients(ctx context.Context) ([]*ClientMetadata, error) {
	cs, err := s.store.ListClients(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*ClientMetadata, 0, len(cs))
	for _, c := range cs {
		out = append(out, toMetadata(c))
	}
	return out, nil
}

// ReplaceClient replaces a client's metadata (PUT). The secret is kept; a
// public client that becomes confidential gets a new one, shown once, and a
// confidential client that becomes public loses its secret.
func (s *Service) ReplaceClient(ctx context.Context, id string, md *ClientMetadata) (*ClientMetadata, error) {
	if md.ClientID != "" && md.ClientID != id {
		return nil, invalidMetadata("client_id in the body (%q) differs from the one in the path (%q)", md.ClientID, id)
	}
	md.ClientID = id
	c, err := normalize(md)
	if err != nil {
		return nil, err
	}
	out := &ClientMetadata{}
	var before *ClientMetadata
	// The secret hash is decided from the row as it is now, under its lock:
	// read outside the lock (or from the cache), a concurrent rotation
	// could be undone by writing back the hash it replaced.
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		if err := s.store.UpdateClient(ctx, id, func(cur *store.Client) error {
			before = toMetadata(cur)
			return s.replace(ctx, c, cur, out)
		}); err != nil {
			return err
		}
		return s.record(ctx, ActionClientUpdate, TargetClient, id, before, toMetadata(c))
	})
	if err != nil {
		return nil, err
	}
	res := toMetadata(c)
	res.ClientSecret, res.ClientSecretExpiresAt = out.ClientSecret, out.ClientSecretExpiresAt
	res.Warnings = redirectWarnings(c)
	return res, nil
}

// replace turns the current row cur into c, deciding the secret: kept,
// dropped for a public client, or new (into out) for a client that gains
// one.
func (s *Service) replace(ctx context.Context, c, cur *store.Client, out *ClientMetadata) error {
	*out = ClientMetadata{}
	switch {
	case !hasSecret(c):
		c.SecretHash = nil
	case !hasSecret(cur) || len(cur.SecretHash) == 0:
		if err := s.withSecret(ctx, c, out); err != nil {
			return err
		}
	default:
		c.SecretHash = cur.SecretHash
	}
	c.CreatedAt = cur.CreatedAt
	*cur = *c
	return nil
}

// DeleteClient removes a client and every token issued to it.
func (s *Service) DeleteClient(ctx context.Context, id string) error {
	return s.store.InTx(ctx, func(ctx context.Context) error {
		c, err := s.store.FindClient(ctx, id)
		if err != nil {
			return err
		}
		if err := s.store.DeleteClient(ctx, id); err != nil {
			return err
		}
		return s.record(ctx, ActionClientDelete, TargetClient, id, toMetadata(c), nil)
	})
}

// RotateSecret replaces a confidential client's secret and returns the new
// one; the old one stops working at once.
func (s *Service) RotateSecret(ctx context.Context, id string) (*ClientMetadata, error) {
	var res *ClientMetadata
	// Under the row lock, so that a concurrent PUT keeps this secret (or
	// this rotation follows it) instead of restoring the old one.
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		if err := s.store.UpdateClient(ctx, id, func(c *store.Client) error {
			if !hasSecret(c) {
				return ErrPublicClient
			}
			res = toMetadata(c)
			return s.withSecret(ctx, c, res)
		}); err != nil {
			return err
		}
		// The metadata is unchanged; the entry says that the secret
		// changed, and never what it is.
		return s.record(ctx, ActionClientRotateSecret, TargetClient, id, nil, noSecret(res))
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// noSecret is md without its secret, for the audit log.
func noSecret(md *ClientMetadata) *ClientMetadata {
	c := *md
	c.ClientSecret, c.ClientSecretExpiresAt = "", nil
	return &c
}
