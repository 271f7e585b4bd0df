package bff_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/clients/bff"
	"github.com/latchkey/latchkey/clients/internal/backchannel"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/lktest"
)

// cmd/bff's -internal-url: discovery (which must name the public issuer)
// is fetched at the internal URL, while the browser is sent to the public
// issuer's authorization endpoint, the one URL it can reach.
func TestInternalURL(t *testing.T) {
	const public = "https://auth.example.invalid"
	lk := lktest.Start(t, nil, func(c *config.Config) { c.Issuer = public })
	reg := lk.AdminPost("/admin/clients", map[string]any{"client_name": "BFF",
		"grant_types": []string{"authorization_code", "refresh_token"}, "redirect_uris": []string{"http://localhost:3000/auth/callback"},
		"scope": "openid profile"})
	cfg := bff.Config{Issuer: public, ClientID: reg["client_id"].(string), ClientSecret: reg["client_secret"].(string),
		BaseURL: "http://localhost:3000", Scopes: []string{"openid", "profile"}, Insecure: true}
	if _, err := bff.New(context.Background(), cfg); err == nil {
		t.Fatal("the public issuer answered without the internal URL; the test proves nothing")
	}
	wrong := cfg
	wrong.Issuer = lk.Public.URL
	if _, err := bff.New(context.Background(), wrong); err == nil {
		t.Error("discovery naming the public issuer was accepted with the internal URL as issuer")
	}
	hc, err := backchannel.Client(nil, public, lk.Public.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTPClient = hc
	b, err := bff.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("bff through the internal URL: %v", err)
	}
	rec := httptest.NewRecorder()
	b.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://localhost:3000/auth/login", nil))
	if loc := rec.Header().Get("Location"); rec.Code != http.StatusFound || !strings.HasPrefix(loc, public+"/oauth2/authorize?") {
		t.Errorf("sign-in sends the browser to %d %q, want the public authorization endpoint", rec.Code, loc)
	}
}
