package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"github.com/lestrrat-go/jwx/v3/jwk"
	lestrratjwt "github.com/lestrrat-go/jwx/v3/jwt"
)

func jwtHarness(t *testing.T, b storetest.Backend, tune ...func(*config.Config)) *harness {
	return newHarness(t, b, append([]func(*config.Config){func(c *config.Config) { c.AccessTokenFormat = config.FormatJWT }}, tune...)...)
}

func (h *harness) jwks() jose.JSONWebKeySet {
	h.t.Helper()
	resp, err := http.Get(h.public.URL + "/.well-known/jwks.json")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	if cc := resp.Header.Get("Cache-Control"); h.cfg.KeyPrepublishPeriod > 0 && !strings.Contains(cc, "max-age=") {
		h.t.Errorf("JWKS Cache-Control = %q", cc)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		h.t.Fatal(err)
	}
	return set
}

type rfc9068Claims struct {
	josejwt.Claims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	GrantID  string `json:"gid"`
}

// verifyWithGoJose verifies a token the way a resource server would: with
// nothing but the JWKS fetched over HTTP.
func verifyWithGoJose(t *testing.T, h *harness, token string) (*rfc9068Claims, error) {
	t.Helper()
	parsed, err := josejwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA})
	if err != nil {
		return nil, err
	}
	if typ := parsed.Headers[0].ExtraHeaders[jose.HeaderType]; typ != "at+jwt" {
		t.Errorf("typ = %v, want at+jwt", typ)
	}
	set := h.jwks()
	found := set.Key(parsed.Headers[0].KeyID)
	if len(found) != 1 {
		return nil, errNoKey
	}
	var c rfc9068Claims
	if err := parsed.Claims(found[0].Key, &c); err != nil {
		return nil, err
	}
	if err := c.ValidateWithLeeway(josejwt.Expected{Issuer: h.cfg.Issuer, Time: h.now()}, 0); err != nil {
		return nil, err
	}
	return &c, nil
}

var errNoKey = errors.New("no published key with that kid")

func TestJWTAccessTokens(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := jwtHarness(t, b)
		svc := h.serviceClient("read write")
		rs := h.serviceClient("introspect")
		m := h.token(svc, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}, "audience": {"https://api.example"}})
		token := m["access_token"].(string)

		// Stateless: issuing a JWT access token writes no row.
		if rows := storetest.RawSignatures(t, h.store, "access_tokens"); len(rows) != 0 {
			t.Fatalf("JWT issuance wrote %d access token rows", len(rows))
		}

		c, err := verifyWithGoJose(t, h, token)
		if err != nil {
			t.Fatalf("go-jose verification: %v", err)
		}
		if c.Issuer != h.cfg.Issuer || c.Subject != svc.id || c.ClientID != svc.id || c.Scope != "read" ||
			len(c.Audience) != 1 || c.Audience[0] != "https://api.example" || c.ID == "" || c.GrantID == "" ||
			c.IssuedAt == nil || c.Expiry == nil {
			t.Fatalf("claims %+v", c)
		}
		if ttl := c.Expiry.Time().Sub(c.IssuedAt.Time()); ttl != h.cfg.AccessTokenTTL {
			t.Errorf("exp - iat = %s, want %s", ttl, h.cfg.AccessTokenTTL)
		}
		// No personal data beyond sub: the payload has exactly these claims.
		var raw map[string]any
		payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
		_ = json.Unmarshal(payload, &raw)
		for k := range raw {
			switch k {
			case "iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "gid":
			default:
				t.Errorf("unexpected claim %q", k)
			}
		}

		// An independent library, fetching the JWKS itself.
		set, err := jwk.Fetch(context.Background(), h.public.URL+"/.well-known/jwks.json")
		if err != nil {
			t.Fatal(err)
		}
		tok, err := lestrratjwt.Parse([]byte(token), lestrratjwt.WithKeySet(set), lestrratjwt.WithValidate(true),
			lestrratjwt.WithIssuer(h.cfg.Issuer), lestrratjwt.WithAudience("https://api.example"))
		if err != nil {
			t.Fatalf("lestrrat-go/jwx verification: %v", err)
		}
		if sub, _ := tok.Subject(); sub != svc.id {
			t.Errorf("jwx sub = %q", sub)
		}

		// Every token has its own jti.
		again := h.token(svc, url.Values{"grant_type": {"client_credentials"}})["access_token"].(string)
		c2, err := verifyWithGoJose(t, h, again)
		if err != nil || c2.ID == c.ID || c2.GrantID == c.GrantID {
			t.Fatalf("second token: %+v, %v", c2, err)
		}
		// Nothing asked, nothing registered: the issuer is the audience.
		bare := h.client(map[string]any{"grant_types": []string{"client_credentials"}})
		c3, err := verifyWithGoJose(t, h, h.token(bare, url.Values{"grant_type": {"client_credentials"}})["access_token"].(string))
		if err != nil || len(c3.Audience) != 1 || c3.Audience[0] != h.cfg.Issuer {
			t.Fatalf("default audience: %+v, %v", c3, err)
		}

		in := h.introspect(rs, token)
		if in["active"] != true || in["jti"] != c.ID || in["sub"] != svc.id || in["client_id"] != svc.id ||
			in["scope"] != "read" || in["iss"] != h.cfg.Issuer || int64(in["exp"].(float64)) != c.Expiry.Time().Unix() {
			t.Fatalf("introspection %v", in)
		}

		// Revocation shows in introspection at once.
		if resp, body := h.form("/oauth2/revoke", svc.id, svc.secret, url.Values{"token": {token}}); resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke: %d %v", resp.StatusCode, body)
		}
		if in := h.introspect(rs, token); len(in) != 1 || in["active"] != false {
			t.Fatalf("revoked JWT introspects %v", in)
		}
		if in := h.introspect(rs, again); in["active"] != true {
			t.Fatalf("revoking one token revoked another grant: %v", in)
		}
		// Another client cannot revoke it.
		resp, body := h.form("/oauth2/revoke", rs.id, rs.secret, url.Values{"token": {again}})
		wantError(t, resp, body, http.StatusBadRequest, "unauthorized_client")
	})
}

