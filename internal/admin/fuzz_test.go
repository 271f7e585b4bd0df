package admin

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// Whatever a registration says, validating it must not panic, and what it
// accepts must hold the rules: absolute, no fragment, https unless loopback
// or a private-use scheme of a public client.
func FuzzRedirectURI(f *testing.F) {
	for _, s := range []string{"https://app.example/cb", "http://127.0.0.1:8080/cb", "com.example.app:/cb", "https://a/#x",
		"javascript:alert(1)", "http://evil.example/", "https://user@host/", "//no-scheme", "http://[::1]/", ""} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, raw string, public bool) {
		if err := validateRedirectURI(raw, public); err != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || !u.IsAbs() || strings.Contains(raw, "#") || u.User != nil {
			t.Fatalf("accepted %q", raw)
		}
		scheme := strings.ToLower(u.Scheme)
		if scheme == "http" && !isLoopbackHost(u.Hostname()) {
			t.Fatalf("accepted plain http to %q", raw)
		}
		if scheme != "http" && scheme != "https" && (!public || !strings.Contains(scheme, ".")) {
			t.Fatalf("accepted scheme of %q (public %v)", raw, public)
		}
	})
}

// Any JSON body either fails to decode or normalizes without panicking, a
// public client never ends up with a secret-only grant, and the OpenID
// Connect metadata accepted holds its rules.
func FuzzClientMetadata(f *testing.F) {
	f.Add([]byte(`{"grant_types":["client_credentials"],"scope":"read"}`))
	f.Add([]byte(`{"token_endpoint_auth_method":"none","grant_types":["urn:ietf:params:oauth:grant-type:token-exchange"]}`))
	f.Add([]byte(`{"token_endpoint_auth_method":"none","grant_types":["authorization_code"],"redirect_uris":["https://a/cb"]}`))
	f.Add([]byte(`{"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[{"kty":"EC"}]}}`))
	f.Add([]byte(`{"client_id":"\u0000","audience":[""]}`))
	f.Add([]byte(`{"grant_types":["client_credentials"],"id_token_signed_response_alg":"EdDSA","backchannel_logout_uri":"https://rp/bcl","backchannel_logout_session_required":true}`))
	f.Add([]byte(`{"grant_types":["client_credentials"],"backchannel_logout_uri":"http://127.0.0.1/bcl#x","id_token_signed_response_alg":"none"}`))
	f.Add([]byte(`{"redirect_uris":["https://a/cb"],"post_logout_redirect_uris":["com.example.app:/bye"],"token_endpoint_auth_method":"none"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var md ClientMetadata
		if json.Unmarshal(body, &md) != nil {
			return
		}
		c, err := normalize(&md)
		if err != nil {
			return
		}
		if c.Public {
			for _, g := range c.GrantTypes {
				if g == "client_credentials" || g == "password" || g == GrantTypeTokenExchange {
					t.Fatalf("public client with %s", g)
				}
			}
		}
		if a := c.IDTokenSignedResponseAlg; a != "RS256" && a != "ES256" && a != "EdDSA" {
			t.Fatalf("id_token_signed_response_alg %q", a)
		}
		if bcl := c.BackchannelLogoutURI; bcl == "" {
			if c.BackchannelLogoutSessionRequired {
				t.Fatal("backchannel_logout_session_required without a URI")
			}
		} else if u, err := url.Parse(bcl); err != nil || !u.IsAbs() || u.Host == "" || strings.Contains(bcl, "#") || u.User != nil ||
			(strings.ToLower(u.Scheme) != "https" && (strings.ToLower(u.Scheme) != "http" || !isLoopbackHost(u.Hostname()))) {
			t.Fatalf("accepted backchannel_logout_uri %q", bcl)
		}
		for _, p := range c.PostLogoutRedirectURIs {
			if validateRedirectURI(p, c.Public) != nil {
				t.Fatalf("accepted post_logout_redirect_uri %q", p)
			}
		}
	})
}
