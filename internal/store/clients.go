package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
	"gorm.io/gorm/clause"
)

// Client is a registered OAuth 2.0 client. It is both the database row and
// the fosite.Client handed to the protocol engine.
type Client struct {
	ID           string   `gorm:"primaryKey"`
	Name         string   `gorm:"column:name"`
	SecretHash   []byte   `gorm:"column:secret_hash"`
	RedirectURIs []string `gorm:"column:redirect_uris;serializer:json"`
	// PostLogoutRedirectURIs are where logout may send the browser back to.
	PostLogoutRedirectURIs []string `gorm:"column:post_logout_redirect_uris;serializer:json"`
	GrantTypes             []string `gorm:"column:grant_types;serializer:json"`
	ResponseTypes          []string `gorm:"column:response_types;serializer:json"`
	Scopes                 []string `gorm:"column:scopes;serializer:json"`
	Audience               []string `gorm:"column:audience;serializer:json"`
	// TokenEndpointAuthMethod is one of client_secret_basic,
	// client_secret_post, private_key_jwt or none (public clients).
	TokenEndpointAuthMethod string `gorm:"column:token_endpoint_auth_method"`
	// JWKS is the client's public key set as JSON, for private_key_jwt.
	JWKS    string `gorm:"column:jwks"`
	JWKSURI string `gorm:"column:jwks_uri"`
	// TokenEndpointAuthSigningAlg pins the algorithm of private_key_jwt
	// assertions (RFC 7591 §2); empty accepts the algorithm that fits the
	// registered key.
	TokenEndpointAuthSigningAlg string `gorm:"column:token_endpoint_auth_signing_alg"`
	Public                      bool   `gorm:"column:public"`
	// Trusted first-party clients skip consent and, when confidential, may
	// use the password grant.
	Trusted   bool      `gorm:"column:trusted"`
	CreatedAt time.Time `gorm:"column:created_at"`
	UpdatedAt time.Time `gorm:"column:updated_at"`

	// ApplicationType is "web" or "native" (see AppType).
	ApplicationType string `gorm:"column:application_type"`

	// IDTokenSignedResponseAlg is the algorithm of the client's ID tokens
	// (OpenID Connect Dynamic Client Registration §2): RS256, ES256 or
	// EdDSA. Registration stores the RS256 default; read it with IDTokenAlg.
	IDTokenSignedResponseAlg string `gorm:"column:id_token_signed_response_alg"`
	// BackchannelLogoutURI is where logout tokens are sent (OpenID Connect
	// Back-Channel Logout 1.0 §2.2); empty when the client takes none.
	BackchannelLogoutURI string `gorm:"column:backchannel_logout_uri"`
	// BackchannelLogoutSessionRequired asks for sid in logout tokens.
	BackchannelLogoutSessionRequired bool `gorm:"column:backchannel_logout_session_required"`
	// RequirePushedAuthorizationRequests refuses this client's
	// authorization requests unless they were pushed (RFC 9126 §6).
	RequirePushedAuthorizationRequests bool `gorm:"column:require_pushed_authorization_requests"`
	// RequireMFA makes this client's authorization requests need a login
	// session with a second factor (step-up, issue 17).
	RequireMFA bool `gorm:"column:require_mfa"`
	// DPoPBoundAccessTokens refuses the client any token without a DPoP
	// proof (RFC 9449 §5.2).
	DPoPBoundAccessTokens bool `gorm:"column:dpop_bound_access_tokens"`
	// LogoURI and ClientURI are the application's logo and home page
	// (RFC 7591 §2), shown on the consent page; empty when not registered.
	LogoURI   string `gorm:"column:logo_uri"`
	ClientURI string `gorm:"column:client_uri"`
	// AllowedCORSOrigins are the browser origins that may call the token,
	// revocation, PAR and device authorization endpoints as this client
	// (issue 18). nil (NULL) means none were registered: CORSOrigins
	// derives them from the redirect URIs. An empty list allows none.
	AllowedCORSOrigins []string `gorm:"column:allowed_cors_origins;serializer:json"`
}

// DefaultIDTokenAlg is what an ID token is signed with when the client
// registered no id_token_signed_response_alg (OpenID Connect Dynamic Client
// Registration §2).
const DefaultIDTokenAlg = "RS256"

