package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/dpop"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// dpopKey is a client's DPoP key: ES256, as the load tool and the
// reference SPA use.
func dpopKey(t testing.TB) (*dpop.Signer, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := dpop.NewSigner(k, jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	return s, k
}

// proof signs a proof for path on h's issuer, dated by h's clock.
func (h *harness) proof(s *dpop.Signer, method, path, accessToken, nonce string) string {
	h.t.Helper()
	p, err := s.Proof(method, h.cfg.IssuerURL(path), accessToken, nonce, h.now())
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

// tokenWithProofs posts to the token endpoint with the given DPoP headers
// (none, one, or several). A public client (no secret) names itself in
// the form.
func (h *harness) tokenWithProofs(c testClient, v url.Values, proofs ...string) (*http.Response, map[string]any) {
	h.t.Helper()
	if c.secret == "" {
		v.Set("client_id", c.id)
	}
	req, _ := http.NewRequest(http.MethodPost, h.public.URL+"/oauth2/token", strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.secret != "" {
		req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	return h.do(req)
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// craftedProof builds a compact JWS go-jose would refuse to make: header
// and claims as given, signature by sign.
func craftedProof(t testing.TB, header, claims map[string]any, sign func([]byte) []byte) string {
	t.Helper()
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	input := b64url(hb) + "." + b64url(cb)
	return input + "." + b64url(sign([]byte(input)))
}

func es256Sign(k *ecdsa.PrivateKey) func([]byte) []byte {
	return func(in []byte) []byte {
		sum := sha256.Sum256(in)
		r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
		if err != nil {
			panic(err)
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	}
}

func jwkMap(t testing.TB, k *ecdsa.PrivateKey, private bool) map[string]any {
	t.Helper()
	var key any = &k.PublicKey
	if private {
		key = k
	}
	b, _ := json.Marshal(jose.JSONWebKey{Key: key})
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// Client credentials with DPoP (RFC 9449 §5): token_type DPoP, cnf.jkt in
// the JWT and in introspection, in both token formats; every bad proof is
// 400 invalid_dpop_proof, never a 500; a proof is spent even when its
// request fails, and on every instance (two servers, one database).
func TestDPoPTokenEndpoint(t *testing.T) {
	formats(t, func(t *testing.T, b storetest.Backend, format string) {
		h := newHarness(t, b, withFormat(format))
		other := sibling(t, h, func(*config.Config) {})
		svc := h.serviceClient("read")
		rs := h.serviceClient("introspect")
		key, priv := dpopKey(t)
		cc := func() url.Values { return url.Values{"grant_type": {"client_credentials"}} }

		resp, m := h.tokenWithProofs(svc, cc(), h.proof(key, "POST", "/oauth2/token", "", ""))
		if resp.StatusCode != http.StatusOK || m["token_type"] != "DPoP" {
			t.Fatalf("cc with a proof: %d %v", resp.StatusCode, m)
		}
		at := m["access_token"].(string)
		if format == config.FormatJWT {
			_, claims := h.verifyJWT(t, at, "at+jwt")
			if cnf, _ := claims["cnf"].(map[string]any); cnf["jkt"] != key.Thumbprint() {
				t.Fatalf("cnf = %v, want jkt %s", claims["cnf"], key.Thumbprint())
			}
		}
		in := h.introspect(rs, at)
		if cnf, _ := in["cnf"].(map[string]any); in["active"] != true || in["token_type"] != "DPoP" || cnf["jkt"] != key.Thumbprint() {
			t.Fatalf("introspection of a bound token: %v", in)
		}
		// Without a proof: a bearer token, as before.
		resp, m = h.tokenWithProofs(svc, cc())
		if resp.StatusCode != http.StatusOK || !strings.EqualFold(m["token_type"].(string), "bearer") {
			t.Fatalf("cc without a proof: %d %v", resp.StatusCode, m)
		}
		if in := h.introspect(rs, m["access_token"].(string)); in["cnf"] != nil || in["token_type"] != "Bearer" {
			t.Fatalf("introspection of a bearer token: %v", in)
		}

		claims := func(mod func(map[string]any)) map[string]any {
			c := map[string]any{"jti": "jti-" + b64url([]byte(time.Now().String())), "htm": "POST", "htu": h.cfg.IssuerURL("/oauth2/token"), "iat": h.now().Unix()}
			if mod != nil {
				mod(c)
			}
			return c
		}
		signed := func(mod func(map[string]any)) string {
			return craftedProof(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": jwkMap(t, priv, false)}, claims(mod), es256Sign(priv))
		}
		replayed := h.proof(key, "POST", "/oauth2/token", "", "")
		if resp, m := h.tokenWithProofs(svc, cc(), replayed); resp.StatusCode != http.StatusOK {
			t.Fatalf("first use: %d %v", resp.StatusCode, m)
		}
		secret := []byte("a shared secret of thirty-two b!")
		for name, proofs := range map[string][]string{
			"wrong htu":   {signed(func(c map[string]any) { c["htu"] = h.cfg.IssuerURL("/oauth2/introspect") })},
			"wrong host":  {signed(func(c map[string]any) { c["htu"] = "https://evil.example/oauth2/token" })},
			"wrong htm":   {signed(func(c map[string]any) { c["htm"] = "GET" })},
			"stale iat":   {signed(func(c map[string]any) { c["iat"] = h.now().Add(-2 * time.Minute).Unix() })},
			"future iat":  {signed(func(c map[string]any) { c["iat"] = h.now().Add(2 * time.Minute).Unix() })},
			"no jti":      {signed(func(c map[string]any) { delete(c, "jti") })},
			"iat string":  {signed(func(c map[string]any) { c["iat"] = "now" })},
			"two headers": {h.proof(key, "POST", "/oauth2/token", "", ""), h.proof(key, "POST", "/oauth2/token", "", "")},
			"garbage":     {"not a jwt"},
			"typ JWT":     {craftedProof(t, map[string]any{"typ": "JWT", "alg": "ES256", "jwk": jwkMap(t, priv, false)}, claims(nil), es256Sign(priv))},
			"alg none": {craftedProof(t, map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": jwkMap(t, priv, false)}, claims(nil),
				func([]byte) []byte { return nil })},
			"HS256": {craftedProof(t, map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": map[string]any{"kty": "oct", "k": b64url(secret)}}, claims(nil),
				func(in []byte) []byte { m := hmac.New(sha256.New, secret); m.Write(in); return m.Sum(nil) })},
			"private key in jwk": {craftedProof(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": jwkMap(t, priv, true)}, claims(nil), es256Sign(priv))},
			"replayed":           {replayed},
		} {
			resp, m := h.tokenWithProofs(svc, cc(), proofs...)
			if resp.StatusCode != http.StatusBadRequest || m["error"] != "invalid_dpop_proof" {
				t.Errorf("%s: %d %v, want 400 invalid_dpop_proof", name, resp.StatusCode, m)
			}
		}

		// Replayed at another instance of the same database.
		p := h.proof(key, "POST", "/oauth2/token", "", "")
		if resp, m := h.tokenWithProofs(svc, cc(), p); resp.StatusCode != http.StatusOK {
			t.Fatalf("at the first instance: %d %v", resp.StatusCode, m)
		}
		resp, m = other.tokenWithProofs(svc, cc(), p)
		wantError(t, resp, m, http.StatusBadRequest, "invalid_dpop_proof")

		// A proof whose request failed (wrong client secret) is spent too.
		p = h.proof(key, "POST", "/oauth2/token", "", "")
		if resp, _ := h.tokenWithProofs(testClient{id: svc.id, secret: "wrong-secret"}, cc(), p); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong secret: %d", resp.StatusCode)
		}
		resp, m = h.tokenWithProofs(svc, cc(), p)
		wantError(t, resp, m, http.StatusBadRequest, "invalid_dpop_proof")

		// dpop_bound_access_tokens: no token without a proof.
		bound := h.serviceClient("read", func(md map[string]any) { md["dpop_bound_access_tokens"] = true })
		resp, m = h.tokenWithProofs(bound, cc())
		wantError(t, resp, m, http.StatusBadRequest, "invalid_dpop_proof")
		if resp, m := h.tokenWithProofs(bound, cc(), h.proof(key, "POST", "/oauth2/token", "", "")); resp.StatusCode != http.StatusOK || m["token_type"] != "DPoP" {
			t.Fatalf("bound client with a proof: %d %v", resp.StatusCode, m)
		}
	})
}

// A public client's refresh token is bound to the key of the proof that
// obtained it (RFC 9449 §5). A proof by another key, or none, fails with
// invalid_dpop_proof without rotating the chain or tripping reuse
// detection; the holder of the key goes on, the grace-period repeat
// included. The code exchange is driven by x/oauth2 with a transport that
// adds the proof. dpop_jkt binds the code (§10). Userinfo takes the bound
// token with the DPoP scheme and a proof carrying ath, and refuses it as a
// bearer token (§7.1).
func TestDPoPPublicClient(t *testing.T) {
	formats(t, func(t *testing.T, b storetest.Backend, format string) {
		h := newHarness(t, b, withFormat(format))
		uid := h.person("ida", "ida-password-1")
		app := h.spa("https://app.example/cb", true, "openid profile offline_access")
		rs := h.serviceClient("introspect")
		br := h.browser(app.conf.RedirectURL)
		key, _ := dpopKey(t)
		thief, _ := dpopKey(t)

		authorize := func(jkt string) (code, verifier string) {
			verifier = oauth2.GenerateVerifier()
			opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
			if jkt != "" {
				opts = append(opts, oauth2.SetAuthURLParam("dpop_jkt", jkt))
			}
			resp, page := br.get(app.conf.AuthCodeURL("state-dpop-01", opts...))
			if resp.StatusCode == http.StatusOK {
				resp, _ = br.login(page, "ida", "ida-password-1")
			}
			return callback(t, resp, app.conf.RedirectURL).Get("code"), verifier
		}
		exchange := func(code, verifier string, proofs ...string) (*http.Response, map[string]any) {
			return h.tokenWithProofs(app.testClient, url.Values{"grant_type": {"authorization_code"}, "code": {code},
				"redirect_uri": {app.conf.RedirectURL}, "code_verifier": {verifier}}, proofs...)
		}

		// dpop_jkt: the code needs a proof by that key.
		code, verifier := authorize(key.Thumbprint())
		resp, m := exchange(code, verifier)
		wantError(t, resp, m, http.StatusBadRequest, "invalid_dpop_proof")
		resp, m = exchange(code, verifier, h.proof(thief, "POST", "/oauth2/token", "", ""))
		wantError(t, resp, m, http.StatusBadRequest, "invalid_dpop_proof")
		resp, m = exchange(code, verifier, h.proof(key, "POST", "/oauth2/token", "", ""))
		if resp.StatusCode != http.StatusOK || m["token_type"] != "DPoP" {
			t.Fatalf("code with dpop_jkt and its key: %d %v", resp.StatusCode, m)
		}
		// A malformed dpop_jkt is the client's error, sent back to it.
		verifier = oauth2.GenerateVerifier()
		resp, _ = br.get(app.conf.AuthCodeURL("state-dpop-02", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("dpop_jkt", "short")))
		if q := callback(t, resp, app.conf.RedirectURL); q.Get("error") != "invalid_request" {
			t.Fatalf("malformed dpop_jkt: %v", q)
		}

		// The happy path with x/oauth2: its requests carry a proof.
		code, verifier = authorize("")
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: proofTransport{h: h, key: key}})
		tok, err := app.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		if err != nil || tok.Type() != "DPoP" {
			t.Fatalf("x/oauth2 exchange with DPoP: %v %v", tok, err)
		}
		rt := tok.RefreshToken
		if in := h.introspect(rs, rt); in["active"] != true || in["cnf"] == nil {
			t.Fatalf("introspection of a bound refresh token: %v", in)
		}
		// A bearer token, for later (codes expire once the clock moves).
		plain := h.spa("https://plain.example/cb", true, "openid offline_access")
		ptok := codeFlow(t, h, h.browser(plain.conf.RedirectURL), plain)
		refreshWith := func(rt string, proofs ...string) (*http.Response, map[string]any) {
			return h.tokenWithProofs(app.testClient, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, proofs...)
		}
		// Another key's proof, or none: refused, and nothing changes.
		for name, proofs := range map[string][]string{"no proof": nil, "another key": {h.proof(thief, "POST", "/oauth2/token", "", "")}} {
			resp, m := refreshWith(rt, proofs...)
			if resp.StatusCode != http.StatusBadRequest || m["error"] != "invalid_dpop_proof" {
				t.Fatalf("refresh with %s: %d %v", name, resp.StatusCode, m)
			}
		}
		resp, m = refreshWith(rt, h.proof(key, "POST", "/oauth2/token", "", ""))
		if resp.StatusCode != http.StatusOK || m["token_type"] != "DPoP" {
			t.Fatalf("refresh with the key after a thief's attempts: %d %v", resp.StatusCode, m)
		}
		next := m["refresh_token"].(string)
		// The rotated token replayed by the thief: refused before reuse
		// detection, so the grant lives on.
		h.clock.advance(time.Minute) // past the grace period
		resp, m = refreshWith(rt, h.proof(thief, "POST", "/oauth2/token", "", ""))
		wantError(t, resp, m, http.StatusBadRequest, "invalid_dpop_proof")
		resp, m = refreshWith(next, h.proof(key, "POST", "/oauth2/token", "", ""))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("the chain after the thief replayed a rotated token: %d %v", resp.StatusCode, m)
		}
		// The binding survives rotation and the grace-period repeat.
		third := m["refresh_token"].(string)
		resp, m = refreshWith(next, h.proof(key, "POST", "/oauth2/token", "", ""))
		if resp.StatusCode != http.StatusOK || m["refresh_token"] != third {
			t.Fatalf("grace repeat with the key: %d %v", resp.StatusCode, m)
		}
		resp, m = refreshWith(next, h.proof(thief, "POST", "/oauth2/token", "", ""))
		wantError(t, resp, m, http.StatusBadRequest, "invalid_dpop_proof")
		resp, m = refreshWith(third, h.proof(thief, "POST", "/oauth2/token", "", ""))
		wantError(t, resp, m, http.StatusBadRequest, "invalid_dpop_proof")
		resp, m = refreshWith(third, h.proof(key, "POST", "/oauth2/token", "", ""))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("third refresh: %d %v", resp.StatusCode, m)
		}
		at := m["access_token"].(string)
		if format == config.FormatJWT {
			_, claims := h.verifyJWT(t, at, "at+jwt")
			if cnf, _ := claims["cnf"].(map[string]any); cnf["jkt"] != key.Thumbprint() {
				t.Fatalf("refreshed JWT cnf = %v", claims["cnf"])
			}
		}

		// Userinfo.
		withDPoP := func(token string, proofs ...string) func(*http.Request) {
			return func(r *http.Request) {
				r.Header.Set("Authorization", "DPoP "+token)
				for _, p := range proofs {
					r.Header.Add("DPoP", p)
				}
			}
		}
		resp, um := h.userinfo(http.MethodGet, withDPoP(at, h.proof(key, "GET", "/oauth2/userinfo", at, "")))
		if resp.StatusCode != http.StatusOK || um["sub"] != uid {
			t.Fatalf("userinfo with DPoP: %d %v", resp.StatusCode, um)
		}
		wantDPoPChallenge := func(name string, resp *http.Response, code string) {
			t.Helper()
			ch := resp.Header.Get("WWW-Authenticate")
			if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(ch, "DPoP ") || !strings.Contains(ch, `error="`+code+`"`) || !strings.Contains(ch, `algs="`) {
				t.Errorf("%s: %d %q, want 401 with a DPoP challenge, error=%s", name, resp.StatusCode, ch, code)
			}
		}
		resp, _ = h.userinfo(http.MethodGet, withBearer(at))
		wantDPoPChallenge("bound token as Bearer", resp, "invalid_token")
		for name, prep := range map[string]func(*http.Request){
			"no proof":       withDPoP(at),
			"no ath":         withDPoP(at, h.proof(key, "GET", "/oauth2/userinfo", "", "")),
			"ath of another": withDPoP(at, h.proof(key, "GET", "/oauth2/userinfo", "another-token", "")),
			"wrong htm":      withDPoP(at, h.proof(key, "POST", "/oauth2/userinfo", at, "")),
			"wrong htu":      withDPoP(at, h.proof(key, "GET", "/oauth2/token", at, "")),
			"another key":    withDPoP(at, h.proof(thief, "GET", "/oauth2/userinfo", at, "")),
			"two proofs":     withDPoP(at, h.proof(key, "GET", "/oauth2/userinfo", at, ""), h.proof(key, "GET", "/oauth2/userinfo", at, "")),
		} {
			resp, _ := h.userinfo(http.MethodGet, prep)
			wantDPoPChallenge(name, resp, "invalid_dpop_proof")
		}
		p := h.proof(key, "GET", "/oauth2/userinfo", at, "")
		if resp, _ := h.userinfo(http.MethodGet, withDPoP(at, p)); resp.StatusCode != http.StatusOK {
			t.Fatalf("fresh proof: %d", resp.StatusCode)
		}
		resp, _ = h.userinfo(http.MethodGet, withDPoP(at, p))
		wantDPoPChallenge("replayed proof", resp, "invalid_dpop_proof")
		// A bearer token presented with the DPoP scheme is refused: the
		// client believes it bound and it is not.
		resp, _ = h.userinfo(http.MethodGet, withDPoP(ptok.AccessToken, h.proof(key, "GET", "/oauth2/userinfo", ptok.AccessToken, "")))
		wantDPoPChallenge("bearer token with the DPoP scheme", resp, "invalid_token")
		if resp, _ := h.userinfo(http.MethodGet, withBearer(ptok.AccessToken)); resp.StatusCode != http.StatusOK {
			t.Fatalf("bearer token as Bearer: %d", resp.StatusCode)
		}
	})
}

// proofTransport adds a fresh DPoP proof to every request, as a DPoP
// client library does.
type proofTransport struct {
	h   *harness
	key *dpop.Signer
}

func (p proofTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	u := *r.URL
	u.RawQuery = ""
	path := u.Path
	r.Header.Set("DPoP", p.h.proof(p.key, r.Method, path, "", ""))
	return http.DefaultTransport.RoundTrip(r)
}

// LATCHKEY_DPOP_NONCE: a proof without the server's nonce, or with a stale
// one, gets use_dpop_nonce and a fresh nonce (400 at the token endpoint,
// 401 with a DPoP challenge at userinfo); with it, the request goes
// through and the answer carries the nonce again.
func TestDPoPNonce(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, withFormat(config.FormatJWT), func(c *config.Config) { c.DPoPNonce = true })
		other := sibling(t, h, func(*config.Config) {})
		h.person("ida", "ida-password-1")
		pwd := oidcPasswordClient(h, "")
		key, _ := dpopKey(t)
		pw := url.Values{"grant_type": {"password"}, "username": {"ida"}, "password": {"ida-password-1"}, "scope": {"openid"}}

		resp, m := h.tokenWithProofs(pwd, pw, h.proof(key, "POST", "/oauth2/token", "", ""))
		wantError(t, resp, m, http.StatusBadRequest, "use_dpop_nonce")
		nonce := resp.Header.Get("DPoP-Nonce")
		if nonce == "" {
			t.Fatal("use_dpop_nonce without a DPoP-Nonce header")
		}
		// Minted on one instance, accepted on another.
		resp, m = other.tokenWithProofs(pwd, pw, h.proof(key, "POST", "/oauth2/token", "", nonce))
		if resp.StatusCode != http.StatusOK || m["token_type"] != "DPoP" || resp.Header.Get("DPoP-Nonce") == "" {
			t.Fatalf("with the nonce: %d %v", resp.StatusCode, m)
		}
		at := m["access_token"].(string)
		// Without a proof nothing changes: the nonce is DPoP's.
		if resp, m := h.tokenWithProofs(pwd, pw); resp.StatusCode != http.StatusOK {
			t.Fatalf("without DPoP: %d %v", resp.StatusCode, m)
		}

		withDPoP := func(proof string) func(*http.Request) {
			return func(r *http.Request) {
				r.Header.Set("Authorization", "DPoP "+at)
				r.Header.Set("DPoP", proof)
			}
		}
		resp, _ = h.userinfo(http.MethodGet, withDPoP(h.proof(key, "GET", "/oauth2/userinfo", at, "")))
		if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(ch, "DPoP ") ||
			!strings.Contains(ch, `error="use_dpop_nonce"`) || resp.Header.Get("DPoP-Nonce") == "" {
			t.Fatalf("userinfo without a nonce: %d %q", resp.StatusCode, ch)
		}
		if resp, m := h.userinfo(http.MethodGet, withDPoP(h.proof(key, "GET", "/oauth2/userinfo", at, nonce))); resp.StatusCode != http.StatusOK {
			t.Fatalf("userinfo with the nonce: %d %v", resp.StatusCode, m)
		}

		// Two windows later the nonce is stale; the answer has a new one.
		h.clock.advance(2*dpop.NonceWindow + time.Second)
		resp, m = h.tokenWithProofs(pwd, pw, h.proof(key, "POST", "/oauth2/token", "", nonce))
		wantError(t, resp, m, http.StatusBadRequest, "use_dpop_nonce")
		fresh := resp.Header.Get("DPoP-Nonce")
		if fresh == "" || fresh == nonce {
			t.Fatalf("stale nonce answered with nonce %q (old %q)", fresh, nonce)
		}
		if resp, m := h.tokenWithProofs(pwd, pw, h.proof(key, "POST", "/oauth2/token", "", fresh)); resp.StatusCode != http.StatusOK {
			t.Fatalf("with the fresh nonce: %d %v", resp.StatusCode, m)
		}
	})
}
