package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/clients/internal/backchannel"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/lktest"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// publicIssuer resolves nowhere: only the internal URL reaches Latchkey,
// as inside a Compose network where the issuer is the host's address.
const publicIssuer = "https://auth.example.invalid"

// With -internal-url the service checks the metadata against the public
// issuer but fetches it, and its tokens, from the internal URL; the token
// still names the public issuer.
func TestInternalURL(t *testing.T) {
	lk := lktest.Start(t, nil, func(c *config.Config) { c.Issuer = publicIssuer })
	if _, err := discoverTokenURL(context.Background(), http.DefaultClient, publicIssuer); err == nil {
		t.Fatal("the public issuer answered without the internal URL; the test proves nothing")
	}
	hc, err := backchannel.Client(nil, publicIssuer, lk.Public.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, hc)
	tokenURL, err := discoverTokenURL(ctx, hc, publicIssuer)
	if err != nil || tokenURL != publicIssuer+"/oauth2/token" {
		t.Fatalf("token endpoint %q, %v", tokenURL, err)
	}
	// Metadata reached through the internal URL must still name the
	// issuer the service was given.
	if _, err := discoverTokenURL(ctx, http.DefaultClient, lk.Public.URL); err == nil {
		t.Error("metadata naming the public issuer was accepted for the internal URL as issuer")
	}
	reg := lk.AdminPost("/admin/clients", map[string]any{"grant_types": []string{"client_credentials"}})
	conf := clientcredentials.Config{ClientID: reg["client_id"].(string), ClientSecret: reg["client_secret"].(string),
		TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInHeader}
	tok, err := conf.Token(ctx)
	if err != nil {
		t.Fatalf("token through the internal URL: %v", err)
	}
	parts := strings.Split(tok.AccessToken, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWT: %q", tok.AccessToken)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Iss != publicIssuer {
		t.Errorf("token iss %q (%v), want the public issuer %q", claims.Iss, err, publicIssuer)
	}
}
