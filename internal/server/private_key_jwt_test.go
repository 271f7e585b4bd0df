package server_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// keyClient is a private_key_jwt client and the private key it signs with.
type keyClient struct {
	id  string
	key crypto.Signer
	kid string
	alg jose.SignatureAlgorithm
}

// jwksOf is the public JWK Set a client registers for key.
func jwksOf(t *testing.T, key crypto.Signer, kid string) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: kid}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// keyClient registers a client_credentials client with private_key_jwt.
func (h *harness) keyClient(t *testing.T, key crypto.Signer, alg jose.SignatureAlgorithm, extra map[string]any) keyClient {
	t.Helper()
	md := map[string]any{"client_name": "signed service", "grant_types": []string{"client_credentials"}, "scope": "read introspect",
		"token_endpoint_auth_method": "private_key_jwt", "jwks": jwksOf(t, key, "k1")}
	for k, v := range extra {
		md[k] = v
	}
	resp, m := h.adminJSON(http.MethodPost, "/admin/clients", md)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d %v", resp.StatusCode, m)
	}
	if _, has := m["client_secret"]; has {
		t.Errorf("a private_key_jwt client was given a client_secret: %v", m)
	}
	return keyClient{id: m["client_id"].(string), key: key, kid: "k1", alg: alg}
}

// claims are an RFC 7523 assertion's claims, good for a minute.
func (c keyClient) claims(aud string) jwt.Claims {
	now := time.Now()
	return jwt.Claims{Issuer: c.id, Subject: c.id, Audience: jwt.Audience{aud}, ID: randomJTI(),
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute))}
}

