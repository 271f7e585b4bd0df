package bff_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/latchkey/latchkey/clients/bff"
	resourceserver "github.com/latchkey/latchkey/clients/resource-server"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/lktest"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
)

// setup runs Latchkey, an API behind the resource-server middleware, and
// the BFF on http://localhost (a secure context for Chromium, so its
// __Host- cookie works without TLS).
// Access tokens live 2 s, so that x/oauth2 (which renews 10 s early)
// refreshes on every API call and the rotation chain is exercised.
// counters are what setup's Latchkey and API saw.
type counters struct {
	revokes, refreshes *atomic.Int64
	// boundCalls counts API calls with a DPoP-bound token; dpopTokens the
	// token responses that said token_type DPoP.
	boundCalls, dpopTokens *atomic.Int64
}

// sniffer copies what a handler writes, to read the token responses.
type sniffer struct {
	http.ResponseWriter
	body []byte
}

func (s *sniffer) Write(b []byte) (int, error) {
	s.body = append(s.body, b...)
	return s.ResponseWriter.Write(b)
}

func setup(t *testing.T) (lk *lktest.Server, bffURL string, c counters) {
	c = counters{&atomic.Int64{}, &atomic.Int64{}, &atomic.Int64{}, &atomic.Int64{}}
	revokes, refreshes, boundCalls := c.revokes, c.refreshes, c.boundCalls
	lk = lktest.Start(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.URL.Path == "/oauth2/revoke":
				revokes.Add(1)
			case r.URL.Path == "/oauth2/token" && r.ParseForm() == nil && r.PostForm.Get("grant_type") == "refresh_token":
				refreshes.Add(1)
			}
			if r.URL.Path != "/oauth2/token" {
				next.ServeHTTP(w, r)
				return
			}
			sn := &sniffer{ResponseWriter: w}
			next.ServeHTTP(sn, r)
			var answer struct {
				TokenType string `json:"token_type"`
			}
			if json.Unmarshal(sn.body, &answer) == nil && answer.TokenType == "DPoP" {
				c.dpopTokens.Add(1)
			}
		})
	}, func(c *config.Config) { c.AccessTokenTTL = 2 * time.Second })
	// The API accepts DPoP (its ExternalURL is known once it listens).
	api := httptest.NewUnstartedServer(nil)
	v, err := resourceserver.New(resourceserver.Config{Issuer: lk.Issuer, Audience: "https://api.example.com", ExternalURL: "http://" + api.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	api.Config.Handler = v.Middleware("invoices:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := resourceserver.FromContext(r.Context())
		if c.JKT != "" {
			boundCalls.Add(1)
		}
		_, _ = w.Write([]byte(`{"caller":"` + c.Subject + `","invoices":["INV-1"]}`))
	}))
	api.Start()
	t.Cleanup(api.Close)

	front := httptest.NewUnstartedServer(nil)
	bffURL = "http://localhost:" + front.Listener.Addr().String()[strings.LastIndexByte(front.Listener.Addr().String(), ':')+1:]
	client := lk.AdminPost("/admin/clients", map[string]any{"client_name": "BFF", "trusted": true,
		"grant_types": []string{"authorization_code", "refresh_token"}, "redirect_uris": []string{bffURL + "/auth/callback"},
		"post_logout_redirect_uris": []string{bffURL + "/"},
		"scope":                     "openid profile email invoices:read offline_access", "audience": []string{"https://api.example.com"}})
	b, err := bff.New(context.Background(), bff.Config{Issuer: lk.Issuer, ClientID: client["client_id"].(string), ClientSecret: client["client_secret"].(string),
		BaseURL: bffURL, Scopes: []string{"openid", "profile", "email", "invoices:read", "offline_access"}, Upstreams: map[string]string{"invoices": api.URL}})
	if err != nil {
		t.Fatal(err)
	}
	front.Config.Handler = b
	front.Start()
	t.Cleanup(front.Close)

	hash, _ := secrets.HashPassword("nina-password-1", secrets.Argon2Params{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32})
	if err := lk.Store.CreateUser(context.Background(), &store.User{ID: "user-nina", Username: "nina", PasswordHash: hash,
		Name: "Nina Simone", Email: "nina@example.com", EmailVerified: true}); err != nil {
		t.Fatal(err)
	}
	return lk, bffURL, c
}

