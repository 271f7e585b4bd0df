package oauth

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/latchkey/latchkey/internal/dpop"
	"github.com/latchkey/latchkey/internal/keys"
)

// Metadata is the RFC 8414 authorization server metadata document.
type Metadata struct {
	Issuer                                     string   `json:"issuer"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint,omitempty"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	JWKSURI                                    string   `json:"jwks_uri,omitempty"`
	RevocationEndpoint                         string   `json:"revocation_endpoint"`
	IntrospectionEndpoint                      string   `json:"introspection_endpoint"`
	ResponseTypesSupported                     []string `json:"response_types_supported"`
	ResponseModesSupported                     []string `json:"response_modes_supported"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgs               []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	RevocationEndpointAuthMethodsSupported     []string `json:"revocation_endpoint_auth_methods_supported"`
	RevocationEndpointAuthSigningAlgs          []string `json:"revocation_endpoint_auth_signing_alg_values_supported"`
	IntrospectionEndpointAuthMethodsSupported  []string `json:"introspection_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthSigningAlgs       []string `json:"introspection_endpoint_auth_signing_alg_values_supported"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
	ScopesSupported                            []string `json:"scopes_supported"`
	AuthorizationResponseISSParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
	// Not registered in RFC 8414; named after its id_token sibling so that
	// resource servers can pin algorithms from metadata.
	AccessTokenSigningAlgs []string `json:"access_token_signing_alg_values_supported,omitempty"`
	// RFC 9449 §5.1: the algorithms a DPoP proof may be signed with.
	DPoPSigningAlgs []string `json:"dpop_signing_alg_values_supported"`

	// OpenID Connect Discovery 1.0 §3, RP-Initiated Logout 1.0 §2.1,
	// Back-Channel Logout 1.0 §2.1, Front-Channel Logout 1.0 §3, Prompt
	// Create §4. Each is registered in IANA's OAuth Authorization Server
	// Metadata registry too, which is why RFC 8414 metadata carries them.
	UserinfoEndpoint             string   `json:"userinfo_endpoint"`
	EndSessionEndpoint           string   `json:"end_session_endpoint"`
	SubjectTypesSupported        []string `json:"subject_types_supported"`
	IDTokenSigningAlgs           []string `json:"id_token_signing_alg_values_supported"`
	ClaimsSupported              []string `json:"claims_supported"`
	ACRValuesSupported           []string `json:"acr_values_supported"`
	ClaimTypesSupported          []string `json:"claim_types_supported"`
	PromptValuesSupported        []string `json:"prompt_values_supported"`
	BackchannelLogoutSupported   bool     `json:"backchannel_logout_supported"`
	BackchannelLogoutSession     bool     `json:"backchannel_logout_session_supported"`
	FrontchannelLogoutSupported  bool     `json:"frontchannel_logout_supported"`
	ClaimsParameterSupported     bool     `json:"claims_parameter_supported"`
	RequestParameterSupported    bool     `json:"request_parameter_supported"`
	RequestURIParameterSupported bool     `json:"request_uri_parameter_supported"`

	// RFC 9126 §5.
	PushedAuthorizationRequestEndpoint string `json:"pushed_authorization_request_endpoint"`
	RequirePushedAuthorizationRequests bool   `json:"require_pushed_authorization_requests"`

	// RFC 8628 §4.
	DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint"`
}

// IDTokenAlgorithms are the algorithms a client may register as
// id_token_signed_response_alg; the key set holds a key for each. RS256
// first: Discovery §3 requires it of every OP.
var IDTokenAlgorithms = []string{"RS256", "ES256", "EdDSA"}

// claimsSupported are the claims an ID token or userinfo can carry (Core
// §2, §5.1), listed in Discovery so that RPs know what to expect.
var claimsSupported = []string{
	"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "amr", "acr",
	"name", "given_name", "family_name", "preferred_username", "picture", "locale", "updated_at",
	"email", "email_verified", "groups",
}

