package spa_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
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

// The SPA in real Chromium: a silent attempt that finds no session, a
// sign-in, an API call, a refresh with rotation, nothing in web storage, and
// after a reload a silent sign-in with prompt=none.
func TestSPAInBrowser(t *testing.T) {
	browser := lktest.Browser(t, 90*time.Second)
	need(t, "dist/app.js", "build it with `npm ci && npm run build` in clients/spa (.ci/run does)")

	app := httptest.NewUnstartedServer(nil)
	appOrigin := origin(app)
	lk := lktest.Start(t, nil, func(c *config.Config) { c.CORSOrigins = appOrigin })

	v, _ := resourceserver.New(resourceserver.Config{Issuer: lk.Issuer, Audience: "https://api.example.com"})
	protected := v.Middleware("invoices:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := resourceserver.FromContext(r.Context())
		_, _ = w.Write([]byte(`{"caller":"` + c.Subject + `","invoices":["INV-1"]}`))
	}))
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", appOrigin)
		w.Header().Set("Access-Control-Allow-Headers", "Authorization")
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		protected.ServeHTTP(w, r)
	}))
	defer api.Close()

	client := lk.AdminPost("/admin/clients", map[string]any{"client_name": "SPA", "token_endpoint_auth_method": "none", "trusted": true,
		"grant_types": []string{"authorization_code", "refresh_token"}, "redirect_uris": []string{appOrigin + "/"},
		"post_logout_redirect_uris": []string{appOrigin + "/"},
		"scope":                     "invoices:read offline_access", "audience": []string{"https://api.example.com"}})
	hash, _ := secrets.HashPassword("pia-password-1", secrets.Argon2Params{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32})
	if err := lk.Store.CreateUser(context.Background(), &store.User{ID: "user-pia", Username: "pia", PasswordHash: hash}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]string{"issuer": lk.Issuer, "client_id": client["client_id"].(string),
		"redirect_uri": appOrigin + "/", "scope": "invoices:read offline_access", "api": api.URL + "/invoices"})
	files := http.FileServer(http.Dir("dist"))
	app.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/config.json" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(cfg)
			return
		}
		files.ServeHTTP(w, r)
	})
	app.Start()
	defer app.Close()

	waitText := func(id, want string) string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		var got string
		for time.Now().Before(deadline) {
			got, _ = chromedp.Run(browser, chromedp.Text(chromedp.ID(id)))
			if strings.Contains(got, want) {
				return got
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("#%s never showed %q; it shows %q", id, want, got)
		return ""
	}

	if err := chromedp.Do(browser, chromedp.Navigate(appOrigin+"/")); err != nil {
		t.Fatal(err)
	}
	waitText("status", "login_required") // the silent attempt found no session
	err := chromedp.Do(browser,
		chromedp.Click(chromedp.CSS(`#login`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "pia"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "pia-password-1"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
	)
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	waitText("status", "Signed in as user-pia")

	if err := chromedp.Do(browser, chromedp.Click(chromedp.CSS(`#call`))); err != nil {
		t.Fatal(err)
	}
	waitText("result", `200 {"caller":"user-pia"`)
	if err := chromedp.Do(browser, chromedp.Click(chromedp.CSS(`#refresh`))); err != nil {
		t.Fatal(err)
	}
	waitText("rotations", "rotations: 1")

	stored, err := chromedp.Run(browser, chromedp.Evaluate[string](`localStorage.length + "|" + sessionStorage.length + "|" + document.cookie`))
	if err != nil || stored != "0|0|" {
		t.Fatalf("web storage or cookies hold %q (%v); tokens must stay in memory", stored, err)
	}

	// A reload forgets the tokens; prompt=none gets new ones silently.
	if err := chromedp.Do(browser, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitText("status", "Signed in as user-pia")

	// Sign out: the refresh token is revoked, the Latchkey session ends, and
	// the next silent attempt finds no session.
	err = chromedp.Do(browser,
		chromedp.Click(chromedp.CSS(`#logout`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/logout"] button[type=submit]`)),
		chromedp.Click(chromedp.CSS(`form[action="/logout"] button[type=submit]`)),
	)
	if err != nil {
		t.Fatalf("sign out: %v", err)
	}
	waitText("status", "login_required")
	if live, err := lk.Store.ActiveRefreshTokensOf(context.Background(), "user-pia"); err != nil || live != 0 {
		t.Fatalf("%d refresh tokens still work after sign-out (%v)", live, err)
	}
}
