// Package lktest starts a real Latchkey in process for the tests of
// programs that use it (the reference clients): both listeners under
// httptest, on a fresh SQLite database, JWT access tokens.
package lktest

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/server"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// AdminToken is the admin API's bearer token in tests.
const AdminToken = "lktest-admin-token-0123456789"

// Server is a running Latchkey.
type Server struct {
	t      testing.TB
	Public *httptest.Server
	Admin  *httptest.Server
	Issuer string
	Store  *store.Store
}

// Start runs Latchkey. wrap, if not nil, wraps the public handler (to count
// or observe requests); tune adjusts the configuration.
func Start(t testing.TB, wrap func(http.Handler) http.Handler, tune ...func(*config.Config)) *Server {
	t.Helper()
	dbURL := storetest.SQLiteURL(t)
	st := storetest.Open(t, dbURL, store.Options{})
	public := httptest.NewUnstartedServer(nil)
	issuer := "http://localhost:" + portOf(public.Listener.Addr().String())
	cfg := config.Default()
	cfg.DatabaseURL = dbURL
	cfg.Issuer = issuer
	cfg.Secret = "lktest-system-secret-0123456789-abcdef"
	cfg.AdminToken = AdminToken
	cfg.PublicAddr = "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.AccessTokenTTL = 15 * time.Minute
	cfg.RefreshTokenTTL = 720 * time.Hour
	cfg.RefreshTokenMaxLifetime = 2160 * time.Hour
	cfg.AuthCodeTTL = time.Minute
	cfg.RefreshGracePeriod = 10 * time.Second
	cfg.AccessTokenFormat = config.FormatJWT
	cfg.SigningAlg = "ES256"
	cfg.KeyRotationPeriod = 720 * time.Hour
	cfg.LogLevel = "error"
	cfg.SessionIdleTTL = time.Hour
	cfg.SessionTTL = 24 * time.Hour
	// Keys sign as soon as they are made (no pre-publication), as before.
	cfg.KeyPrepublishPeriod = 0
	for _, f := range tune {
		f(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(context.Background(), cfg, st, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h := srv.PublicHandler()
	if wrap != nil {
		h = wrap(h)
	}
	public.Config.Handler = h
	public.Start()
	admin := httptest.NewServer(srv.AdminHandler())
	t.Cleanup(public.Close)
	t.Cleanup(admin.Close)
	return &Server{t: t, Public: public, Admin: admin, Issuer: issuer, Store: st}
}

func portOf(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[i+1:]
		}
	}
	return addr
}

// AdminPost calls the admin API and decodes the JSON answer.
func (s *Server) AdminPost(path string, body any) map[string]any {
	s.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, s.Admin.URL+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	if resp.StatusCode/100 != 2 {
		s.t.Fatalf("POST %s: %d %v", path, resp.StatusCode, m)
	}
	return m
}