// Metadata describes what this server offers. Endpoints appear here only
// once they are served.
func (p *Provider) Metadata() Metadata {
	confidential := []string{"client_secret_basic", "client_secret_post", "private_key_jwt"}
	// RFC 8414 §2: required wherever private_key_jwt is offered.
	var assertionAlgs []string
	for _, a := range keys.ClientAssertionAlgorithms {
		assertionAlgs = append(assertionAlgs, string(a))
	}
	return Metadata{
		Issuer:                                    p.cfg.Issuer,
		AuthorizationEndpoint:                     p.cfg.IssuerURL(PathAuthorize),
		TokenEndpoint:                             p.cfg.IssuerURL(PathToken),
		RevocationEndpoint:                        p.cfg.IssuerURL(PathRevoke),
		IntrospectionEndpoint:                     p.cfg.IssuerURL(PathIntrospect),
		JWKSURI:                                   p.cfg.IssuerURL(PathJWKS),
		ResponseTypesSupported:                    []string{"code"},
		ResponseModesSupported:                    []string{"query"},
		GrantTypesSupported:                       []string{"authorization_code", "client_credentials", "password", "refresh_token", GrantTypeTokenExchange, GrantTypeDeviceCode},
		TokenEndpointAuthMethodsSupported:         append(confidential, "none"),
		TokenEndpointAuthSigningAlgs:              assertionAlgs,
		RevocationEndpointAuthMethodsSupported:    append(confidential, "none"),
		RevocationEndpointAuthSigningAlgs:         assertionAlgs,
		IntrospectionEndpointAuthMethodsSupported: confidential,
		IntrospectionEndpointAuthSigningAlgs:      assertionAlgs,
		// RFC 9700 §2.1.1: plain PKCE is not offered.
		CodeChallengeMethodsSupported:              []string{"S256"},
		ScopesSupported:                            BuiltinScopes,
		AuthorizationResponseISSParameterSupported: true,
		AccessTokenSigningAlgs:                     p.signingAlgs(),
		DPoPSigningAlgs:                            dpop.AlgorithmNames(),

		UserinfoEndpoint:      p.cfg.IssuerURL(PathUserinfo),
		EndSessionEndpoint:    p.cfg.IssuerURL(PathEndSession),
		SubjectTypesSupported: []string{"public"},
		IDTokenSigningAlgs:    IDTokenAlgorithms,
		ClaimsSupported:       claimsSupported,
		ACRValuesSupported:    ACRValuesSupported,
		ClaimTypesSupported:   []string{"normal"},
		PromptValuesSupported: []string{"none", "login", "consent", "select_account"},
		// Logout tokens carry sid (Back-Channel Logout §2.1); there is no
		// front-channel logout (iframes break under third-party cookie
		// blocking).
		BackchannelLogoutSupported:  true,
		BackchannelLogoutSession:    true,
		FrontchannelLogoutSupported: false,
		// Discovery §3 makes request_uri_parameter_supported true when
		// absent, so each "no" is said out loud. The request_uri of a
		// pushed request (RFC 9126) is accepted; this flag is about
		// request objects fetched from a client's URL, which are not.
		ClaimsParameterSupported:     false,
		RequestParameterSupported:    false,
		RequestURIParameterSupported: false,

		PushedAuthorizationRequestEndpoint: p.cfg.IssuerURL(PathPAR),
		DeviceAuthorizationEndpoint:        p.cfg.IssuerURL(PathDeviceAuthorization),
		// The server-wide rule; a client's own is in its metadata.
		RequirePushedAuthorizationRequests: p.cfg.RequirePAR,
	}
}

// signingAlgs lists the algorithms of the published keys, the signing
// one first.
func (p *Provider) signingAlgs() []string {
	var algs []string
	if cur, err := p.keys.Current(); err == nil {
		algs = append(algs, string(cur.Alg))
	}
	for _, k := range p.keys.Published() {
		if !slices.Contains(algs, string(k.Alg)) {
			algs = append(algs, string(k.Alg))
		}
	}
	return algs
}

// ServeJWKS serves GET /.well-known/jwks.json. Caches may keep the set for
// less than the pre-publication period, so a cached set always holds a key
// before it signs.
func (p *Provider) ServeJWKS(w http.ResponseWriter, r *http.Request) {
	maxAge := min(p.cfg.KeyPrepublishPeriod/2, 5*time.Minute)
	if maxAge < time.Second {
		w.Header().Set("Cache-Control", "no-cache")
	} else {
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(maxAge.Seconds())))
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	writeJSONBody(w, p.keys.JWKS())
}

// ServeMetadata serves GET /.well-known/oauth-authorization-server (RFC
// 8414) and GET /.well-known/openid-configuration (Discovery 1.0 §4): one
// document at both, so a client reads the same endpoints whichever it
// discovers from.
func (p *Provider) ServeMetadata(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSONBody(w, p.Metadata())
}
