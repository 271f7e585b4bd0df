package bff_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/latchkey/latchkey/clients/bff"
	"golang.org/x/time/rate"
)

// fakeIssuer is an OpenID Provider with discovery, a JWKS and a token
// endpoint. A code is "code.CHALLENGE.NONCE[.FLAW]": the token endpoint
// checks the PKCE verifier against CHALLENGE, so a callback only succeeds
// with the verifier its login made (RFC 7636 §4.6), and answers an ID token
// carrying NONCE, made wrong in the way FLAW names.
func fakeIssuer(t *testing.T) string {
	good, bad := newSigner(t, "good"), newSigner(t, "bad")
	mux := http.NewServeMux()
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": s.URL, "authorization_endpoint": s.URL + "/oauth2/authorize",
			"token_endpoint": s.URL + "/oauth2/token", "jwks_uri": s.URL + "/jwks", "revocation_endpoint": s.URL + "/oauth2/revoke",
			"end_session_endpoint": s.URL + "/oauth2/logout", "id_token_signing_alg_values_supported": []string{"ES256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{good.key.Public()}})
	})
	mux.HandleFunc("POST /oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		parts := strings.Split(r.PostForm.Get("code"), ".")
		if len(parts) < 3 || parts[0] != "code" || parts[1] != base64.RawURLEncoding.EncodeToString(sum[:]) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		flaw := ""
		if len(parts) > 3 {
			flaw = parts[3]
		}
		now := time.Now()
		atHash := sha256.Sum256([]byte("at"))
		claims := map[string]any{"iss": s.URL, "sub": "user-nina", "aud": "bff", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
			"nonce": parts[2], "at_hash": base64.RawURLEncoding.EncodeToString(atHash[:16]), "name": "Nina Simone"}
		signer := good
		switch flaw {
		case "badsig":
			signer = bad
		case "aud":
			claims["aud"] = "another-client"
		case "iss":
			claims["iss"] = "https://elsewhere.example"
		case "expired":
			claims["exp"] = now.Add(-time.Hour).Unix()
		case "athash":
			claims["at_hash"] = "AAAAAAAAAAAAAAAAAAAAAA"
		case "nonce":
			delete(claims, "nonce")
		}
		answer := map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 60, "refresh_token": "rt"}
		if flaw != "noidtoken" {
			answer["id_token"] = signer.sign(t, claims)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(answer)
	})
	return s.URL
}

type signer struct {
	key *jose.JSONWebKey
	jose.Signer
}

func newSigner(t *testing.T, kid string) signer {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key := &jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: string(jose.ES256)}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	return signer{key: key, Signer: s}
}

