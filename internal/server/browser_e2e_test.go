package server_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/latchkey/latchkey/internal/lktest"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// The code flow in a real headless Chromium: the login and consent pages
// are filled in and clicked like a person would, without JavaScript on our
// side, and the app's callback receives a code that exchanges for tokens.
func TestBrowserCodeFlow(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("mia", "mia-password-1")
		rs := h.serviceClient("introspect")

		codes := make(chan string, 1)
		app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/callback" && r.URL.Query().Get("iss") == h.cfg.Issuer {
				select {
				case codes <- r.URL.Query().Get("code"):
				default:
				}
			}
			_, _ = w.Write([]byte("<!doctype html><title>app</title><p id=done>signed in</p>"))
		}))
		defer app.Close()
		spa := h.spa(app.URL+"/callback", false, "openid offline_access")
		verifier := oauth2.GenerateVerifier()
		authURL := spa.conf.AuthCodeURL("state-browser1", oauth2.S256ChallengeOption(verifier))

		browserCtx := lktest.Browser(t, 60*time.Second)
		ctx := browserCtx

		steps := []chromedp.Action[chromedp.Void]{
			chromedp.Navigate(authURL),
			chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)),
		}
		if err := chromedp.Do(browserCtx, steps...); err != nil {
			t.Fatalf("login page: %v", err)
		}
		screenshot, err := chromedp.Run(browserCtx, chromedp.FullScreenshot(80))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		err = chromedp.Do(browserCtx,
			chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "mia"),
			chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "mia-password-1"),
			chromedp.Click(chromedp.CSS(`button[type=submit]`)),
			chromedp.WaitVisible(chromedp.CSS(`button[name=consent][value=allow]`)),
			chromedp.Click(chromedp.CSS(`button[name=consent][value=allow]`)),
			chromedp.WaitVisible(chromedp.ID(`done`)),
		)
		if err != nil {
			t.Fatalf("browser flow: %v", err)
		}
		_ = os.WriteFile(filepath.Join(t.TempDir(), "login.jpg"), screenshot, 0o600)

		var code string
		select {
		case code = <-codes:
		case <-ctx.Done():
			t.Fatal("the app never received a code")
		}
		tok, err := spa.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		if in := h.introspect(rs, tok.AccessToken); in["active"] != true || in["username"] != "mia" {
			t.Fatalf("introspection %v", in)
		}
	})
}