// sign signs claims with key under alg, naming kid when it is set.
func sign(t *testing.T, key any, alg jose.SignatureAlgorithm, kid string, claims any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (c keyClient) assertion(t *testing.T, claims any) string {
	return sign(t, c.key, c.alg, c.kid, claims)
}

// tokenWith asks for a client_credentials token authenticated by assertion.
func (h *harness) tokenWith(assertion string) (*http.Response, map[string]any) {
	h.t.Helper()
	return h.form("/oauth2/token", "", "", url.Values{"grant_type": {"client_credentials"}, "scope": {"read"},
		"client_assertion_type": {jwtBearer}, "client_assertion": {assertion}})
}

// private_key_jwt was advertised but refused every assertion (fosite wants
// the client's registered algorithm, and there was none). It now works end
// to end, and refuses a replay, a wrong audience, an HMAC made with the
// public key, a key that is not registered and an unbounded exp.
func TestPrivateKeyJWT(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		c := h.keyClient(t, ecKey, jose.ES256, nil)
		tokenURL := h.cfg.IssuerURL("/oauth2/token")

		_, md := h.do(mustGet(h.public.URL + "/.well-known/oauth-authorization-server"))
		for _, field := range []string{"token_endpoint_auth_signing_alg_values_supported", "revocation_endpoint_auth_signing_alg_values_supported", "introspection_endpoint_auth_signing_alg_values_supported"} {
			algs, _ := md[field].([]any)
			if !slices.Contains(algs, any("ES256")) || !slices.Contains(algs, any("EdDSA")) || slices.Contains(algs, any("HS256")) || slices.Contains(algs, any("none")) {
				t.Errorf("metadata %s = %v", field, md[field])
			}
		}

		// The happy paths: aud the token endpoint, aud the issuer.
		good := c.assertion(t, c.claims(tokenURL))
		resp, m := h.tokenWith(good)
		if resp.StatusCode != http.StatusOK || m["access_token"] == nil {
			t.Fatalf("a valid assertion: %d %v", resp.StatusCode, m)
		}
		access := m["access_token"].(string)
		if resp, m := h.tokenWith(c.assertion(t, c.claims(h.cfg.Issuer))); resp.StatusCode != http.StatusOK {
			t.Fatalf("aud = issuer: %d %v", resp.StatusCode, m)
		}

		// golang.org/x/oauth2, which knows nothing of assertions beyond
		// passing extra parameters.
		cc := clientcredentials.Config{ClientID: c.id, TokenURL: tokenURL, Scopes: []string{"read"}, AuthStyle: oauth2.AuthStyleInParams,
			EndpointParams: url.Values{"client_assertion_type": {jwtBearer}, "client_assertion": {c.assertion(t, c.claims(tokenURL))}}}
		if _, err := cc.Token(context.Background()); err != nil {
			t.Fatalf("golang.org/x/oauth2: %v", err)
		}

		// Introspection and revocation take the same authentication.
		resp, m = h.form("/oauth2/introspect", "", "", url.Values{"token": {access},
			"client_assertion_type": {jwtBearer}, "client_assertion": {c.assertion(t, c.claims(tokenURL))}})
		if resp.StatusCode != http.StatusOK || m["active"] != true {
			t.Fatalf("introspect with an assertion: %d %v", resp.StatusCode, m)
		}

		resp, _ = h.form("/oauth2/revoke", "", "", url.Values{"token": {access},
			"client_assertion_type": {jwtBearer}, "client_assertion": {c.assertion(t, c.claims(h.cfg.Issuer))}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke with an assertion: %d", resp.StatusCode)
		}
		resp, m = h.form("/oauth2/introspect", "", "", url.Values{"token": {access},
			"client_assertion_type": {jwtBearer}, "client_assertion": {c.assertion(t, c.claims(tokenURL))}})
		if resp.StatusCode != http.StatusOK || m["active"] != false {
			t.Fatalf("introspect after revocation: %d %v", resp.StatusCode, m)
		}

		otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		_, edKey, _ := ed25519.GenerateKey(rand.Reader)
		pubJWK, _ := json.Marshal(jose.JSONWebKey{Key: ecKey.Public()})
		claims := func(mut func(*jwt.Claims)) jwt.Claims {
			cl := c.claims(tokenURL)
			mut(&cl)
			return cl
		}
		noExp := map[string]any{"iss": c.id, "sub": c.id, "aud": tokenURL, "jti": "no-exp-" + c.id}
		noJTI := map[string]any{"iss": c.id, "sub": c.id, "aud": tokenURL, "exp": time.Now().Add(time.Minute).Unix()}
		cases := []struct {
			name      string
			assertion string
		}{
			{"replay", good},
			{"wrong audience", c.assertion(t, claims(func(cl *jwt.Claims) { cl.Audience = jwt.Audience{"https://other.example/oauth2/token"} }))},
			{"introspection endpoint as audience", c.assertion(t, claims(func(cl *jwt.Claims) { cl.Audience = jwt.Audience{h.cfg.IssuerURL("/oauth2/introspect")} }))},
			{"HS256 with the public key", sign(t, pubJWK, jose.HS256, "k1", c.claims(tokenURL))},
			{"HS256 with the public key, no kid", sign(t, pubJWK, jose.HS256, "", c.claims(tokenURL))},
			{"unregistered key under the registered kid", sign(t, otherEC, jose.ES256, "k1", c.claims(tokenURL))},
			{"unregistered key without kid", sign(t, otherEC, jose.ES256, "", c.claims(tokenURL))},
			{"unregistered key of another type", sign(t, edKey, jose.EdDSA, "", c.claims(tokenURL))},
			{"unknown kid", sign(t, ecKey, jose.ES256, "k2", c.claims(tokenURL))},
			{"exp two hours ahead", c.assertion(t, claims(func(cl *jwt.Claims) { cl.Expiry = jwt.NewNumericDate(time.Now().Add(2 * time.Hour)) }))},
			{"expired", c.assertion(t, claims(func(cl *jwt.Claims) { cl.Expiry = jwt.NewNumericDate(time.Now().Add(-5 * time.Minute)) }))},
			{"not yet valid", c.assertion(t, claims(func(cl *jwt.Claims) { cl.NotBefore = jwt.NewNumericDate(time.Now().Add(10 * time.Minute)) }))},
			{"no exp", c.assertion(t, noExp)},
			{"no jti", c.assertion(t, noJTI)},
			{"iss another client", c.assertion(t, claims(func(cl *jwt.Claims) { cl.Issuer = "someone-else" }))},
			{"alg none", strings.Join(strings.Split(good, ".")[:2], ".") + "."},
			{"not a JWT", "not-a-jwt"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				resp, m := h.tokenWith(tc.assertion)
				wantError(t, resp, m, http.StatusUnauthorized, "invalid_client")
			})
		}

		// A private_key_jwt client has no secret, and no other way in.
		for name, pass := range map[string]string{"empty secret": "", "guessed secret": "secret"} {
			t.Run("basic with "+name, func(t *testing.T) {
				resp, m := h.form("/oauth2/token", c.id, pass, url.Values{"grant_type": {"client_credentials"}})
				wantError(t, resp, m, http.StatusUnauthorized, "invalid_client")
			})
		}
		t.Run("assertion and Basic together", func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(url.Values{"grant_type": {"client_credentials"},
				"client_assertion_type": {jwtBearer}, "client_assertion": {c.assertion(t, c.claims(tokenURL))}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(c.id, "x")
			resp, m := h.do(req)
			wantError(t, resp, m, http.StatusBadRequest, "invalid_request")
		})
		t.Run("a secret client sending an assertion", func(t *testing.T) {
			svc := h.serviceClient("read")
			fake := keyClient{id: svc.id, key: ecKey, kid: "k1", alg: jose.ES256}
			resp, m := h.tokenWith(fake.assertion(t, fake.claims(tokenURL)))
			wantError(t, resp, m, http.StatusUnauthorized, "invalid_client")
		})
	})
}

