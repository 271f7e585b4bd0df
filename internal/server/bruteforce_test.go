package server_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/server"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// throttleClock is the store's clock: lockouts expire when the test says.
type throttleClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *throttleClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *throttleClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// checkCounter counts the argon2id verifications that actually run, and
// can hold those of one password until released.
type checkCounter struct {
	n       atomic.Int64
	blockPW string
	entered chan struct{}
	release chan struct{}
}

func (c *checkCounter) verify(hash, password string) (bool, error) {
	c.n.Add(1)
	if c.blockPW != "" && password == c.blockPW {
		c.entered <- struct{}{}
		<-c.release
	}
	return secrets.VerifyPassword(hash, password)
}

// throttleHarness is a harness whose password checks are counted, with no
// failure delay (no test waits for time to pass) and argon2id bounds set by
// limits.
func throttleHarness(t *testing.T, b storetest.Backend, checks *checkCounter, limits login.PasswordLimits, tune ...func(*config.Config)) (*harness, *throttleClock) {
	clock := &throttleClock{now: time.Now().UTC()}
	h := newHarnessWith(t, b, store.Options{Now: clock.Now}, []server.Option{server.WithLogin(func(c *login.Config) {
		c.Throttle.DelayStep = 0
		c.Passwords = limits
		c.VerifyPassword = checks.verify
	})}, tune...)
	return h, clock
}

// roomy limits let every request reach the throttle: the brute-force tests
// are about the throttle alone.
var roomy = login.PasswordLimits{Concurrent: 4, RunningPerIP: 4, InFlightPerIP: 100, MaxWait: time.Minute}

// parallel runs n requests at once and returns their status codes.
func parallel(t *testing.T, n int, do func(i int) (*http.Response, error)) []int {
	t.Helper()
	codes := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := do(i)
			if err != nil {
				errs[i] = err
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return codes
}

func tally(codes []int) map[int]int {
	m := map[int]int{}
	for _, c := range codes {
		m[c]++
	}
	return m
}

func loginFailures(t *testing.T, h *harness, key string) int {
	t.Helper()
	recs, err := h.store.LoginFailures(t.Context(), time.Hour, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 {
		return 0
	}
	return recs[0].Failures
}

func userCounter(name string) string { return "user:" + secrets.SignatureKey(strings.ToLower(name)) }

// Issue 11 item 2: 30 wrong passwords for one username sent at once to
// POST /login were all checked (all 401) although the limit is 5. The
// attempt is now counted before argon2id runs: five are checked, the rest
// are refused unchecked, the right password after them is refused too, and
// once the lockout has expired a success releases the reservation.
func TestParallelGuessesAtTheLoginPage(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		checks := &checkCounter{}
		h, clock := throttleHarness(t, b, checks, roomy)
		h.user("pat", "pat-password-1")
		br := h.browser("never")
		_, page := br.get(h.public.URL + "/login")
		form := func(password string) url.Values {
			return url.Values{"csrf_token": {field(t, csrfRe, page)}, "username": {"pat"}, "password": {password}}
		}
		codes := tally(parallel(t, 30, func(i int) (*http.Response, error) {
			return br.client.PostForm(h.public.URL+"/login", form(fmt.Sprintf("wrong-%02d", i)))
		}))
		if n := checks.n.Load(); n != 5 || codes[http.StatusUnauthorized] != 5 || codes[http.StatusTooManyRequests] != 25 {
			t.Fatalf("30 parallel guesses at a limit of 5: %d password checks, answers %v; want 5 checks, 5×401 and 25×429", n, codes)
		}
		resp, body := br.login(page, "pat", "pat-password-1")
		if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "Too many") {
			t.Fatalf("right password after the limit: %d, want 429", resp.StatusCode)
		}
		if n := checks.n.Load(); n != 5 {
			t.Fatalf("a locked-out sign-in ran argon2id (%d checks)", n)
		}

		// After the one-minute lockout one attempt is allowed; the right
		// password clears the username and gives the IP its attempt back.
		clock.advance(time.Minute + time.Second)
		if resp, _ := br.login(page, "pat", "pat-password-1"); resp.StatusCode != http.StatusOK {
			t.Fatalf("right password after the lockout expired: %d", resp.StatusCode)
		}
		if n := loginFailures(t, h, userCounter("pat")); n != 0 {
			t.Fatalf("a success left %d attempts on the username", n)
		}
		if n := loginFailures(t, h, "ip:127.0.0.1"); n != 5 {
			t.Fatalf("the IP holds %d attempts, want its 5 failures (the success released)", n)
		}
	})
}

