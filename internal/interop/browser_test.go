package interop_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/lktest"
)

// needBuilt skips (fails in CI) when the pages were not built.
func needBuilt(t *testing.T) {
	if _, err := os.Stat("web/dist/openid-client.js"); err != nil {
		msg := "internal/interop/web/dist is missing: run `npm ci && npm run build` in internal/interop/web (.ci/run does)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// The JavaScript libraries people use for OpenID Connect in a browser, each
// from a page of its own (web/src) in headless Chromium, in its normal
// configuration: discovery from the issuer, a public client with PKCE. The
// person signs in on Latchkey's login page; the page shows what the library
// validated (the ID token's claims and, where the library fetches it,
// userinfo); sign-out through the library's end-session call ends the
// Latchkey session, so the next sign-in shows the login page again.
func TestBrowserLibraries(t *testing.T) {
	needBuilt(t)
	for _, lib := range []string{"openid-client", "oidc-client-ts"} {
		t.Run(lib, func(t *testing.T) {
			browser := lktest.Browser(t, 90*time.Second)
			page := httptest.NewUnstartedServer(nil)
			pageOrigin := "http://localhost:" + page.Listener.Addr().String()[strings.LastIndexByte(page.Listener.Addr().String(), ':')+1:]
			// The page calls the token endpoint itself: its origin is listed.
			lk := lktest.Start(t, nil, func(c *config.Config) { c.CORSOrigins = pageOrigin })
			addUser(t, lk)
			redirect := pageOrigin + "/" + lib + ".html"
			reg := lk.AdminPost("/admin/clients", map[string]any{"client_name": lib, "token_endpoint_auth_method": "none", "trusted": true,
				"grant_types": []string{"authorization_code", "refresh_token"}, "redirect_uris": []string{redirect},
				"post_logout_redirect_uris": []string{redirect}, "scope": "openid profile email offline_access"})
			cfg, _ := json.Marshal(map[string]string{"issuer": lk.Issuer, "client_id": reg["client_id"].(string), "redirect_uri": redirect})
			files := http.FileServer(http.Dir("web/dist"))
			page.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/config.json" {
					w.Header().Set("Content-Type", "application/json")
					_, _ = w.Write(cfg)
					return
				}
				files.ServeHTTP(w, r)
			})
			page.Start()
			t.Cleanup(page.Close)

			status := func(want string) {
				t.Helper()
				var got string
				for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
					got, _ = chromedp.Run(browser, chromedp.Text(chromedp.ID("status")))
					if got == want || strings.HasPrefix(got, "error") {
						break
					}
				}
				if got != want {
					t.Fatalf("%s: the page says %q, want %q", lib, got, want)
				}
			}
			signIn := []chromedp.Action[chromedp.Void]{
				chromedp.Click(chromedp.CSS(`#login`)),
				chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)),
				chromedp.SendKeys(chromedp.CSS(`input[name=username]`), user.Username),
				chromedp.SendKeys(chromedp.CSS(`input[name=password]`), password),
				chromedp.Click(chromedp.CSS(`button[type=submit]`)),
			}
			if err := chromedp.Do(browser, chromedp.Navigate(redirect)); err != nil {
				t.Fatal(err)
			}
			status("ready")
			if err := chromedp.Do(browser, signIn...); err != nil {
				t.Fatalf("sign in: %v", err)
			}
			status("signed in")
			raw, _ := chromedp.Run(browser, chromedp.Text(chromedp.ID("result")))
			var got map[string]any
			if err := json.Unmarshal([]byte(raw), &got); err != nil {
				t.Fatalf("result %q: %v", raw, err)
			}
			if got["sub"] != user.ID || got["name"] != user.Name || got["email"] != user.Email {
				t.Fatalf("%s validated %v", lib, got)
			}
			if lib == "openid-client" && (got["userinfo_email"] != user.Email || got["userinfo_name"] != user.Name || got["state_sent"] != false) {
				t.Fatalf("openid-client: %v (it sends no state when the server supports PKCE)", got)
			}
			if lib == "oidc-client-ts" && (got["has_id_token"] != true) {
				t.Fatalf("oidc-client-ts: %v", got)
			}

			if err := chromedp.Do(browser, chromedp.Click(chromedp.CSS(`#logout`))); err != nil {
				t.Fatal(err)
			}
			status("signed out")
			if err := chromedp.Do(browser, signIn[:2]...); err != nil {
				t.Fatalf("after sign-out the login page did not show: %v", err)
			}
		})
	}
}
