package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"golang.org/x/oauth2"
)

// metadata is the part of the issuer's OpenID Provider metadata lkcli
// uses (OpenID Connect Discovery 1.0 §3, RFC 8414 §2, RFC 8628 §4).
type metadata struct {
	Issuer                      string   `json:"issuer"`
	AuthorizationEndpoint       string   `json:"authorization_endpoint"`
	TokenEndpoint               string   `json:"token_endpoint"`
	RevocationEndpoint          string   `json:"revocation_endpoint"`
	DeviceAuthorizationEndpoint string   `json:"device_authorization_endpoint"`
	CodeChallengeMethods        []string `json:"code_challenge_methods_supported"`
	IssParameterSupported       bool     `json:"authorization_response_iss_parameter_supported"`
}

// discover reads the issuer's metadata. Endpoints are never guessed from
// fixed paths: a deployment may move them.
func (a *App) discover(ctx context.Context, issuer string) (*metadata, error) {
	u := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("issuer %q: %w", issuer, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := a.httpClient().Do(req)
	if err != nil {
		return nil, unreachable(issuer, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, unreachable(issuer, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %d: is %s a Latchkey issuer?", u, resp.StatusCode, issuer)
	}
	var m metadata
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	// OpenID Connect Discovery §4.3: the document must name the issuer
	// it was fetched for, or it is someone else's.
	if m.Issuer != issuer {
		return nil, fmt.Errorf("%s says its issuer is %q, not %q", u, m.Issuer, issuer)
	}
	if m.TokenEndpoint == "" {
		return nil, fmt.Errorf("%s names no token_endpoint", u)
	}
	return &m, nil
}

// oauth2Config is the x/oauth2 configuration of a public client: no
// secret, client_id in the request body (RFC 6749 §2.3.1 "none").
func (m *metadata) oauth2Config(clientID string, scopes []string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: clientID,
		Scopes:   scopes,
		Endpoint: oauth2.Endpoint{
			AuthURL:       m.AuthorizationEndpoint,
			TokenURL:      m.TokenEndpoint,
			DeviceAuthURL: m.DeviceAuthorizationEndpoint,
			AuthStyle:     oauth2.AuthStyleInParams,
		},
	}
}