// IDTokenAlg is the client's id_token_signed_response_alg, or the RS256
// default for a row written without one (not through the admin service,
// which always stores it).
func (c *Client) IDTokenAlg() string {
	if c.IDTokenSignedResponseAlg == "" {
		return DefaultIDTokenAlg
	}
	return c.IDTokenSignedResponseAlg
}

// TableName tells GORM the table.
func (*Client) TableName() string { return "clients" }

var (
	_ fosite.Client              = (*Client)(nil)
	_ fosite.OpenIDConnectClient = (*Client)(nil)
)

func (c *Client) GetID() string                   { return c.ID }
func (c *Client) GetHashedSecret() []byte         { return c.SecretHash }
func (c *Client) GetRedirectURIs() []string       { return c.RedirectURIs }
func (c *Client) GetGrantTypes() fosite.Arguments { return c.GrantTypes }
func (c *Client) GetScopes() fosite.Arguments     { return c.Scopes }
func (c *Client) IsPublic() bool                  { return c.Public }
func (c *Client) GetAudience() fosite.Arguments   { return c.Audience }

// GetResponseTypes defaults to "code", the only response type Latchkey serves.
func (c *Client) GetResponseTypes() fosite.Arguments {
	if len(c.ResponseTypes) == 0 {
		return fosite.Arguments{"code"}
	}
	return c.ResponseTypes
}

// GetTokenEndpointAuthMethod makes fosite refuse credentials presented by
// any other method than the registered one.
func (c *Client) GetTokenEndpointAuthMethod() string { return c.TokenEndpointAuthMethod }

// ErrBadJWKS is a stored key set that does not parse. Registration checks
// the set, so it means a row changed behind the admin API's back.
var ErrBadJWKS = errors.New("the client's stored JWKS does not parse")

// JSONWebKeys is the registered key set for private_key_jwt, nil when none
// is registered, and ErrBadJWKS when the stored set is unreadable: the caller
// must refuse the client, not treat it as one without keys.
func (c *Client) JSONWebKeys() (*jose.JSONWebKeySet, error) {
	if c.JWKS == "" {
		return nil, nil
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(c.JWKS), &set); err != nil {
		return nil, fmt.Errorf("client %s: %w: %w", c.ID, ErrBadJWKS, err)
	}
	return &set, nil
}

// GetJSONWebKeys is JSONWebKeys for fosite, which takes no error: an
// unreadable set is nil here. Latchkey's own client authentication calls
// JSONWebKeys and refuses such a client. fosite speaks go-jose v3, so the
// set is decoded with v3 here at the boundary.
func (c *Client) GetJSONWebKeys() *jose.JSONWebKeySet {
	set, err := c.JSONWebKeys()
	if err != nil {
		return nil
	}
	return set
}

func (c *Client) GetJSONWebKeysURI() string { return c.JWKSURI }

// GetTokenEndpointAuthSigningAlgorithm is the registered assertion
// algorithm, or empty when the registered key decides.
func (c *Client) GetTokenEndpointAuthSigningAlgorithm() string { return c.TokenEndpointAuthSigningAlg }

// Request objects are not supported.
func (c *Client) GetRequestURIs() []string                 { return nil }
func (c *Client) GetRequestObjectSigningAlgorithm() string { return "" }

// fillLists stores empty lists as [] rather than NULL.
func (c *Client) fillLists() {
	for _, l := range []*[]string{&c.RedirectURIs, &c.PostLogoutRedirectURIs, &c.GrantTypes, &c.ResponseTypes, &c.Scopes, &c.Audience} {
		if *l == nil {
			*l = []string{}
		}
	}
}

// CreateClient stores a new client. ErrAlreadyExists if the ID is taken.
func (s *Store) CreateClient(ctx context.Context, c *Client) error {
	c.fillLists()
	now := s.nowUTC()
	c.CreatedAt, c.UpdatedAt = now, now
	if err := s.db(ctx).Create(c).Error; err != nil {
		return fmt.Errorf("create client: %w", translate(err))
	}
	// Every instance caches the set of origins some client allows, which
	// this one may extend.
	return s.notifyClientCreated(ctx, c.ID)
}

