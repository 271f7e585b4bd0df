package interop_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/latchkey/latchkey/internal/lktest"
	"golang.org/x/oauth2"
)

func randomString(t *testing.T) string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// claims are the ID token and userinfo claims the tests read.
type claims struct {
	Subject       string   `json:"sub"`
	Name          string   `json:"name"`
	Email         string   `json:"email"`
	EmailVerified bool     `json:"email_verified"`
	Groups        []string `json:"groups"`
	AuthTime      int64    `json:"auth_time"`
	SID           string   `json:"sid"`
	AMR           []string `json:"amr"`
}

// golang.org/x/oauth2 with coreos/go-oidc v3, as their READMEs set them up:
// oidc.NewProvider from the issuer, provider.Endpoint() (x/oauth2's default
// client authentication, which starts with client_secret_basic), code flow
// with PKCE and a nonce through Latchkey's login page, Verifier.Verify, the
// nonce compared by the app, at_hash by IDToken.VerifyAccessToken,
// Provider.UserInfo, and a refresh whose new ID token verifies too. Once for
// each algorithm a client may register for its ID tokens.
func TestGoOIDCWithXOAuth2(t *testing.T) {
	lk := lktest.Start(t, nil)
	addUser(t, lk)
	ctx := oidc.ClientContext(context.Background(), http.DefaultClient)
	provider, err := oidc.NewProvider(ctx, lk.Issuer)
	if err != nil {
		t.Fatalf("oidc.NewProvider(%s): %v", lk.Issuer, err)
	}
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			const redirect = "http://127.0.0.1:5555/callback"
			reg := lk.AdminPost("/admin/clients", map[string]any{"client_name": "Go app " + alg,
				"grant_types": []string{"authorization_code", "refresh_token"}, "redirect_uris": []string{redirect},
				"scope": "openid profile email groups offline_access", "id_token_signed_response_alg": alg})
			cfg := oauth2.Config{ClientID: reg["client_id"].(string), ClientSecret: reg["client_secret"].(string),
				Endpoint: provider.Endpoint(), RedirectURL: redirect,
				Scopes: []string{oidc.ScopeOpenID, "profile", "email", "groups", oidc.ScopeOfflineAccess}}
			verifier := provider.Verifier(&oidc.Config{ClientID: cfg.ClientID})

			state, nonce, pkce := randomString(t), randomString(t), oauth2.GenerateVerifier()
			p := newPerson(t, redirect)
			back, body := p.visit(cfg.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(pkce)))
			if back == nil || back.Query().Get("code") == "" {
				t.Fatalf("no code: %v %s", back, body)
			}
			if back.Query().Get("state") != state || back.Query().Get("iss") != lk.Issuer {
				t.Fatalf("callback %s: state or iss wrong", back)
			}
			if !p.sawLogin() {
				t.Fatal("the person signed in without the login page")
			}
			tok, err := cfg.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(pkce))
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			raw, _ := tok.Extra("id_token").(string)
			if raw == "" {
				t.Fatal("the token response has no id_token")
			}
			if got := signedWith(t, raw); got != alg {
				t.Fatalf("ID token signed with %s, the client registered %s", got, alg)
			}
			idToken, err := verifier.Verify(ctx, raw)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if idToken.Nonce != nonce {
				t.Fatalf("nonce %q, sent %q", idToken.Nonce, nonce)
			}
			if err := idToken.VerifyAccessToken(tok.AccessToken); err != nil {
				t.Fatalf("at_hash: %v", err)
			}
			var first claims
			if err := idToken.Claims(&first); err != nil {
				t.Fatal(err)
			}
			if first.Subject != user.ID || first.Name != user.Name || first.Email != user.Email || !first.EmailVerified ||
				!slices.Equal(first.Groups, user.Groups) || first.SID == "" || first.AuthTime == 0 {
				t.Fatalf("ID token claims %+v", first)
			}

			info, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatalf("UserInfo: %v", err)
			}
			var fromInfo claims
			if err := info.Claims(&fromInfo); err != nil {
				t.Fatal(err)
			}
			if info.Subject != user.ID || info.Email != user.Email || !info.EmailVerified || fromInfo.Name != user.Name {
				t.Fatalf("userinfo %+v %+v", info, fromInfo)
			}

			// Refresh: x/oauth2 refreshes an expired token by itself; the new
			// ID token verifies and names the same person, login time and
			// session.
			tok.Expiry = time.Now().Add(-time.Minute)
			next, err := cfg.TokenSource(ctx, tok).Token()
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			raw2, _ := next.Extra("id_token").(string)
			if raw2 == "" || raw2 == raw {
				t.Fatal("the refresh returned no new id_token")
			}
			idToken2, err := verifier.Verify(ctx, raw2)
			if err != nil {
				t.Fatalf("Verify after refresh: %v", err)
			}
			if err := idToken2.VerifyAccessToken(next.AccessToken); err != nil {
				t.Fatalf("at_hash after refresh: %v", err)
			}
			var second claims
			_ = idToken2.Claims(&second)
			if second.Subject != first.Subject || second.AuthTime != first.AuthTime || second.SID != first.SID {
				t.Fatalf("after refresh %+v, before %+v", second, first)
			}
			if signedWith(t, raw2) != alg {
				t.Fatalf("refreshed ID token not signed with %s", alg)
			}

			// A token for another client does not verify for this one.
			other := provider.Verifier(&oidc.Config{ClientID: "someone-else"})
			if _, err := other.Verify(ctx, raw); err == nil {
				t.Fatal("an ID token verified for a client it was not issued to")
			}
		})
	}
}

func signedWith(t *testing.T, raw string) string {
	t.Helper()
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	return jws.Signatures[0].Header.Algorithm
}