// serverDPoP reports whether Latchkey advertises DPoP (RFC 9449 §5.1).
func serverDPoP(t *testing.T, issuer string) bool {
	resp, err := http.Get(issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		Algs []string `json:"dpop_signing_alg_values_supported"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return len(m.Algs) > 0
}

// State-changing calls without the CSRF header are refused, signed in or not.
func TestCSRFHeaderRequired(t *testing.T) {
	_, bffURL, _ := setup(t)
	for _, path := range []string{"/auth/logout", "/api/invoices"} {
		resp, err := http.Post(bffURL+path, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s without %s: %d", path, bff.CSRFHeader, resp.StatusCode)
		}
	}
	resp, _ := http.Get(bffURL + "/api/not-allowed")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("an upstream not on the allow-list: %d", resp.StatusCode)
	}
}

// In real Chromium: sign in through the BFF (which verifies the ID token
// and shows the name and email from it), with its page's styles allowed by
// its own CSP; call the API, check that no token and no readable cookie
// reached the page; sign out, which revokes and ends the Latchkey session,
// so that the next "Sign in" asks for the password again.
func TestBrowserThroughBFF(t *testing.T) {
	browser := lktest.Browser(t, 60*time.Second)
	lk, bffURL, c := setup(t)
	revokes, refreshes, boundCalls := c.revokes, c.refreshes, c.boundCalls

	err := chromedp.Do(browser,
		chromedp.Navigate(bffURL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#login`)),
		chromedp.Click(chromedp.CSS(`#login`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "nina"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "nina-password-1"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#call`)),
	)
	if err != nil {
		t.Fatalf("sign in through the BFF: %v", err)
	}
	status, err := chromedp.Run(browser, chromedp.Text(chromedp.ID("status")))
	if err != nil || !strings.Contains(status, "Signed in as Nina Simone") {
		t.Fatalf("status %q %v", status, err)
	}
	if email, _ := chromedp.Run(browser, chromedp.Text(chromedp.ID("email"))); email != "nina@example.com" {
		t.Fatalf("email shown: %q", email)
	}
	// The stylesheet applied: the CSP lets the page's own styles load.
	if margin, _ := chromedp.Run(browser, chromedp.Evaluate[string](`getComputedStyle(document.body).maxWidth`)); margin != "576px" {
		t.Fatalf("the page's styles did not apply (body max-width %q): blocked by the CSP?", margin)
	}
	// Nothing a script could steal: no readable cookie, no stored token.
	exposed, err := chromedp.Run(browser, chromedp.Evaluate[string](`document.cookie + "|" + localStorage.length + "|" + sessionStorage.length`))
	if err != nil {
		t.Fatal(err)
	}
	if exposed != "|0|0" {
		t.Fatalf("the page can read %q", exposed)
	}
	for call := range 2 {
		_, _ = chromedp.Run(browser, chromedp.Evaluate[string](`document.getElementById("result").textContent = ""`))
		if err := chromedp.Do(browser, chromedp.Click(chromedp.CSS(`#call`))); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		var result string
		for time.Now().Before(deadline) {
			result, _ = chromedp.Run(browser, chromedp.Text(chromedp.ID("result")))
			if result != "" {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !strings.HasPrefix(result, "200") || !strings.Contains(result, "INV-1") || !strings.Contains(result, "user-nina") {
			t.Fatalf("API call %d through the BFF: %q", call+1, result)
		}
	}
	if refreshes.Load() < 2 {
		t.Fatalf("the BFF refreshed %d times for two calls with expiring tokens", refreshes.Load())
	}
	// With DPoP on the server, the BFF's tokens are bound to its key
	// (token_type DPoP, cnf.jkt) and every call went with a proof.
	if serverDPoP(t, lk.Issuer) {
		if boundCalls.Load() < 2 || c.dpopTokens.Load() < 1+refreshes.Load() {
			t.Fatalf("%d of the API calls carried a DPoP-bound token; %d token responses (1 exchange, %d refreshes) said token_type DPoP",
				boundCalls.Load(), c.dpopTokens.Load(), refreshes.Load())
		}
	} else {
		t.Log("Latchkey has no DPoP yet (no dpop_signing_alg_values_supported): the BFF fell back to bearer tokens; DPoP binding not checked here")
	}
	// A reload keeps the session: it lives in the BFF, not in the page.
	if err := chromedp.Do(browser, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#call`))); err != nil {
		t.Fatalf("after a reload: %v", err)
	}
	if err := chromedp.Do(browser, chromedp.Click(chromedp.CSS(`#logout`)), chromedp.WaitVisible(chromedp.CSS(`#login`))); err != nil {
		t.Fatal(err)
	}
	if here, _ := chromedp.Run(browser, chromedp.Evaluate[string](`location.origin`)); here != bffURL {
		t.Fatalf("after sign-out the browser is on %s, not back at the BFF", here)
	}
	if revokes.Load() != 1 {
		t.Fatalf("logout sent %d revocations, want 1", revokes.Load())
	}
	if live, err := lk.Store.ActiveRefreshTokensOf(context.Background(), "user-nina"); err != nil || live != 0 {
		t.Fatalf("%d refresh tokens still work after logout (%v)", live, err)
	}
	// The Latchkey session ended too: signing in again shows the login page.
	err = chromedp.Do(browser,
		chromedp.Click(chromedp.CSS(`#login`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)),
	)
	if err != nil {
		t.Fatalf("after sign-out, Sign in did not show the login page: %v", err)
	}
}