func TestJWTRejected(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := jwtHarness(t, b)
		svc := h.serviceClient("read")
		token := h.token(svc, url.Values{"grant_type": {"client_credentials"}})["access_token"].(string)
		parts := strings.Split(token, ".")

		// A token signed with a key that is not published.
		foreign, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		kid := h.jwks().Keys[0].KeyID
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: foreign, KeyID: kid}},
			(&jose.SignerOptions{}).WithType("at+jwt"))
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var claims map[string]any
		_ = json.Unmarshal(payload, &claims)
		forged, _ := josejwt.Signed(signer).Claims(claims).Serialize()

		none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt","kid":"`+kid+`"}`)) + "." + parts[1] + "."
		tamperedClaims := map[string]any{}
		for k, v := range claims {
			tamperedClaims[k] = v
		}
		tamperedClaims["scope"] = "read admin"
		tp, _ := json.Marshal(tamperedClaims)
		tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(tp) + "." + parts[2]

		for name, tok := range map[string]string{"unpublished key": forged, "alg none": none, "tampered": tampered, "truncated": parts[0] + "." + parts[1] + ".AAAA"} {
			if in := h.introspect(svc, tok); len(in) != 1 || in["active"] != false {
				t.Errorf("%s: introspection %v", name, in)
			}
			if _, err := verifyWithGoJose(t, h, tok); err == nil {
				t.Errorf("%s: verified against the JWKS", name)
			}
		}
	})
}

func TestJWTExpired(t *testing.T) {
	h := jwtHarness(t, storetest.Backends()[0])
	svc := h.serviceClient("read")
	token := h.token(svc, url.Values{"grant_type": {"client_credentials"}})["access_token"].(string)
	if h.introspect(svc, token)["active"] != true {
		t.Fatal("a fresh JWT is not active")
	}
	// A second past the lifetime (iat and exp are whole seconds).
	h.clock.advance(h.cfg.AccessTokenTTL + time.Second)
	if in := h.introspect(svc, token); in["active"] != false {
		t.Fatalf("JWT still active after its lifetime: %v", in)
	}
	if _, err := verifyWithGoJose(t, h, token); err == nil {
		t.Fatal("expired token verified")
	}
}