func (s signer) sign(t *testing.T, claims map[string]any) string {
	b, _ := json.Marshal(claims)
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

// testClock is a settable Config.Now.
type testClock struct{ t atomic.Pointer[time.Time] }

func newTestClock() *testClock {
	c, now := &testClock{}, time.Now()
	c.t.Store(&now)
	return c
}

func (c *testClock) now() time.Time { return *c.t.Load() }
func (c *testClock) add(d time.Duration) {
	t := c.now().Add(d)
	c.t.Store(&t)
}

func newBFF(t *testing.T, issuer string, key []byte, clk *testClock, limit rate.Limit) *bff.BFF {
	t.Helper()
	b, err := bff.New(context.Background(), bff.Config{Issuer: issuer, ClientID: "bff", ClientSecret: "secret", BaseURL: "http://localhost:3000",
		Scopes: []string{"invoices:read"}, Insecure: true, CookieKey: key, Now: clk.now, LoginRate: limit, LoginBurst: 3})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// started is what /auth/login gave a browser: its cookie and the state and
// code Latchkey would send back.
type started struct {
	cookie      *http.Cookie
	state, code string
}

func startLogin(t *testing.T, b http.Handler, from string) (*httptest.ResponseRecorder, started) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/auth/login", nil)
	req.RemoteAddr = from
	rec := httptest.NewRecorder()
	b.ServeHTTP(rec, req)
	if rec.Code != http.StatusFound {
		return rec, started{}
	}
	loc, _ := url.Parse(rec.Header().Get("Location"))
	s := started{state: loc.Query().Get("state"), code: "code." + loc.Query().Get("code_challenge") + "." + loc.Query().Get("nonce")}
	for _, c := range rec.Result().Cookies() {
		if c.Name == "bff_login" {
			s.cookie = c
		}
	}
	if s.cookie == nil || s.state == "" {
		t.Fatalf("login set no cookie or state: %v", rec.Header())
	}
	return rec, s
}

func finish(b http.Handler, cookie *http.Cookie, state, code string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/auth/callback?"+url.Values{"state": {state}, "code": {code}}.Encode(), nil)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	rec := httptest.NewRecorder()
	b.ServeHTTP(rec, req)
	return rec
}

// Issue 12 item 3: the pending sign-in lives in a sealed cookie, not in
// the BFF. A login started on one instance finishes on another that shares
// only the key; anything the browser could bend is refused.
func TestPendingLoginLivesInSealedCookie(t *testing.T) {
	issuer := fakeIssuer(t)
	key := []byte(strings.Repeat("k", 32))
	cases := []struct {
		name   string
		finish func(t *testing.T, clk *testClock, a, b *bff.BFF, s, other started) *httptest.ResponseRecorder
		ok     bool
	}{
		{"finishes on another instance", func(t *testing.T, _ *testClock, _, b *bff.BFF, s, _ started) *httptest.ResponseRecorder {
			return finish(b, s.cookie, s.state, s.code)
		}, true},
		{"no cookie", func(t *testing.T, _ *testClock, a, _ *bff.BFF, s, _ started) *httptest.ResponseRecorder {
			return finish(a, nil, s.state, s.code)
		}, false},
		{"state of another sign-in", func(t *testing.T, _ *testClock, a, _ *bff.BFF, s, other started) *httptest.ResponseRecorder {
			return finish(a, s.cookie, other.state, other.code)
		}, false},
		{"cookie of another sign-in (login CSRF)", func(t *testing.T, _ *testClock, a, _ *bff.BFF, s, other started) *httptest.ResponseRecorder {
			return finish(a, other.cookie, s.state, s.code)
		}, false},
		{"cookie tampered with", func(t *testing.T, _ *testClock, a, _ *bff.BFF, s, _ started) *httptest.ResponseRecorder {
			c := *s.cookie
			raw, _ := base64.RawURLEncoding.DecodeString(c.Value)
			raw[len(raw)-1] ^= 1
			c.Value = base64.RawURLEncoding.EncodeToString(raw)
			return finish(a, &c, s.state, s.code)
		}, false},
		{"cookie made up by the browser", func(t *testing.T, _ *testClock, a, _ *bff.BFF, s, _ started) *httptest.ResponseRecorder {
			return finish(a, &http.Cookie{Name: "bff_login", Value: s.state}, s.state, s.code)
		}, false},
		{"sealed under another key", func(t *testing.T, clk *testClock, _, _ *bff.BFF, s, _ started) *httptest.ResponseRecorder {
			return finish(newBFF(t, issuer, []byte(strings.Repeat("x", 32)), clk, rate.Inf), s.cookie, s.state, s.code)
		}, false},
		{"after ten minutes", func(t *testing.T, clk *testClock, a, _ *bff.BFF, s, _ started) *httptest.ResponseRecorder {
			clk.add(10*time.Minute + time.Second)
			return finish(a, s.cookie, s.state, s.code)
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newTestClock()
			a, b := newBFF(t, issuer, key, clk, rate.Inf), newBFF(t, issuer, key, clk, rate.Inf)
			_, s := startLogin(t, a, "192.0.2.1:1234")
			_, other := startLogin(t, a, "192.0.2.2:1234")
			rec := tc.finish(t, clk, a, b, s, other)
			signedIn := false
			for _, c := range rec.Result().Cookies() {
				signedIn = signedIn || (c.Name == "bff_session" && c.Value != "")
			}
			if signedIn != tc.ok {
				t.Fatalf("signed in: %v, want %v (%d %s)", signedIn, tc.ok, rec.Code, rec.Body)
			}
		})
	}
}

// Issue 14: a sign-in succeeds only with an ID token that go-oidc verifies
// for this BFF (signature by the issuer's key, iss, aud, exp) and that
// carries this sign-in's nonce and the at_hash of the access token issued
// with it. A nonce of another sign-in is what an injected code or ID token
// would carry.
func TestIDTokenChecked(t *testing.T) {
	issuer := fakeIssuer(t)
	cases := []struct {
		name string
		code func(s, other started) string
		ok   bool
	}{
		{"a good ID token", func(s, _ started) string { return s.code }, true},
		{"the nonce of another sign-in", func(s, other started) string {
			return s.code[:strings.LastIndexByte(s.code, '.')] + other.code[strings.LastIndexByte(other.code, '.'):]
		}, false},
		{"no nonce", func(s, _ started) string { return s.code + ".nonce" }, false},
		{"signed by another key", func(s, _ started) string { return s.code + ".badsig" }, false},
		{"for another client", func(s, _ started) string { return s.code + ".aud" }, false},
		{"from another issuer", func(s, _ started) string { return s.code + ".iss" }, false},
		{"expired", func(s, _ started) string { return s.code + ".expired" }, false},
		{"at_hash of another access token", func(s, _ started) string { return s.code + ".athash" }, false},
		{"no ID token", func(s, _ started) string { return s.code + ".noidtoken" }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBFF(t, issuer, nil, newTestClock(), rate.Inf)
			_, s := startLogin(t, b, "192.0.2.1:1234")
			_, other := startLogin(t, b, "192.0.2.1:1234")
			rec := finish(b, s.cookie, s.state, tc.code(s, other))
			signedIn := false
			for _, c := range rec.Result().Cookies() {
				signedIn = signedIn || (c.Name == "bff_session" && c.Value != "")
			}
			if signedIn != tc.ok {
				t.Fatalf("signed in: %v, want %v (%d %s)", signedIn, tc.ok, rec.Code, rec.Body)
			}
		})
	}
}

