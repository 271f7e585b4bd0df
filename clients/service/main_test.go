package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/lktest"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// The service finds the token endpoint in the issuer's metadata, refuses
// metadata that names another issuer, and, with its auth style pinned, a
// wrong secret fails as what it is: invalid_client.
func TestDiscoveryAndPinnedAuthStyle(t *testing.T) {
	lk := lktest.Start(t, nil)
	ctx := context.Background()
	tokenURL, err := discoverTokenURL(ctx, http.DefaultClient, lk.Issuer+"/")
	if err != nil || tokenURL != lk.Issuer+"/oauth2/token" {
		t.Fatalf("token endpoint %q, %v", tokenURL, err)
	}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"issuer":"`+lk.Issuer+`","token_endpoint":"`+lk.Issuer+`/oauth2/token"}`)
	}))
	defer other.Close()
	if _, err := discoverTokenURL(ctx, http.DefaultClient, other.URL); err == nil {
		t.Fatal("metadata naming another issuer was accepted")
	}

	reg := lk.AdminPost("/admin/clients", map[string]any{"grant_types": []string{"client_credentials"}})
	conf := clientcredentials.Config{ClientID: reg["client_id"].(string), ClientSecret: "wrong", TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInHeader}
	_, err = conf.Token(ctx)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_client" || strings.Contains(re.ErrorDescription, "client_secret_post") {
		t.Fatalf("wrong secret: %v, want invalid_client", err)
	}
	conf.ClientSecret = reg["client_secret"].(string)
	if tok, err := conf.Token(ctx); err != nil || tok.AccessToken == "" {
		t.Fatalf("right secret: %v", err)
	}
}
