package interop_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/lktest"
	"golang.org/x/oauth2"
)

const deviceGrant = "urn:ietf:params:oauth:grant-type:device_code"

// golang.org/x/oauth2's device flow (RFC 8628) as its documentation sets
// it up: Config.DeviceAuth, then DeviceAccessToken, which polls until the
// person, signing in and approving on Latchkey's pages through the
// verification_uri_complete link, lets it in. A public client, as a CLI
// is; the ID token verifies with go-oidc and the refresh token refreshes.
// A denial ends the polling with access_denied.
func TestXOAuth2DeviceFlow(t *testing.T) {
	// A 1 s interval: DeviceAccessToken waits it before every poll.
	lk := lktest.Start(t, nil, func(c *config.Config) { c.DevicePollInterval = time.Second })
	addUser(t, lk)
	ctx := oidc.ClientContext(context.Background(), http.DefaultClient)
	provider, err := oidc.NewProvider(ctx, lk.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	reg := lk.AdminPost("/admin/clients", map[string]any{"client_name": "Go CLI", "token_endpoint_auth_method": "none",
		"grant_types": []string{deviceGrant, "refresh_token"}, "scope": "openid profile offline_access"})
	var md struct {
		DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint"`
	}
	if err := provider.Claims(&md); err != nil || md.DeviceAuthorizationEndpoint == "" {
		t.Fatalf("no device_authorization_endpoint in discovery: %v", err)
	}
	endpoint := provider.Endpoint()
	endpoint.DeviceAuthURL = md.DeviceAuthorizationEndpoint
	endpoint.AuthStyle = oauth2.AuthStyleInParams
	cfg := oauth2.Config{ClientID: reg["client_id"].(string), Endpoint: endpoint, Scopes: []string{oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess}}

	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatalf("DeviceAuth: %v", err)
	}
	if da.UserCode == "" || da.VerificationURI != lk.Issuer+"/device" || !strings.Contains(da.VerificationURIComplete, "user_code=") || da.Interval != 1 {
		t.Fatalf("device authorization: %+v", da)
	}
	p := newPerson(t, "")
	if _, body := p.visit(da.VerificationURIComplete); !strings.Contains(body, "Device connected") || strings.Join(p.pages, ",") != "login,consent" {
		t.Fatalf("approval through the pages %v:\n%s", p.pages, body)
	}
	pollCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tok, err := cfg.DeviceAccessToken(pollCtx, da)
	if err != nil {
		t.Fatalf("DeviceAccessToken: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("id_token: %v", err)
	}
	var c claims
	if err := idt.Claims(&c); err != nil || c.Subject != user.ID || c.Name != user.Name || c.SID == "" || c.AuthTime == 0 {
		t.Fatalf("id_token claims %+v: %v", c, err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token with offline_access")
	}
	expired := *tok
	expired.Expiry = time.Now().Add(-time.Minute)
	if fresh, err := cfg.TokenSource(ctx, &expired).Token(); err != nil || fresh.AccessToken == tok.AccessToken {
		t.Fatalf("refresh: %v", err)
	}

	// Denied: the polling ends with access_denied.
	da, err = cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p = newPerson(t, "")
	p.deny = true
	if _, body := p.visit(da.VerificationURIComplete); !strings.Contains(body, "denied") {
		t.Fatalf("denial page:\n%s", body)
	}
	_, err = cfg.DeviceAccessToken(pollCtx, da)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "access_denied" {
		t.Fatalf("DeviceAccessToken after a denial: %v, want access_denied", err)
	}
}
