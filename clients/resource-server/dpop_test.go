package resourceserver_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	resourceserver "github.com/latchkey/latchkey/clients/resource-server"
)

// dpopEnv is an API in DPoP mode behind a JWKS this test publishes, so
// tokens bound to any key can be minted, and a client key to prove with.
type dpopEnv struct {
	clk      *clock
	v        *resourceserver.Verifier
	api      *httptest.Server
	external string // the API's configured ExternalURL
	signing  *ecdsa.PrivateKey
	client   *ecdsa.PrivateKey
}

func newDPoPEnv(t *testing.T, mutate func(*resourceserver.Config)) *dpopEnv {
	t.Helper()
	e := &dpopEnv{clk: newClock(), external: "https://api.example.com/v1"}
	e.signing, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	e.client, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: e.signing.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	}))
	t.Cleanup(jwks.Close)
	cfg := resourceserver.Config{Issuer: testIssuer, Audience: "https://api.example.com", JWKSURL: jwks.URL,
		ExternalURL: e.external, Now: e.clk.now}
	if mutate != nil {
		mutate(&cfg)
	}
	var err error
	if e.v, err = resourceserver.New(cfg); err != nil {
		t.Fatal(err)
	}
	e.api = api(t, e.v)
	return e
}

func thumbprint(t *testing.T, pub crypto.PublicKey) string {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

// token mints an access token bound to jkt ("" for a bearer token).
func (e *dpopEnv) token(t *testing.T, jkt string) string {
	t.Helper()
	s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: e.signing, KeyID: "k1"}}, (&jose.SignerOptions{}).WithType("at+jwt"))
	claims := map[string]any{"iss": testIssuer, "sub": "alice", "aud": []string{"https://api.example.com"}, "scope": "invoices:read",
		"iat": e.clk.now().Unix(), "exp": e.clk.now().Add(5 * time.Minute).Unix(), "jti": randomToken()}
	if jkt != "" {
		claims["cnf"] = map[string]string{"jkt": jkt}
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func ath(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// proofClaims are a good proof's claims for GET /invoices with token.
func (e *dpopEnv) proofClaims(token string) map[string]any {
	return map[string]any{"jti": randomToken(), "htm": "GET", "htu": e.external + "/invoices", "iat": e.clk.now().Unix(), "ath": ath(token)}
}

// proof signs claims with key, the public key embedded as RFC 9449 asks.
func proof(t *testing.T, key *ecdsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// rawJWS assembles a compact JWS by hand, for what go-jose refuses to make.
func rawJWS(header, claims map[string]any, sign func(input []byte) []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	return input + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(input)))
}

func es256(key *ecdsa.PrivateKey) func([]byte) []byte {
	return func(in []byte) []byte {
		sum := sha256.Sum256(in)
		r, s, _ := ecdsa.Sign(rand.Reader, key, sum[:])
		return append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	}
}

type call struct {
	method, path, scheme, token string
	proofs                      []string
}

func (e *dpopEnv) do(t *testing.T, c call) (*http.Response, string) {
	t.Helper()
	if c.method == "" {
		c.method = http.MethodGet
	}
	if c.path == "" {
		c.path = "/invoices"
	}
	req, _ := http.NewRequest(c.method, e.api.URL+c.path, nil)
	if c.token != "" {
		req.Header.Set("Authorization", c.scheme+" "+c.token)
	}
	for _, p := range c.proofs {
		req.Header.Add("DPoP", p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// Every way a DPoP request can be wrong (RFC 9449 §4.3, §7) is refused
// with 401 and a DPoP challenge naming invalid_dpop_proof (or invalid_token
// for the token itself), each proof made here with one thing bent.
func TestDPoPRejections(t *testing.T) {
	e := newDPoPEnv(t, nil)
	jkt := thumbprint(t, e.client.Public())
	bound := e.token(t, jkt)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bent := func(f func(c map[string]any)) string {
		c := e.proofClaims(bound)
		f(c)
		return proof(t, e.client, c)
	}
	replayed := proof(t, e.client, e.proofClaims(bound))
	if resp, body := e.do(t, call{scheme: "DPoP", token: bound, proofs: []string{replayed}}); resp.StatusCode != 200 {
		t.Fatalf("first use of the proof: %d %s %q", resp.StatusCode, body, resp.Header.Values("WWW-Authenticate"))
	}
	pubJWK, _ := json.Marshal(jose.JSONWebKey{Key: e.client.Public()})
	var pub map[string]any
	_ = json.Unmarshal(pubJWK, &pub)
	privJWK, _ := json.Marshal(jose.JSONWebKey{Key: e.client})
	var priv map[string]any
	_ = json.Unmarshal(privJWK, &priv)

	const proofErr, tokenErr = `error="invalid_dpop_proof"`, `error="invalid_token"`
	cases := []struct {
		name   string
		call   call
		status int
		want   string
	}{
		{"replayed proof", call{scheme: "DPoP", token: bound, proofs: []string{replayed}}, 401, proofErr},
		{"wrong htu host", call{scheme: "DPoP", token: bound, proofs: []string{bent(func(c map[string]any) { c["htu"] = "https://evil.example/v1/invoices" })}}, 401, proofErr},
		{"wrong htu path", call{scheme: "DPoP", token: bound, proofs: []string{bent(func(c map[string]any) { c["htu"] = e.external + "/payments" })}}, 401, proofErr},
		{"wrong htu scheme", call{scheme: "DPoP", token: bound, proofs: []string{bent(func(c map[string]any) { c["htu"] = "http://api.example.com/v1/invoices" })}}, 401, proofErr},
		{"wrong htm", call{scheme: "DPoP", token: bound, proofs: []string{bent(func(c map[string]any) { c["htm"] = "POST" })}}, 401, proofErr},
		{"stale iat", call{scheme: "DPoP", token: bound, proofs: []string{bent(func(c map[string]any) { c["iat"] = e.clk.now().Add(-2 * time.Minute).Unix() })}}, 401, proofErr},
		{"iat in the future", call{scheme: "DPoP", token: bound, proofs: []string{bent(func(c map[string]any) { c["iat"] = e.clk.now().Add(2 * time.Minute).Unix() })}}, 401, proofErr},
		{"missing ath", call{scheme: "DPoP", token: bound, proofs: []string{bent(func(c map[string]any) { delete(c, "ath") })}}, 401, proofErr},
		{"ath of another token", call{scheme: "DPoP", token: bound, proofs: []string{bent(func(c map[string]any) { c["ath"] = ath(e.token(t, jkt)) })}}, 401, proofErr},
		{"missing jti", call{scheme: "DPoP", token: bound, proofs: []string{bent(func(c map[string]any) { delete(c, "jti") })}}, 401, proofErr},
		{"missing iat", call{scheme: "DPoP", token: bound, proofs: []string{bent(func(c map[string]any) { delete(c, "iat") })}}, 401, proofErr},
		{"no proof", call{scheme: "DPoP", token: bound}, 401, proofErr},
		{"two proofs", call{scheme: "DPoP", token: bound, proofs: []string{proof(t, e.client, e.proofClaims(bound)), proof(t, e.client, e.proofClaims(bound))}}, 401, proofErr},
		{"not a JWT", call{scheme: "DPoP", token: bound, proofs: []string{"garbage"}}, 401, proofErr},
		{"alg none", call{scheme: "DPoP", token: bound, proofs: []string{rawJWS(map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": pub}, e.proofClaims(bound), func([]byte) []byte { return nil })}}, 401, proofErr},
		{"alg HS256", call{scheme: "DPoP", token: bound, proofs: []string{rawJWS(map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": map[string]any{"kty": "oct", "k": "c2VjcmV0"}}, e.proofClaims(bound),
			func(in []byte) []byte { m := hmac.New(sha256.New, []byte("secret")); m.Write(in); return m.Sum(nil) })}}, 401, proofErr},
		{"private key in jwk", call{scheme: "DPoP", token: bound, proofs: []string{rawJWS(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": priv}, e.proofClaims(bound), es256(e.client))}}, 401, proofErr},
		{"no jwk", call{scheme: "DPoP", token: bound, proofs: []string{rawJWS(map[string]any{"typ": "dpop+jwt", "alg": "ES256"}, e.proofClaims(bound), es256(e.client))}}, 401, proofErr},
		{"typ JWT", call{scheme: "DPoP", token: bound, proofs: []string{rawJWS(map[string]any{"typ": "JWT", "alg": "ES256", "jwk": pub}, e.proofClaims(bound), es256(e.client))}}, 401, proofErr},
		{"signature by another key than the jwk", call{scheme: "DPoP", token: bound, proofs: []string{rawJWS(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": pub}, e.proofClaims(bound), es256(other))}}, 401, proofErr},
		{"proof by a key other than cnf.jkt", call{scheme: "DPoP", token: bound, proofs: []string{proof(t, other, e.proofClaims(bound))}}, 401, proofErr},
		{"bound token sent as Bearer", call{scheme: "Bearer", token: bound}, 401, tokenErr},
		{"bound token sent as Bearer with a good proof", call{scheme: "Bearer", token: bound, proofs: []string{proof(t, e.client, e.proofClaims(bound))}}, 401, tokenErr},
		{"invalid token with a good proof", call{scheme: "DPoP", token: "x" + bound[1:], proofs: []string{proof(t, e.client, e.proofClaims("x"+bound[1:]))}}, 401, tokenErr},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.do(t, tc.call)
			challenges := resp.Header.Values("WWW-Authenticate")
			if resp.StatusCode != tc.status || len(challenges) == 0 || !strings.Contains(challenges[0], tc.want) {
				t.Fatalf("got %d %q %s", resp.StatusCode, challenges, body)
			}
			// RFC 9449 §7.1: the DPoP challenge lists the accepted algorithms.
			if !strings.Contains(strings.Join(challenges, "\n"), `DPoP algs="ES256`) {
				t.Fatalf("no DPoP challenge with algs: %q", challenges)
			}
		})
	}
}

// A token without cnf.jkt sent with the DPoP scheme and a good proof is
// refused as invalid_token: it is not DPoP-bound.
func TestDPoPUnboundTokenWithDPoPScheme(t *testing.T) {
	e := newDPoPEnv(t, nil)
	unbound := e.token(t, "")
	resp, _ := e.do(t, call{scheme: "DPoP", token: unbound, proofs: []string{proof(t, e.client, e.proofClaims(unbound))}})
	if c := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || !strings.Contains(c, `error="invalid_token"`) || !strings.Contains(c, "not DPoP-bound") {
		t.Fatalf("got %d %q", resp.StatusCode, c)
	}
}

// The happy path: a bound token with a proof by its key, the htu written
// differently but equal after RFC 3986 normalisation; the claims carry the
// binding. Bearer tokens keep working next to DPoP.
func TestDPoPAccepted(t *testing.T) {
	e := newDPoPEnv(t, nil)
	jkt := thumbprint(t, e.client.Public())
	bound := e.token(t, jkt)
	for _, htu := range []string{e.external + "/invoices", "HTTPS://API.example.com:443/v1/invoices", e.external + "/invoices?x=1#f", "https://api.example.com/v1/%69nvoices"} {
		c := e.proofClaims(bound)
		c["htu"] = htu
		resp, body := e.do(t, call{scheme: "DPoP", token: bound, proofs: []string{proof(t, e.client, c)}})
		if resp.StatusCode != 200 || body != "alice" {
			t.Fatalf("htu %s: %d %q %s", htu, resp.StatusCode, resp.Header.Values("WWW-Authenticate"), body)
		}
	}
	if resp, body := e.do(t, call{scheme: "Bearer", token: e.token(t, "")}); resp.StatusCode != 200 {
		t.Fatalf("bearer token: %d %s", resp.StatusCode, body)
	}
	// The scheme name is case-insensitive (RFC 9110 §11.1).
	if resp, body := e.do(t, call{scheme: "dpop", token: bound, proofs: []string{proof(t, e.client, e.proofClaims(bound))}}); resp.StatusCode != 200 {
		t.Fatalf("lower-case scheme: %d %s", resp.StatusCode, body)
	}
	// Without a token, both schemes are offered.
	resp, _ := e.do(t, call{})
	if ch := resp.Header.Values("WWW-Authenticate"); resp.StatusCode != 401 || len(ch) != 2 || !strings.HasPrefix(ch[1], "DPoP algs=") {
		t.Fatalf("no token: %d %q", resp.StatusCode, ch)
	}
	// A proof stays replay-protected for its whole lifetime, and a proof as
	// old as that is refused anyway.
	p := proof(t, e.client, e.proofClaims(bound))
	if resp, _ := e.do(t, call{scheme: "DPoP", token: bound, proofs: []string{p}}); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	e.clk.add(59 * time.Second)
	if resp, _ := e.do(t, call{scheme: "DPoP", token: bound, proofs: []string{p}}); resp.StatusCode != 401 {
		t.Fatalf("replay 59 s later: %s", resp.Status)
	}
	e.clk.add(2 * time.Second)
	if resp, _ := e.do(t, call{scheme: "DPoP", token: bound, proofs: []string{p}}); resp.StatusCode != 401 {
		t.Fatalf("replay 61 s later: %s", resp.Status)
	}
}

// Without ExternalURL the API cannot check htu, so it accepts no DPoP.
func TestDPoPNeedsExternalURL(t *testing.T) {
	e := newDPoPEnv(t, func(c *resourceserver.Config) { c.ExternalURL = "" })
	bound := e.token(t, thumbprint(t, e.client.Public()))
	resp, _ := e.do(t, call{scheme: "DPoP", token: bound, proofs: []string{proof(t, e.client, e.proofClaims(bound))}})
	if resp.StatusCode != 401 {
		t.Fatalf("got %s", resp.Status)
	}
	for _, bad := range []resourceserver.Config{
		{Issuer: testIssuer, Audience: "a", ExternalURL: "api.example.com"},
		{Issuer: testIssuer, Audience: "a", ExternalURL: "https://api.example.com?x=1"},
		{Issuer: testIssuer, Audience: "a", ExternalURL: "https://api.example.com", DPoPAlgorithms: []jose.SignatureAlgorithm{jose.HS256}},
	} {
		if _, err := resourceserver.New(bad); err == nil {
			t.Errorf("New accepted %+v", bad)
		}
	}
}

// With DPoPNonce, a proof without the server's nonce gets use_dpop_nonce
// and a DPoP-Nonce header; the retry with it passes; a nonce two periods
// old, or one made up, is refused the same way.
func TestDPoPNonce(t *testing.T) {
	e := newDPoPEnv(t, func(c *resourceserver.Config) {
		c.DPoPNonce = true
		c.DPoPNonceLifetime = time.Minute
		c.DPoPProofLifetime = 5 * time.Minute
	})
	bound := e.token(t, thumbprint(t, e.client.Public()))
	withNonce := func(n string) string {
		c := e.proofClaims(bound)
		if n != "" {
			c["nonce"] = n
		}
		return proof(t, e.client, c)
	}
	resp, _ := e.do(t, call{scheme: "DPoP", token: bound, proofs: []string{withNonce("")}})
	nonce := resp.Header.Get("DPoP-Nonce")
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) || nonce == "" {
		t.Fatalf("no nonce: %d %q nonce %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), nonce)
	}
	if resp, _ := e.do(t, call{scheme: "DPoP", token: bound, proofs: []string{withNonce(nonce)}}); resp.StatusCode != 200 || resp.Header.Get("DPoP-Nonce") == "" {
		t.Fatalf("with the nonce: %d, DPoP-Nonce %q", resp.StatusCode, resp.Header.Get("DPoP-Nonce"))
	}
	e.clk.add(61 * time.Second) // the next period: the previous nonce still works
	if resp, _ := e.do(t, call{scheme: "DPoP", token: bound, proofs: []string{withNonce(nonce)}}); resp.StatusCode != 200 {
		t.Fatalf("previous period's nonce: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	e.clk.add(2 * time.Minute)
	for name, n := range map[string]string{"expired": nonce, "made up": base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef0123456789ab"))} {
		resp, _ := e.do(t, call{scheme: "DPoP", token: bound, proofs: []string{withNonce(n)}})
		if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) {
			t.Fatalf("%s nonce: %d %q", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
}

// A full replay cache refuses new proofs (503) rather than forgetting the
// ones that could then be replayed.
func TestDPoPReplayCacheFailsClosed(t *testing.T) {
	e := newDPoPEnv(t, func(c *resourceserver.Config) { c.MaxDPoPProofs = 2 })
	bound := e.token(t, thumbprint(t, e.client.Public()))
	for i := range 2 {
		if resp, _ := e.do(t, call{scheme: "DPoP", token: bound, proofs: []string{proof(t, e.client, e.proofClaims(bound))}}); resp.StatusCode != 200 {
			t.Fatalf("proof %d: %s", i, resp.Status)
		}
	}
	if resp, _ := e.do(t, call{scheme: "DPoP", token: bound, proofs: []string{proof(t, e.client, e.proofClaims(bound))}}); resp.StatusCode != 503 {
		t.Fatalf("full cache: %s", resp.Status)
	}
	e.clk.add(2 * time.Minute) // the remembered proofs are past their lifetime
	if resp, _ := e.do(t, call{scheme: "DPoP", token: e.token(t, thumbprint(t, e.client.Public())), proofs: nil}); resp.StatusCode != 401 {
		t.Fatal(resp.Status)
	}
	bound = e.token(t, thumbprint(t, e.client.Public()))
	if resp, _ := e.do(t, call{scheme: "DPoP", token: bound, proofs: []string{proof(t, e.client, e.proofClaims(bound))}}); resp.StatusCode != 200 {
		t.Fatalf("after expiry: %s", resp.Status)
	}
}

// dpopIntrospection answers RFC 7662 with cnf for the token "bound" and as
// a plain bearer token for "plain".
type dpopIntrospection struct{ jkt string }

func (s *dpopIntrospection) RoundTrip(r *http.Request) (*http.Response, error) {
	_ = r.ParseForm()
	body := `{"active":false}`
	exp := time.Now().Add(time.Hour).Unix()
	switch r.PostForm.Get("token") {
	case "bound":
		body = fmt.Sprintf(`{"active":true,"iss":%q,"aud":["https://api.example.com"],"token_type":"DPoP","cnf":{"jkt":%q},"sub":"alice","scope":"invoices:read","exp":%d}`, testIssuer, s.jkt, exp)
	case "plain":
		body = fmt.Sprintf(`{"active":true,"iss":%q,"aud":["https://api.example.com"],"token_type":"Bearer","sub":"svc","scope":"invoices:read","exp":%d}`, testIssuer, exp)
	case "dpop-without-cnf":
		body = fmt.Sprintf(`{"active":true,"iss":%q,"aud":["https://api.example.com"],"token_type":"DPoP","sub":"svc","scope":"invoices:read","exp":%d}`, testIssuer, exp)
	}
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
}

// In introspection mode the binding comes from the answer's cnf.jkt.
func TestDPoPWithIntrospection(t *testing.T) {
	client, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	e := newDPoPEnv(t, func(c *resourceserver.Config) {
		c.IntrospectionURL, c.ClientID, c.ClientSecret = testIssuer+"/oauth2/introspect", "rs", "s"
		c.HTTPClient = &http.Client{Transport: &dpopIntrospection{jkt: thumbprint(t, client.Public())}}
	})
	cases := []struct {
		name, scheme, token string
		key                 *ecdsa.PrivateKey
		status              int
		want                string
	}{
		{"bound token with its key", "DPoP", "bound", client, 200, ""},
		{"bound token, proof by another key", "DPoP", "bound", other, 401, `error="invalid_dpop_proof"`},
		{"bound token as Bearer", "Bearer", "bound", nil, 401, `error="invalid_token"`},
		{"bearer token", "Bearer", "plain", nil, 200, ""},
		{"token_type DPoP without cnf", "DPoP", "dpop-without-cnf", client, 401, `error="invalid_token"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := call{scheme: tc.scheme, token: tc.token}
			if tc.key != nil {
				c.proofs = []string{proof(t, tc.key, e.proofClaims(tc.token))}
			}
			resp, body := e.do(t, c)
			if resp.StatusCode != tc.status || !strings.Contains(resp.Header.Get("WWW-Authenticate"), tc.want) {
				t.Fatalf("got %d %q %s", resp.StatusCode, resp.Header.Values("WWW-Authenticate"), body)
			}
		})
	}
}

// Against a real Latchkey, in both modes: a client-credentials token got
// with a proof (made here) is DPoP-bound, accepted with a proof by the same
// key (local JWT verification reads cnf.jkt from the token, introspection
// from the answer's cnf), and refused as a bearer token or with another key.
func TestDPoPWithLatchkey(t *testing.T) {
	lk := startLatchkey(t)
	resp, err := http.Get(lk.issuer + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Algs []string `json:"dpop_signing_alg_values_supported"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	if len(meta.Algs) == 0 {
		t.Skip("Latchkey has no DPoP yet (no dpop_signing_alg_values_supported in its metadata): server DPoP (issue 15) is needed")
	}
	svc := lk.service(t, "invoices:read")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"invoices:read"}}
	req, _ := http.NewRequest(http.MethodPost, svc.TokenURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(svc.ClientID, svc.ClientSecret)
	req.Header.Set("DPoP", proof(t, key, map[string]any{"jti": randomToken(), "htm": "POST", "htu": svc.TokenURL, "iat": time.Now().Unix()}))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if resp.StatusCode != 200 || tok.TokenType != "DPoP" {
		t.Fatalf("token with a proof: %d token_type %q", resp.StatusCode, tok.TokenType)
	}
	caller := lk.adminPost(t, "/admin/clients", map[string]any{"grant_types": []string{"client_credentials"}, "scope": "introspect"})
	modes := map[string]func(*resourceserver.Config){
		"local JWT": func(*resourceserver.Config) {},
		"introspection": func(c *resourceserver.Config) {
			c.IntrospectionURL, c.ClientID, c.ClientSecret = lk.issuer+"/oauth2/introspect", caller["client_id"].(string), caller["client_secret"].(string)
		},
	}
	for name, mode := range modes {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(nil)
			cfg := resourceserver.Config{Issuer: lk.issuer, Audience: "https://api.example.com", ExternalURL: "http://" + srv.Listener.Addr().String()}
			mode(&cfg)
			v, err := resourceserver.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			srv.Config.Handler = v.Middleware("invoices:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, _ := resourceserver.FromContext(r.Context())
				_, _ = w.Write([]byte(c.JKT))
			}))
			srv.Start()
			t.Cleanup(srv.Close)
			e := &dpopEnv{api: srv, external: cfg.ExternalURL, clk: newClock()}
			resp, body := e.do(t, call{scheme: "DPoP", token: tok.AccessToken, proofs: []string{proof(t, key, e.proofClaims(tok.AccessToken))}})
			if resp.StatusCode != 200 || body != thumbprint(t, key.Public()) {
				t.Fatalf("bound token with its proof: %d %q %s", resp.StatusCode, resp.Header.Values("WWW-Authenticate"), body)
			}
			if resp, _ := e.do(t, call{scheme: "Bearer", token: tok.AccessToken}); resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Fatalf("bound token as Bearer: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
			resp, _ = e.do(t, call{scheme: "DPoP", token: tok.AccessToken, proofs: []string{proof(t, other, e.proofClaims(tok.AccessToken))}})
			if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_dpop_proof"`) {
				t.Fatalf("proof by another key: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}