// Keys of every supported family work without a registered algorithm; a
// registered token_endpoint_auth_signing_alg is then the only one accepted.
func TestPrivateKeyJWTAlgorithms(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		tokenURL := h.cfg.IssuerURL("/oauth2/token")
		rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
		_, edKey, _ := ed25519.GenerateKey(rand.Reader)
		p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		for _, tc := range []struct {
			name string
			key  crypto.Signer
			alg  jose.SignatureAlgorithm
		}{{"RS256", rsaKey, jose.RS256}, {"PS256", rsaKey, jose.PS256}, {"EdDSA", edKey, jose.EdDSA}, {"ES384", p384, jose.ES384}} {
			t.Run(tc.name, func(t *testing.T) {
				c := h.keyClient(t, tc.key, tc.alg, nil)
				if resp, m := h.tokenWith(c.assertion(t, c.claims(tokenURL))); resp.StatusCode != http.StatusOK {
					t.Fatalf("%d %v", resp.StatusCode, m)
				}
			})
		}

		pinned := h.keyClient(t, rsaKey, jose.PS256, map[string]any{"token_endpoint_auth_signing_alg": "PS256"})
		if resp, m := h.tokenWith(pinned.assertion(t, pinned.claims(tokenURL))); resp.StatusCode != http.StatusOK {
			t.Fatalf("the registered PS256: %d %v", resp.StatusCode, m)
		}
		pinned.alg = jose.RS256
		resp, m := h.tokenWith(pinned.assertion(t, pinned.claims(tokenURL)))
		wantError(t, resp, m, http.StatusUnauthorized, "invalid_client")
	})
}

// A jti is single use across concurrent requests and across instances
// sharing one database: of many parallel presentations, one wins.
func TestPrivateKeyJWTReplayRace(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		dbURL := b.URL(t)
		shared := storetest.Backend{Name: b.Name, URL: func(testing.TB) string { return dbURL }}
		h1 := newHarness(t, shared)
		h2 := newHarness(t, shared, func(c *config.Config) { c.Issuer = h1.cfg.Issuer })
		ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		c := h1.keyClient(t, ecKey, jose.ES256, nil)
		assertion := c.assertion(t, c.claims(h1.cfg.IssuerURL("/oauth2/token")))

		const n = 8
		var wg sync.WaitGroup
		codes := make([]int, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h := []*harness{h1, h2}[i%2]
				req, _ := http.NewRequest(http.MethodPost, h.public.URL+"/oauth2/token", strings.NewReader(url.Values{
					"grant_type": {"client_credentials"}, "client_assertion_type": {jwtBearer}, "client_assertion": {assertion}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				codes[i] = resp.StatusCode
			}()
		}
		wg.Wait()
		ok := 0
		for _, code := range codes {
			switch code {
			case http.StatusOK:
				ok++
			case http.StatusUnauthorized:
			default:
				t.Errorf("status %d", code)
			}
		}
		if ok != 1 {
			t.Fatalf("%d of %d parallel presentations of one assertion succeeded (%v), want 1", ok, n, codes)
		}
	})
}

func randomJTI() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func mustGet(u string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return req
}

// A stored key set that does not parse (a row changed behind the admin API)
// used to read as "no keys": the assertion was refused as unsigned by a
// registered key and nothing was logged. Now the client is refused with a
// hint that names the broken registration, and the server logs an error.
func TestPrivateKeyJWTUnreadableStoredJWKS(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		c := h.keyClient(t, key, jose.ES256, nil)
		if err := h.store.UpdateClient(context.Background(), c.id, func(sc *store.Client) error {
			sc.JWKS = `{"keys":[{"kty":`
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		resp, m := h.tokenWith(c.assertion(t, c.claims(h.cfg.IssuerURL("/oauth2/token"))))
		desc, _ := m["error_description"].(string)
		if resp.StatusCode != http.StatusUnauthorized || m["error"] != "invalid_client" || !strings.Contains(desc, "key set cannot be read") {
			t.Fatalf("assertion for a client with an unreadable JWKS: %d %v", resp.StatusCode, m)
		}
		if !strings.Contains(h.logs.String(), "stored JWKS unreadable") || !strings.Contains(h.logs.String(), `"client_id":"`+c.id+`"`) {
			t.Fatalf("no error logged naming the client: %s", h.logs.String())
		}
	})
}
