package resourceserver_test

import (
	"context"
	"testing"

	"github.com/latchkey/latchkey/clients/internal/backchannel"
	resourceserver "github.com/latchkey/latchkey/clients/resource-server"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/lktest"
	"golang.org/x/oauth2/clientcredentials"
)

// The example's -internal-url: tokens name the public issuer, which this
// API cannot dial (as in a Compose network, where it is the host's
// address); the JWKS and introspection are fetched at the internal URL, and
// "iss" is still checked against the public issuer.
func TestInternalURL(t *testing.T) {
	const public = "https://auth.example.invalid"
	lk := lktest.Start(t, nil, func(c *config.Config) { c.Issuer = public })
	reg := lk.AdminPost("/admin/clients", map[string]any{"grant_types": []string{"client_credentials"},
		"scope": "invoices:read", "audience": []string{"https://api.example.com"}})
	svc := clientcredentials.Config{ClientID: reg["client_id"].(string), ClientSecret: reg["client_secret"].(string),
		TokenURL: lk.Public.URL + "/oauth2/token", Scopes: []string{"invoices:read"}}
	tok, err := svc.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	hc, err := backchannel.Client(nil, public, lk.Public.URL)
	if err != nil {
		t.Fatal(err)
	}
	caller := lk.AdminPost("/admin/clients", map[string]any{"grant_types": []string{"client_credentials"}})
	for _, tc := range []struct {
		name string
		cfg  resourceserver.Config
		ok   bool
	}{
		{"JWKS at the internal URL", resourceserver.Config{Issuer: public, HTTPClient: hc}, true},
		{"introspection at the internal URL", resourceserver.Config{Issuer: public, HTTPClient: hc,
			IntrospectionURL: public + "/oauth2/introspect", ClientID: caller["client_id"].(string), ClientSecret: caller["client_secret"].(string)}, true},
		{"public issuer dialled directly", resourceserver.Config{Issuer: public}, false},
		{"internal URL taken for the issuer", resourceserver.Config{Issuer: lk.Public.URL}, false},
		{"internal URL taken for the issuer, introspecting", resourceserver.Config{Issuer: lk.Public.URL,
			IntrospectionURL: lk.Public.URL + "/oauth2/introspect", ClientID: caller["client_id"].(string), ClientSecret: caller["client_secret"].(string)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Audience = "https://api.example.com"
			v, err := resourceserver.New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			claims, err := v.Verify(context.Background(), tok.AccessToken)
			if tc.ok && (err != nil || claims.Subject != reg["client_id"]) {
				t.Fatalf("Verify: %v, %+v", err, claims)
			}
			if !tc.ok && err == nil {
				t.Fatal("Verify accepted the token")
			}
		})
	}
}
