package resourceserver_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	resourceserver "github.com/latchkey/latchkey/clients/resource-server"
)

// Every way a token can be wrong gets the RFC 6750 answer, with tokens
// signed by a key this test publishes itself, so each claim can be bent.
func TestTokenChecks(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	}))
	defer jwks.Close()
	const issuer = "https://issuer.example"
	v, err := resourceserver.New(resourceserver.Config{Issuer: issuer, Audience: "https://api.example.com", JWKSURL: jwks.URL, Leeway: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rs := api(t, v)

	type claims struct {
		jwt.Claims
		Scope string `json:"scope"`
	}
	good := func() claims {
		return claims{Claims: jwt.Claims{Issuer: issuer, Subject: "svc", Audience: jwt.Audience{"https://api.example.com"},
			Expiry: jwt.NewNumericDate(time.Now().Add(time.Minute)), IssuedAt: jwt.NewNumericDate(time.Now()), ID: "j"}, Scope: "invoices:read"}
	}
	sign := func(c claims, typ string, k any) string {
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k, KeyID: "k1"}}, (&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
		tok, _ := jwt.Signed(s).Claims(c).Serialize()
		return tok
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	expired, wrongAud, wrongIss, future, noScope, longLived, noIat := good(), good(), good(), good(), good(), good(), good()
	// A stolen signing key mints tokens that say they live a year.
	longLived.Expiry = jwt.NewNumericDate(time.Now().Add(365 * 24 * time.Hour))
	noIat.IssuedAt = nil
	expired.Expiry = jwt.NewNumericDate(time.Now().Add(-time.Minute))
	wrongAud.Audience = jwt.Audience{"https://other.example"}
	wrongIss.Issuer = "https://evil.example"
	future.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour))
	noScope.Scope = "reports:read"
	valid := sign(good(), "at+jwt", key)

	cases := []struct {
		name      string
		token     string
		status    int
		challenge string
	}{
		{"valid", valid, 200, ""},
		{"expired", sign(expired, "at+jwt", key), 401, `error="invalid_token"`},
		{"wrong audience", sign(wrongAud, "at+jwt", key), 401, `error="invalid_token"`},
		{"wrong issuer", sign(wrongIss, "at+jwt", key), 401, `error="invalid_token"`},
		{"not yet valid", sign(future, "at+jwt", key), 401, `error="invalid_token"`},
		{"wrong typ (an ID token or a plain JWT)", sign(good(), "JWT", key), 401, `error="invalid_token"`},
		{"signed by another key", sign(good(), "at+jwt", other), 401, `error="invalid_token"`},
		{"tampered", valid[:strings.LastIndexByte(valid, '.')-3] + "abc" + valid[strings.LastIndexByte(valid, '.'):], 401, `error="invalid_token"`},
		{"missing scope", sign(noScope, "at+jwt", key), 403, `error="insufficient_scope"`},
		{"lifetime longer than MaxTokenLifetime", sign(longLived, "at+jwt", key), 401, `error="invalid_token"`},
		{"no iat to check the lifetime against", sign(noIat, "at+jwt", key), 401, `error="invalid_token"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, rs.URL+"/invoices", tc.token)
			if resp.StatusCode != tc.status || !strings.Contains(resp.Header.Get("WWW-Authenticate"), tc.challenge) {
				t.Fatalf("got %d %q %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
			}
		})
	}
}