// Issue 11 item 2 on the password grant: 29 parallel wrong guesses and the
// right one let the right one through after far more than 5 checks. Now at
// most 5 passwords are checked, whichever 5 they are, and the right password
// sent after the limit is refused with the same answer as a wrong one.
func TestParallelGuessesAtThePasswordGrant(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		checks := &checkCounter{}
		h, clock := throttleHarness(t, b, checks, roomy)
		h.user("quinn", "quinn-password-1")
		c := passwordClient(h, true)
		grant := func(password string) url.Values {
			return url.Values{"grant_type": {"password"}, "username": {"quinn"}, "password": {password}}
		}
		post := func(v url.Values) (*http.Response, error) {
			req, _ := http.NewRequest(http.MethodPost, h.public.URL+"/oauth2/token", strings.NewReader(v.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(c.id, c.secret)
			return http.DefaultClient.Do(req)
		}
		codes := tally(parallel(t, 30, func(i int) (*http.Response, error) {
			if i == 29 {
				return post(grant("quinn-password-1"))
			}
			return post(grant(fmt.Sprintf("wrong-%02d", i)))
		}))
		// The right password may be among the five checked and succeed;
		// otherwise five checks were all there was.
		if n := checks.n.Load(); (n > 5 && codes[http.StatusOK] == 0) || codes[http.StatusOK]+codes[http.StatusBadRequest] != 30 {
			t.Fatalf("29 wrong and 1 right in parallel: %d password checks, answers %v; want at most 5 checks", n, codes)
		}

		// Start over once the lockout has passed: the right password sent
		// after the limit is refused, unchecked.
		clock.advance(16 * time.Minute)
		_ = h.store.ClearLoginFailures(t.Context(), userCounter("quinn"))
		checks.n.Store(0)
		parallel(t, 29, func(i int) (*http.Response, error) { return post(grant(fmt.Sprintf("wrong-%02d", i))) })
		if n := checks.n.Load(); n != 5 {
			t.Fatalf("29 parallel wrong guesses: %d password checks, want 5", n)
		}
		resp, m := h.form("/oauth2/token", c.id, c.secret, grant("quinn-password-1"))
		wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")
		if n := checks.n.Load(); n != 5 {
			t.Fatalf("the right password after the limit was checked (%d checks)", n)
		}
	})
}

// The per-IP limit (20) holds under a burst of distinct usernames from one
// address: at most 20 passwords are checked.
func TestParallelSprayFromOneAddress(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		checks := &checkCounter{}
		h, _ := throttleHarness(t, b, checks, roomy)
		c := passwordClient(h, true)
		codes := tally(parallel(t, 60, func(i int) (*http.Response, error) {
			v := url.Values{"grant_type": {"password"}, "username": {fmt.Sprintf("spray-%02d", i)}, "password": {"guess"}}
			req, _ := http.NewRequest(http.MethodPost, h.public.URL+"/oauth2/token", strings.NewReader(v.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(c.id, c.secret)
			return http.DefaultClient.Do(req)
		}))
		if n := checks.n.Load(); n != 20 || codes[http.StatusBadRequest] != 60 {
			t.Fatalf("60 parallel guesses at distinct usernames: %d checks, answers %v; want 20 checks, all invalid_grant", n, codes)
		}
	})
}

