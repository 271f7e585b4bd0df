package bff_test

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/clients/bff"
	"golang.org/x/time/rate"
)

// fakeIssuer answers the token and introspection endpoints. A code is
// "code." + the PKCE challenge it was issued for, and the token endpoint
// checks the verifier against it, so a callback only succeeds with the
// verifier its login made (RFC 7636 §4.6).
func fakeIssuer(t *testing.T) string {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if r.PostForm.Get("code") != "code."+base64.RawURLEncoding.EncodeToString(sum[:]) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"at","token_type":"Bearer","expires_in":60,"refresh_token":"rt"}`))
	})
	mux.HandleFunc("POST /oauth2/introspect", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"active":true,"username":"nina"}`))
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s.URL
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
	b, err := bff.New(bff.Config{Issuer: issuer, ClientID: "bff", ClientSecret: "secret", BaseURL: "http://localhost:3000",
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
	s := started{state: loc.Query().Get("state"), code: "code." + loc.Query().Get("code_challenge")}
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
