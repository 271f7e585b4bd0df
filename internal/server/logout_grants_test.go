package server_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/janitor"
	"github.com/latchkey/latchkey/internal/server"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// Issue 11 item 6: sign in, authorize, sign in again (a new login session
// takes over the grant), rotate, let the janitor purge the older rows, log
// out: the refresh token must be dead. A rotated refresh token copies the
// login session id from its stored session, i.e. the session before the
// re-login; once the code and the first refresh token (the rows that had
// been moved to the new session) were purged, logout used to find nothing.
//
// The rotation runs on a second instance whose refresh lifetime is longer,
// so that a janitor whose clock is 90 minutes ahead purges the code and the
// first refresh token but not the live one, without any test waiting.
func TestLogoutAfterReloginRotationAndJanitor(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, func(c *config.Config) { c.RefreshTokenTTL = time.Hour })
		h.user("ines", "ines-password-1")
		app := h.spa("https://app.example/cb", true, "openid offline_access")
		rs := h.serviceClient("introspect")
		br := h.browser(app.conf.RedirectURL)

		verifier := oauth2.GenerateVerifier()
		resp, page := br.get(app.conf.AuthCodeURL("state-one-1234", oauth2.S256ChallengeOption(verifier)))
		resp, _ = br.login(page, "ines", "ines-password-1")
		code := callback(t, resp, app.conf.RedirectURL).Get("code")
		tok, err := app.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
		if err != nil || tok.RefreshToken == "" {
			t.Fatalf("exchange: %v %v", tok, err)
		}

		// Sign in again on the same browser: a new login session.
		resp, page = br.get(app.conf.AuthCodeURL("state-two-1234", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "login")))
		if !strings.Contains(page, `name="password"`) {
			t.Fatalf("prompt=login did not ask to sign in: %d", resp.StatusCode)
		}
		resp, _ = br.login(page, "ines", "ines-password-1")
		callback(t, resp, app.conf.RedirectURL)

		// Rotate on an instance whose refresh tokens live two hours.
		cfg := *h.cfg
		cfg.RefreshTokenTTL = 2 * time.Hour
		srv, err := server.New(context.Background(), &cfg, h.store, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		other := httptest.NewServer(srv.PublicHandler())
		defer other.Close()
		resp, m := postForm(t, other.URL+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {app.id}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("refresh: %d %v", resp.StatusCode, m)
		}
		live := m["refresh_token"].(string)

		// The janitor, 90 minutes on: the code and the first refresh token
		// have expired; the live refresh token has not.
		later := storetest.Open(t, h.cfg.DatabaseURL, store.Options{Now: func() time.Time { return time.Now().Add(90 * time.Minute) }})
		j := janitor.New(later, server.Retention(h.cfg), slog.New(slog.DiscardHandler))
		if n, _, err := j.Pass(context.Background()); err != nil || n == 0 {
			t.Fatalf("janitor pass: %d rows, %v", n, err)
		}
		if in := h.introspect(rs, live); in["active"] != true {
			t.Fatalf("the janitor purged the live refresh token: %v", in)
		}
		// The token rows that still named the old login session are gone:
		// only login_session_grants can lead logout to the grant now.
		if _, err := h.store.GetRefreshTokenSession(context.Background(), signatureOf(tok.RefreshToken), nil); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the janitor left the first refresh token's row: %v", err)
		}

		resp, page = br.get(h.public.URL + "/logout")
		if resp, _ = br.post("/logout", url.Values{"csrf_token": {field(t, csrfRe, page)}}); resp.StatusCode != http.StatusOK {
			t.Fatalf("logout: %d", resp.StatusCode)
		}
		if in := h.introspect(rs, live); in["active"] != false {
			t.Errorf("the refresh token outlived the logout: %v", in)
		}
		resp, m = h.form("/oauth2/token", "", "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {live}, "client_id": {app.id}})
		wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")
	})
}

// postForm posts a form to any URL and decodes the JSON answer.
func postForm(t *testing.T, u string, v url.Values) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	h := &harness{t: t}
	return h.do(req)
}

// signatureOf is the part of an opaque fosite token that keys its row
// (KEY.SIGNATURE).
func signatureOf(token string) string { return token[strings.LastIndexByte(token, '.')+1:] }