// Issue 11 item 3: 200 parallel sign-ins with random usernames from one
// address stalled a real user's sign-in for ~25 s behind an unbounded
// argon2id queue. Now one address runs at most its share of the slots and
// queues a few more (the rest of its requests get 503), a person at another address
// still gets in, and a check that cannot get a slot in time is answered 503
// with Retry-After, on the login page and the password grant, and counts as
// no guess.
func TestPasswordChecksAreBounded(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		checks := &checkCounter{blockPW: "flood", entered: make(chan struct{}, 10), release: make(chan struct{})}
		limits := login.PasswordLimits{Concurrent: 2, RunningPerIP: 1, InFlightPerIP: 3, MaxWait: 50 * time.Millisecond}
		// The test's requests come from 127.0.0.1 and say who they are for
		// with X-Forwarded-For.
		h, _ := throttleHarness(t, b, checks, limits, func(c *config.Config) { c.TrustedProxies = "127.0.0.1/32" })
		h.user("vera", "vera-password-1")
		c := passwordClient(h, true)
		grantReq := func(from, username, password string) *http.Request {
			v := url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}}
			req, _ := http.NewRequest(http.MethodPost, h.public.URL+"/oauth2/token", strings.NewReader(v.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Forwarded-For", from)
			req.SetBasicAuth(c.id, c.secret)
			return req
		}
		grant := func(from, username, password string) (*http.Response, error) {
			return http.DefaultClient.Do(grantReq(from, username, password))
		}
		const attacker, other, victim = "203.0.113.7", "203.0.113.8", "198.51.100.9"

		// One of the attacker's checks is running and stuck.
		held := make(chan int, 2)
		go func() {
			resp, err := grant(attacker, "random-0", "flood")
			if err == nil {
				resp.Body.Close()
				held <- resp.StatusCode
			}
			close(held)
		}()
		<-checks.entered

		// The rest of the flood is refused with RFC 6749 §5.2 JSON: two
		// queue for the address's one running place and give up after
		// MaxWait, the others at once.
		codes := tally(parallel(t, 50, func(i int) (*http.Response, error) {
			return grant(attacker, fmt.Sprintf("random-%d", i+1), "flood")
		}))
		if codes[http.StatusServiceUnavailable] != 50 {
			t.Fatalf("flood from one address beyond its share: %v, want 50×503", codes)
		}
		resp, m := h.do(grantReq(attacker, "random-x", "flood"))
		wantError(t, resp, m, http.StatusServiceUnavailable, "temporarily_unavailable")
		if resp.Header.Get("Retry-After") == "" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("503 headers: %v", resp.Header)
		}
		// The login page answers the same way, as a page.
		br := h.browser("never")
		_, page := br.get(h.public.URL + "/login")
		req, _ := http.NewRequest(http.MethodPost, h.public.URL+"/login", strings.NewReader(url.Values{
			"csrf_token": {field(t, csrfRe, page)}, "username": {"random-y"}, "password": {"flood"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", attacker)
		pageResp, err := br.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(pageResp.Body)
		pageResp.Body.Close()
		if pageResp.StatusCode != http.StatusServiceUnavailable || pageResp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "try again") {
			t.Fatalf("login page under a flood: %d %v", pageResp.StatusCode, pageResp.Header)
		}

		// A person elsewhere still signs in, on the slot the attacker
		// cannot take.
		resp, err = grant(victim, "vera", "vera-password-1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("a user at another address during the flood: %d", resp.StatusCode)
		}

		// With every slot stuck, a check waits MaxWait, then gets 503.
		go func() {
			if resp, err := grant(other, "random-z", "flood"); err == nil {
				resp.Body.Close()
			}
		}()
		<-checks.entered
		resp, err = grant(victim, "vera", "vera-password-1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("no slot free within MaxWait: %d, want 503 with Retry-After", resp.StatusCode)
		}
		close(checks.release)
		if code := <-held; code != http.StatusBadRequest {
			t.Fatalf("the held check answered %d, want invalid_grant", code)
		}
		// Only the checks that ran were counted: a 503 is no guess.
		if n := loginFailures(t, h, "ip:"+attacker); n != 1 {
			t.Fatalf("the attacker's address holds %d attempts, want the 1 checked", n)
		}
		if n := loginFailures(t, h, userCounter("vera")); n != 0 {
			t.Fatalf("refusals for load counted %d attempts against the user", n)
		}
		if n := loginFailures(t, h, "ip:"+victim); n != 0 {
			t.Fatalf("the victim's address holds %d attempts", n)
		}
	})
}

// Issue 11 item 15: with LATCHKEY_TRUSTED_PROXIES the throttle counts the
// client X-Forwarded-For names, on both the login page and the password
// grant; without it, or from a peer that is not a trusted proxy, the header
// is ignored and cannot be used to pick the address one is counted as.
func TestThrottleTrustedProxies(t *testing.T) {
	cases := []struct {
		name, trusted, xff, counted string
	}{
		{"no trusted proxies", "", "203.0.113.7", "127.0.0.1"},
		{"peer is a trusted proxy", "127.0.0.0/8", "203.0.113.7", "203.0.113.7"},
		{"chain of trusted proxies", "127.0.0.1/32,10.0.0.0/8", "198.51.100.1, 203.0.113.7, 10.1.2.3", "203.0.113.7"},
		{"peer is not a trusted proxy", "10.0.0.0/8", "203.0.113.7", "127.0.0.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
				h, _ := throttleHarness(t, b, &checkCounter{}, roomy, func(c *config.Config) { c.TrustedProxies = tc.trusted })
				c := passwordClient(h, true)
				v := url.Values{"grant_type": {"password"}, "username": {"nobody"}, "password": {"guess"}}
				req, _ := http.NewRequest(http.MethodPost, h.public.URL+"/oauth2/token", strings.NewReader(v.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("X-Forwarded-For", tc.xff)
				req.SetBasicAuth(c.id, c.secret)
				resp, m := h.do(req)
				wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")

				jar, _ := cookiejar.New(nil)
				br := &http.Client{Jar: jar}
				pageResp, err := br.Get(h.public.URL + "/login")
				if err != nil {
					t.Fatal(err)
				}
				page, _ := io.ReadAll(pageResp.Body)
				pageResp.Body.Close()
				req, _ = http.NewRequest(http.MethodPost, h.public.URL+"/login", strings.NewReader(url.Values{
					"csrf_token": {field(t, csrfRe, string(page))}, "username": {"nobody"}, "password": {"guess"}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("X-Forwarded-For", tc.xff)
				if resp, err := br.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("login page: %v %v", resp, err)
				}
				if n := loginFailures(t, h, "ip:"+tc.counted); n != 2 {
					t.Fatalf("ip:%s holds %d failures, want 2 (one per listener)", tc.counted, n)
				}
			})
		})
	}
}