// FindClient loads a client by ID, from the cache when it can. ErrNotFound
// if there is none. Inside a transaction it always reads the row: a
// read-modify-write must see what it is about to overwrite, never a copy
// that another instance may have changed since.
func (s *Store) FindClient(ctx context.Context, id string) (*Client, error) {
	_, inTx := ctx.Value(txKey{}).(*txState)
	if !inTx {
		if c, ok := s.clients.get(id); ok {
			return c, nil
		}
	}
	if !lookupable(id) {
		return nil, fmt.Errorf("find client: %w", ErrNotFound)
	}
	var c Client
	if err := s.db(ctx).Where("id = ?", id).Take(&c).Error; err != nil {
		return nil, fmt.Errorf("find client: %w", translate(err))
	}
	// Inside a transaction the row may yet roll back: cache only what is
	// committed.
	if !inTx {
		s.clients.put(&c)
	}
	return &c, nil
}

// GetClient implements fosite.ClientManager.
func (s *Store) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := s.FindClient(ctx, id)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AnyClientAllowsOrigin reports whether origin is among some client's
// CORSOrigins. It answers CORS preflights, which carry no body and so name
// no client; the request that follows is checked against its own client.
// The set is cached beside the clients and dropped on any client change,
// on every instance when on PostgreSQL; while the cache is off, each call
// reads the clients.
func (s *Store) AnyClientAllowsOrigin(ctx context.Context, origin string) (bool, error) {
	origins, gen, ok := s.clients.getOrigins()
	if !ok {
		var cs []*Client
		if err := s.db(ctx).Select("redirect_uris", "allowed_cors_origins").Find(&cs).Error; err != nil {
			return false, fmt.Errorf("list client origins: %w", translate(err))
		}
		origins = map[string]bool{}
		for _, c := range cs {
			for _, o := range c.CORSOrigins() {
				origins[o] = true
			}
		}
		if _, inTx := ctx.Value(txKey{}).(*txState); !inTx {
			s.clients.putOrigins(origins, gen)
		}
	}
	return origins[origin], nil
}

// ListClients returns every client ordered by ID.
func (s *Store) ListClients(ctx context.Context) ([]*Client, error) {
	var cs []*Client
	if err := s.db(ctx).Order("id").Find(&cs).Error; err != nil {
		return nil, fmt.Errorf("list clients: %w", translate(err))
	}
	return cs, nil
}

// UpdateClient changes a client under a row lock: it reads the current row
// (FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already admits one
// writer), lets update change it, and saves every column except the ID and
// the creation time, in one transaction. Concurrent updates therefore
// apply one after the other, each to what the previous one wrote, so none
// is lost (an admin PUT cannot restore a secret hash that a concurrent
// rotation replaced). The idea is dex's storage updaters. An error from
// update aborts and is returned as is; ErrNotFound if there is no client.
func (s *Store) UpdateClient(ctx context.Context, id string, update func(*Client) error) error {
	if !lookupable(id) {
		return fmt.Errorf("update client: %w", ErrNotFound)
	}
	return s.InTx(ctx, func(ctx context.Context) error {
		var c Client
		q := s.db(ctx).Where("id = ?", id)
		if s.dialect == DialectPostgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.Take(&c).Error; err != nil {
			return fmt.Errorf("update client: %w", translate(err))
		}
		created := c.CreatedAt
		if err := update(&c); err != nil {
			return err
		}
		c.ID, c.CreatedAt, c.UpdatedAt = id, created, s.nowUTC()
		c.fillLists()
		// Select("*") writes zero values too (false, empty); no column list
		// to keep in step with the struct.
		res := s.db(ctx).Model(&Client{}).Where("id = ?", id).Select("*").Omit("id", "created_at").Updates(&c)
		if res.Error != nil {
			return fmt.Errorf("update client: %w", translate(res.Error))
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("update client: %w", ErrNotFound)
		}
		return s.notifyClientChanged(ctx, id)
	})
}

// DeleteClient removes a client and, through the foreign keys, every token
// issued to it.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	res := s.db(ctx).Where("id = ?", id).Delete(&Client{})
	if res.Error != nil {
		return fmt.Errorf("delete client: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("delete client: %w", ErrNotFound)
	}
	return s.notifyClientChanged(ctx, id)
}
