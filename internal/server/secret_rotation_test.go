package server_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/server"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// LATCHKEY_SECRET="new,old": everything made under the old secret keeps
// working (client secrets, opaque and refresh tokens, signing keys), and new
// things are made under the new one.
func TestSystemSecretRotation(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		for _, format := range []string{config.FormatOpaque, config.FormatJWT} {
			t.Run(format, func(t *testing.T) {
				h := newHarness(t, b, withFormat(format))
				svc := h.serviceClient("read")
				h.user("ola", "ola-password-1")
				pwd := passwordClient(h, true)
				before := h.token(pwd, url.Values{"grant_type": {"password"}, "username": {"ola"}, "password": {"ola-password-1"}, "scope": {"read offline_access"}})

				cfg := *h.cfg
				cfg.Secret = "a-brand-new-system-secret-0123456789-xyz," + h.cfg.Secret
				if err := cfg.Validate(); err != nil {
					t.Fatal(err)
				}
				srv, err := server.New(context.Background(), &cfg, h.store, slog.New(slog.DiscardHandler))
				if err != nil {
					t.Fatalf("start with the rotated secret list: %v", err)
				}
				rotated := httptest.NewServer(srv.PublicHandler())
				defer rotated.Close()
				h.public = rotated // the helpers now talk to the rotated server

				if in := h.introspect(svc, before["access_token"].(string)); in["active"] != true {
					t.Fatalf("an access token from before the rotation: %v", in)
				}
				m := h.token(pwd, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {before["refresh_token"].(string)}})
				if in := h.introspect(svc, m["access_token"].(string)); in["active"] != true {
					t.Fatal("a token made after the rotation does not introspect")
				}
				resp, body := h.form("/oauth2/token", svc.id, "wrong", url.Values{"grant_type": {"client_credentials"}})
				wantError(t, resp, body, http.StatusUnauthorized, "invalid_client")
			})
		}
	})
}