// Issue 12 item 3: a flood of anonymous /auth/login calls leaves nothing
// behind in the BFF. (It used to keep an entry per call for ten minutes and
// walk them all on every call.)
func TestLoginFloodKeepsNoState(t *testing.T) {
	clk := newTestClock()
	b := newBFF(t, fakeIssuer(t), nil, clk, rate.Inf)
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	for range 10000 {
		startLogin(t, b, "192.0.2.1:1234")
	}
	after := heap()
	runtime.KeepAlive(b)
	if after > before && after-before > 512<<10 {
		t.Fatalf("10000 anonymous logins left %d KiB on the heap", (after-before)>>10)
	}
}

// Issue 12 item 3: /auth/login is rate-limited per client address; other
// addresses are unaffected, and the budget comes back with time.
func TestLoginRateLimited(t *testing.T) {
	clk := newTestClock()
	b := newBFF(t, fakeIssuer(t), nil, clk, 1) // one a second, burst 3
	status := func(from string) int {
		rec, _ := startLogin(t, b, from)
		return rec.Code
	}
	for i := range 3 {
		if got := status("192.0.2.1:1000"); got != http.StatusFound {
			t.Fatalf("login %d within the burst: %d", i+1, got)
		}
		if got := status(fmt.Sprintf("[2001:db8::%d]:1", i+1)); got != http.StatusFound {
			t.Fatalf("IPv6 login %d within the burst: %d", i+1, got)
		}
	}
	steps := []struct {
		name    string
		advance time.Duration
		from    string
		want    int
	}{
		{"past the burst", 0, "192.0.2.1:2000", http.StatusTooManyRequests},
		{"another address", 0, "192.0.2.9:1000", http.StatusFound},
		{"another address in the same IPv6 /64", 0, "[2001:db8::99]:1", http.StatusTooManyRequests},
		{"another IPv6 /64", 0, "[2001:db8:0:1::1]:1", http.StatusFound},
		{"a second later", time.Second, "192.0.2.1:1000", http.StatusFound},
		{"and only one more", 0, "192.0.2.1:1000", http.StatusTooManyRequests},
	}
	for _, st := range steps {
		clk.add(st.advance)
		if got := status(st.from); got != st.want {
			t.Errorf("%s: %d, want %d", st.name, got, st.want)
		}
	}
}
