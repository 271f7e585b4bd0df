package interop_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/lktest"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

const (
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeAccess    = "urn:ietf:params:oauth:token-type:access_token"
	ordersAudience     = "https://orders.example"
)

// exchangeFixture is a person's access token (scope read, audience
// orders) from a first-party app, and a backend registered for token
// exchange with client_secret_post.
func exchangeFixture(t *testing.T) (lk *lktest.Server, subject string, backend map[string]any) {
	t.Helper()
	lk = lktest.Start(t, nil)
	addUser(t, lk)
	app := lk.AdminPost("/admin/clients", map[string]any{"client_name": "first-party app", "trusted": true,
		"grant_types": []string{"password"}, "scope": "read", "audience": []string{ordersAudience}})
	backend = lk.AdminPost("/admin/clients", map[string]any{"client_name": "backend",
		"token_endpoint_auth_method": "client_secret_post", "grant_types": []string{grantTokenExchange},
		"scope": "read write", "audience": []string{ordersAudience}})
	form := url.Values{"grant_type": {"password"}, "username": {user.Username}, "password": {password}, "scope": {"read"}}
	req, _ := http.NewRequest(http.MethodPost, lk.Public.URL+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(app["client_id"].(string), app["client_secret"].(string))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("password grant: %d %v %v", resp.StatusCode, tok, err)
	}
	return lk, tok["access_token"].(string), backend
}

// openid-client's generic grant (genericGrantRequest) for token exchange,
// on Node, with its default client authentication: the answer it parses
// (issued_token_type, no refresh token), introspection of the new token
// (act names the backend), and invalid_scope for a scope wider than the
// person's token.
func TestOpenIDClientTokenExchangeOnNode(t *testing.T) {
	node := requireNode(t)
	lk, subject, backend := exchangeFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "web/node/token-exchange.mjs", lk.Issuer, backend["client_id"].(string),
		backend["client_secret"].(string), subject, ordersAudience)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	var got map[string]any
	if jerr := json.Unmarshal(stdout, &got); jerr != nil || err != nil || got["error"] != nil {
		t.Fatalf("openid-client: %v %s %v; stderr: %s", err, stdout, jerr, stderr.String())
	}
	act, _ := got["act"].(map[string]any)
	aud, _ := got["aud"].([]any)
	if got["supported"] != true || got["issued_token_type"] != tokenTypeAccess || !strings.EqualFold(got["token_type"].(string), "bearer") ||
		got["scope"] != "read" || got["refresh_token"] != nil || got["active"] != true || got["sub"] != user.ID ||
		got["client_id"] != backend["client_id"] || act["sub"] != backend["client_id"] || len(aud) != 1 || aud[0] != ordersAudience ||
		got["wider"] != "invalid_scope" {
		t.Fatalf("openid-client's token exchange: %v", got)
	}
}

// golang.org/x/oauth2 has no token exchange API of its own; a Go backend
// uses clientcredentials.Config, whose EndpointParams may replace
// grant_type (its documented escape hatch), with the subject token as a
// parameter. The oauth2.Token it parses carries issued_token_type.
func TestXOAuth2TokenExchange(t *testing.T) {
	lk, subject, backend := exchangeFixture(t)
	conf := clientcredentials.Config{
		ClientID: backend["client_id"].(string), ClientSecret: backend["client_secret"].(string),
		TokenURL: lk.Public.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams, Scopes: []string{"read"},
		EndpointParams: url.Values{"grant_type": {grantTokenExchange}, "subject_token": {subject},
			"subject_token_type": {tokenTypeAccess}, "resource": {ordersAudience}},
	}
	tok, err := conf.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tok.Extra("issued_token_type") != tokenTypeAccess || tok.RefreshToken != "" || tok.AccessToken == "" || tok.Expiry.IsZero() {
		t.Fatalf("x/oauth2 token: %+v issued_token_type=%v", tok, tok.Extra("issued_token_type"))
	}
	// A scope the person's token does not carry: the RFC 6749 §5.2 error
	// x/oauth2 parses.
	conf.Scopes = []string{"read", "write"}
	_, err = conf.Token(context.Background())
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_scope" {
		t.Fatalf("wider scope: %v", err)
	}
}
