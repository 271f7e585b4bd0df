package resourceserver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	resourceserver "github.com/latchkey/latchkey/clients/resource-server"
	"golang.org/x/time/rate"
)

const testIssuer = "https://issuer.example"

// clock is a settable time source for Config.Now.
type clock struct{ t atomic.Pointer[time.Time] }

func newClock() *clock               { c := &clock{}; c.set(time.Now()); return c }
func (c *clock) set(t time.Time)     { c.t.Store(&t) }
func (c *clock) now() time.Time      { return *c.t.Load() }
func (c *clock) add(d time.Duration) { c.set(c.now().Add(d)) }

// signedToken returns an access token signed by key under kid.
func signedToken(t *testing.T, key *ecdsa.PrivateKey, kid string, now time.Time) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(jwt.Claims{Issuer: testIssuer, Subject: "svc", Audience: jwt.Audience{"https://api.example.com"},
		Expiry: jwt.NewNumericDate(now.Add(10 * time.Minute)), IssuedAt: jwt.NewNumericDate(now)}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// hangingJWKS serves the key set on the first request and hangs on every
// later one until release is closed (or the request is abandoned).
func hangingJWKS(t *testing.T, key *ecdsa.PrivateKey) (url string, hung <-chan struct{}, release func()) {
	var hits atomic.Int64
	hangs, stop := make(chan struct{}, 16), make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) > 1 {
			hangs <- struct{}{}
			select {
			case <-stop:
			case <-r.Context().Done():
			}
			return
		}
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	}))
	var once sync.Once
	release = func() { once.Do(func() { close(stop) }) }
	t.Cleanup(func() { release(); s.Close() })
	return s.URL, hangs, release
}

// Issue 12 item 6: a request with a forged kid, while the JWKS endpoint
// hangs, must not hold up tokens signed by a key already known. The old
// verifier held its mutex across the fetch, so the valid token waited for
// the hanging issuer.
func TestValidTokensDoNotWaitForJWKSFetch(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwksURL, hung, release := hangingJWKS(t, key)
	clk := newClock()
	v, err := resourceserver.New(resourceserver.Config{Issuer: testIssuer, Audience: "https://api.example.com", JWKSURL: jwksURL,
		RefetchInterval: time.Minute, FetchTimeout: time.Minute, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	good := signedToken(t, key, "k1", clk.now())
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	clk.add(2 * time.Minute) // a refetch is allowed again

	forged := make(chan error, 1)
	go func() {
		_, err := v.Verify(context.Background(), signedToken(t, key, "forged", clk.now()))
		forged <- err
	}()
	<-hung // the forged kid's fetch is now hanging at the issuer

	done := make(chan error, 1)
	go func() {
		_, err := v.Verify(context.Background(), good)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("a valid token was refused while a fetch hung: %v", err)
		}
	case <-time.After(5 * time.Second): // a failure bound, not a wait for time to pass
		t.Fatal("a valid token waited for the hanging JWKS fetch")
	}
	release()
	if err := <-forged; err == nil {
		t.Fatal("a forged kid was accepted")
	}
}

// A hanging JWKS endpoint costs a request at most FetchTimeout, and the
// keys already known keep working afterwards.
func TestJWKSFetchTimesOut(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwksURL, _, _ := hangingJWKS(t, key)
	clk := newClock()
	v, _ := resourceserver.New(resourceserver.Config{Issuer: testIssuer, Audience: "https://api.example.com", JWKSURL: jwksURL,
		RefetchInterval: time.Minute, FetchTimeout: 50 * time.Millisecond, Now: clk.now})
	good := signedToken(t, key, "k1", clk.now())
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	clk.add(2 * time.Minute)
	_, err := v.Verify(context.Background(), signedToken(t, key, "forged", clk.now()))
	if err == nil || errors.Is(err, resourceserver.ErrInvalidToken) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a hanging fetch should end at FetchTimeout as an issuer error (503), got %v", err)
	}
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatalf("the known key was lost after a failed fetch: %v", err)
	}
}

// introspectionStub answers RFC 7662 for the token "good" and counts calls,
// without a network.
type introspectionStub struct{ calls atomic.Int64 }

func (s *introspectionStub) RoundTrip(r *http.Request) (*http.Response, error) {
	s.calls.Add(1)
	_ = r.ParseForm()
	body := `{"active":false}`
	if r.PostForm.Get("token") == "good" {
		body = fmt.Sprintf(`{"active":true,"iss":%q,"aud":["https://api.example.com"],"token_type":"Bearer","sub":"svc","scope":"invoices:read","exp":%d}`,
			testIssuer, time.Now().Add(time.Hour).Unix())
	}
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Issue 12 item 6: in introspection mode, random strings sent as bearer
// tokens must neither make one call each nor flush the cached answers of
// valid tokens.
func TestIntrospectionOfUnknownTokensIsBounded(t *testing.T) {
	cases := []struct {
		name  string
		rate  rate.Limit
		junk  int
		check func(t *testing.T, stub *introspectionStub, v *resourceserver.Verifier, busy int)
	}{
		{name: "500 random strings make at most a burst of calls", junk: 500,
			check: func(t *testing.T, stub *introspectionStub, _ *resourceserver.Verifier, busy int) {
				if n := stub.calls.Load(); n > 1+40 {
					t.Fatalf("500 random tokens made %d introspection calls", n-1)
				}
				if busy == 0 {
					t.Fatal("no request was told the verifier is busy")
				}
			}},
		{name: "a flood of refusals does not evict a valid token", rate: rate.Inf, junk: 10001,
			check: func(t *testing.T, stub *introspectionStub, v *resourceserver.Verifier, _ int) {
				before := stub.calls.Load()
				if _, err := v.Verify(context.Background(), "good"); err != nil {
					t.Fatal(err)
				}
				if stub.calls.Load() != before {
					t.Fatal("the valid token's cached answer was flushed by junk tokens")
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stub := &introspectionStub{}
			clk := newClock() // frozen: no cache entry expires, the limiter never refills
			v, err := resourceserver.New(resourceserver.Config{Issuer: testIssuer, Audience: "https://api.example.com",
				IntrospectionURL: "https://issuer.example/oauth2/introspect", ClientID: "rs", ClientSecret: "s",
				IntrospectionCacheTTL: time.Minute, IntrospectionRate: tc.rate, HTTPClient: &http.Client{Transport: stub}, Now: clk.now})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(context.Background(), "good"); err != nil {
				t.Fatal(err)
			}
			busy := 0
			for range tc.junk {
				_, err := v.Verify(context.Background(), randomToken())
				switch {
				case errors.Is(err, resourceserver.ErrBusy):
					busy++
				case !errors.Is(err, resourceserver.ErrInvalidToken):
					t.Fatalf("junk token: %v", err)
				}
			}
			tc.check(t, stub, v, busy)
		})
	}
}
