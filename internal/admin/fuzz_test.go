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

// Any JSON body either fails to decode or normalizes without panicking, and
// a public client never ends up with a secret-only grant.
func FuzzClientMetadata(f *testing.F) {
	f.Add([]byte(`{"grant_types":["client_credentials"],"scope":"read"}`))
	f.Add([]byte(`{"token_endpoint_auth_method":"none","grant_types":["authorization_code"],"redirect_uris":["https://a/cb"]}`))
	f.Add([]byte(`{"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[{"kty":"EC"}]}}`))
	f.Add([]byte(`{"client_id":"\u0000","audience":[""]}`))
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
				if g == "client_credentials" || g == "password" {
					t.Fatalf("public client with %s", g)
				}
			}
		}
	})
}