// A revoked grant ends its JWT access tokens too: revoking the refresh
// token and reusing a rotated one both show in introspection at once.
func TestJWTGrantRevocation(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := jwtHarness(t, b)
		h.user("carol", "carol-password-1")
		c := passwordClient(h, true)
		first := h.token(c, url.Values{"grant_type": {"password"}, "username": {"carol"}, "password": {"carol-password-1"}, "scope": {"read offline_access"}})
		at1 := first["access_token"].(string)
		if in := h.introspect(c, at1); in["username"] != "carol" || in["active"] != true {
			t.Fatalf("user grant introspection %v", in)
		}
		second := h.token(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first["refresh_token"].(string)}})
		at2 := second["access_token"].(string)
		c1, _ := verifyWithGoJose(t, h, at1)
		c2, _ := verifyWithGoJose(t, h, at2)
		if c1.GrantID != c2.GrantID || c1.ID == c2.ID {
			t.Fatalf("refresh must keep the grant and change the jti: %+v %+v", c1, c2)
		}
		if resp, _ := h.form("/oauth2/revoke", c.id, c.secret, url.Values{"token": {second["refresh_token"].(string)}}); resp.StatusCode != http.StatusOK {
			t.Fatal("revoke refresh token")
		}
		for name, tok := range map[string]string{"first access": at1, "second access": at2} {
			if in := h.introspect(c, tok); in["active"] != false {
				t.Errorf("%s token active after its grant was revoked: %v", name, in)
			}
		}
	})
}

func TestJWKSAndMetadata(t *testing.T) {
	// One backend is enough: this tests HTTP handling, not storage.
	h := jwtHarness(t, storetest.Backends()[0])
	set := h.jwks()
	// One active key per algorithm: OpenID Connect clients choose theirs.
	if len(set.Keys) != len(keys.Algorithms) {
		t.Fatalf("JWKS has %d keys", len(set.Keys))
	}
	for i, k := range set.Keys {
		if k.KeyID == "" || k.Algorithm != string(keys.Algorithms[i]) || k.Use != "sig" || !k.IsPublic() {
			t.Fatalf("JWKS key %+v", k)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, h.public.URL+"/.well-known/oauth-authorization-server", nil)
	_, m := h.do(req)
	if m["jwks_uri"] != h.cfg.Issuer+"/.well-known/jwks.json" {
		t.Errorf("jwks_uri = %v", m["jwks_uri"])
	}
	if algs := m["access_token_signing_alg_values_supported"].([]any); len(algs) == 0 || algs[0] != "ES256" {
		t.Errorf("signing algs = %v", algs)
	}
}

func TestAdminKeys(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := jwtHarness(t, b, func(c *config.Config) { c.KeyPrepublishPeriod = 0 })
		svc := h.serviceClient("read")
		before := h.token(svc, url.Values{"grant_type": {"client_credentials"}})["access_token"].(string)

		resp, list := h.adminList("/admin/keys")
		if resp.StatusCode != http.StatusOK || len(list) != len(keys.Algorithms) {
			t.Fatalf("GET /admin/keys: %d %v", resp.StatusCode, list)
		}
		for i, k := range list {
			if k["state"] != "active" || k["alg"] != string(keys.Algorithms[i]) {
				t.Fatalf("GET /admin/keys: %v", list)
			}
		}
		// The answer keeps its shape: the configured algorithm's new key.
		resp, rotated := h.adminJSON(http.MethodPost, "/admin/keys/rotate", nil)
		if resp.StatusCode != http.StatusOK || rotated["kid"] == list[0]["kid"] || rotated["alg"] != "ES256" {
			t.Fatalf("rotate: %d %v", resp.StatusCode, rotated)
		}
		// Every chain rotated.
		if _, after := h.adminList("/admin/keys"); len(after) != 2*len(keys.Algorithms) {
			t.Fatalf("GET /admin/keys after rotate: %v", after)
		}
		after := h.token(svc, url.Values{"grant_type": {"client_credentials"}})["access_token"].(string)
		if _, err := verifyWithGoJose(t, h, before); err != nil {
			t.Fatalf("a token signed before the rotation no longer verifies: %v", err)
		}
		if _, err := verifyWithGoJose(t, h, after); err != nil {
			t.Fatal(err)
		}
		parsedAfter, _ := josejwt.ParseSigned(after, []jose.SignatureAlgorithm{jose.ES256})
		if parsedAfter.Headers[0].KeyID != rotated["kid"] {
			t.Errorf("after rotation the token is signed by %s, want %s", parsedAfter.Headers[0].KeyID, rotated["kid"])
		}
		if h.introspect(svc, before)["active"] != true {
			t.Error("rotation ended an old token")
		}
		req, _ := http.NewRequest(http.MethodPost, h.admin.URL+"/admin/keys/rotate", nil)
		if resp, _ := h.do(req); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("rotate without the admin token: %d", resp.StatusCode)
		}
	})
}
