package oauth

import "net/http"

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
	IntrospectionEndpointAuthMethodsSupported  []string `json:"introspection_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
	ScopesSupported                            []string `json:"scopes_supported"`
	AuthorizationResponseISSParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
}

// Metadata describes what this server offers. Endpoints appear here only
// once they are served.
func (p *Provider) Metadata() Metadata {
	confidential := []string{"client_secret_basic", "client_secret_post", "private_key_jwt"}
	return Metadata{
		Issuer:                                    p.cfg.Issuer,
		TokenEndpoint:                             p.cfg.IssuerURL(PathToken),
		RevocationEndpoint:                        p.cfg.IssuerURL(PathRevoke),
		IntrospectionEndpoint:                     p.cfg.IssuerURL(PathIntrospect),
		ResponseTypesSupported:                    []string{"code"},
		ResponseModesSupported:                    []string{"query"},
		GrantTypesSupported:                       []string{"authorization_code", "client_credentials", "password", "refresh_token"},
		TokenEndpointAuthMethodsSupported:         append(confidential, "none"),
		TokenEndpointAuthSigningAlgs:              []string{"RS256", "ES256"},
		RevocationEndpointAuthMethodsSupported:    append(confidential, "none"),
		IntrospectionEndpointAuthMethodsSupported: confidential,
		// RFC 9700 §2.1.1: plain PKCE is not offered.
		CodeChallengeMethodsSupported:              []string{"S256"},
		ScopesSupported:                            []string{"offline_access"},
		AuthorizationResponseISSParameterSupported: true,
	}
}

// ServeMetadata serves GET /.well-known/oauth-authorization-server.
func (p *Provider) ServeMetadata(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSONBody(w, p.Metadata())
}
