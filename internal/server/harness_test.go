package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/server"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

const (
	testSecret     = "test-system-secret-that-is-long-enough-0123456789"
	testAdminToken = "test-admin-token-0123456789"
)

// harness is a running Latchkey: both listeners under httptest, on a real
// database.
type harness struct {
	t      testing.TB
	public *httptest.Server
	admin  *httptest.Server
	store  *store.Store
	cfg    *config.Config
	logs   *syncBuffer
	// clock is the store's and the server's clock, unless the test brought
	// its own (then nil).
	clock *offsetClock
	srv   *server.Server
}

// offsetClock is the wall clock plus an offset that advance moves: a test
// lets an hour pass at once. It runs on rather than standing still because
// fosite dates the tokens it issues by the wall clock; our checks, a fixed
// distance ahead of it, see them expire exactly as late as they would. A
// test that needs exact instants stops it with set.
type offsetClock struct {
	mu      sync.Mutex
	offset  time.Duration
	stopped bool
	at      time.Time
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return c.at
	}
	return time.Now().Add(c.offset)
}

func (c *offsetClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
	c.at = c.at.Add(d)
}

// now reads the harness's clock, or the wall clock when the test brought
// its own to the store.
func (h *harness) now() time.Time {
	if h.clock == nil {
		return time.Now()
	}
	return h.clock.Now()
}

// set stops the clock at t; from then on only advance moves it.
func (c *offsetClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped, c.at = true, t
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newHarness(t testing.TB, b storetest.Backend, tune ...func(*config.Config)) *harness {
	t.Helper()
	return newHarnessWithStore(t, b, store.Options{}, tune...)
}

func newHarnessWithStore(t testing.TB, b storetest.Backend, opts store.Options, tune ...func(*config.Config)) *harness {
	t.Helper()
	return newHarnessWith(t, b, opts, nil, tune...)
}

// newHarnessWith also passes server options (hooks into the login pages).
func newHarnessWith(t testing.TB, b storetest.Backend, opts store.Options, srvOpts []server.Option, tune ...func(*config.Config)) *harness {
	t.Helper()
	var clock *offsetClock
	if opts.Now == nil {
		clock = &offsetClock{}
		opts.Now = clock.Now
	}
	// One clock: the store's is the server's (a caller's WithClock, later
	// in the list, overrides it).
	srvOpts = append([]server.Option{server.WithClock(opts.Now)}, srvOpts...)
	dbURL := b.URL(t)
	st := storetest.Open(t, dbURL, opts)
	public := httptest.NewUnstartedServer(nil)
	cfg := config.Default()
	cfg.DatabaseURL = dbURL
	cfg.Issuer = "http://" + public.Listener.Addr().String()
	cfg.Secret = testSecret
	cfg.AdminToken = testAdminToken
	cfg.PublicAddr = "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.AccessTokenTTL = 15 * time.Minute
	cfg.RefreshTokenTTL = 720 * time.Hour
	cfg.AuthCodeTTL = time.Minute
	cfg.RefreshGracePeriod = 10 * time.Second
	cfg.RefreshTokenMaxLifetime = 2160 * time.Hour
	cfg.AccessTokenFormat = config.FormatOpaque
	cfg.SigningAlg = "ES256"
	cfg.KeyRotationPeriod = 720 * time.Hour
	cfg.KeyPrepublishPeriod = 15 * time.Minute
	cfg.LogLevel = "debug"
	cfg.SessionIdleTTL = 24 * time.Hour
	cfg.SessionTTL = 168 * time.Hour
	for _, f := range tune {
		f(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := server.New(context.Background(), cfg, st, log, srvOpts...)
	if err != nil {
		t.Fatal(err)
	}
	public.Config.Handler = srv.PublicHandler()
	public.Start()
	admin := httptest.NewServer(srv.AdminHandler())
	t.Cleanup(public.Close)
	t.Cleanup(admin.Close)
	return &harness{t: t, public: public, admin: admin, store: st, cfg: cfg, logs: logs, clock: clock, srv: srv}
}

// do sends a request and decodes a JSON answer into a map.
func (h *harness) do(req *http.Request) (*http.Response, map[string]any) {
	h.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(body) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &m); err != nil {
			h.t.Fatalf("%s %s: body is not JSON: %q", req.Method, req.URL, body)
		}
	}
	return resp, m
}

// form posts a form to a public endpoint, with Basic auth when user is set.
func (h *harness) form(path string, user, pass string, v url.Values) (*http.Response, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.public.URL+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	return h.do(req)
}

// adminJSON calls the admin API with the admin token.
func (h *harness) adminJSON(method, path string, body any) (*http.Response, map[string]any) {
	h.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, h.admin.URL+path, r)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	req.Header.Set("Content-Type", "application/json")
	return h.do(req)
}

// adminList GETs an admin path that answers a JSON array.
func (h *harness) adminList(path string) (*http.Response, []map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.admin.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	return resp, out
}

type testClient struct{ id, secret string }

// client registers a client through the admin API.
func (h *harness) client(md map[string]any) testClient {
	h.t.Helper()
	if _, ok := md["id_token_signed_response_alg"]; !ok {
		// ID tokens signed with the configured algorithm, which always has
		// a key (the RS256 default needs one beside it); a test that wants
		// another algorithm says so.
		md = maps.Clone(md)
		md["id_token_signed_response_alg"] = h.cfg.SigningAlg
	}
	resp, m := h.adminJSON(http.MethodPost, "/admin/clients", md)
	if resp.StatusCode != http.StatusCreated {
		h.t.Fatalf("register client: %d %v", resp.StatusCode, m)
	}
	secret, _ := m["client_secret"].(string)
	return testClient{id: m["client_id"].(string), secret: secret}
}

func (h *harness) serviceClient(scope string, extra ...func(map[string]any)) testClient {
	md := map[string]any{"client_name": "service", "grant_types": []string{"client_credentials"}, "scope": scope,
		"audience": []string{"https://api.example", "https://other.example"}}
	for _, f := range extra {
		f(md)
	}
	return h.client(md)
}

func (h *harness) user(username, password string) string {
	h.t.Helper()
	hash, err := secrets.HashPassword(password, secrets.Argon2Params{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		h.t.Fatal(err)
	}
	id := "user-" + username
	if err := h.store.CreateUser(context.Background(), &store.User{ID: id, Username: username, PasswordHash: hash}); err != nil {
		h.t.Fatal(err)
	}
	return id
}

func (h *harness) token(c testClient, v url.Values) map[string]any {
	h.t.Helper()
	resp, m := h.form("/oauth2/token", c.id, c.secret, v)
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("token: %d %v", resp.StatusCode, m)
	}
	return m
}

func (h *harness) introspect(caller testClient, token string, extra ...string) map[string]any {
	h.t.Helper()
	v := url.Values{"token": {token}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	resp, m := h.form("/oauth2/introspect", caller.id, caller.secret, v)
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("introspect: %d %v", resp.StatusCode, m)
	}
	return m
}

func wantError(t *testing.T, resp *http.Response, m map[string]any, status int, code string) {
	t.Helper()
	if resp.StatusCode != status || m["error"] != code {
		t.Fatalf("got %d %v, want %d error=%s", resp.StatusCode, m, status, code)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("error Content-Type = %q", resp.Header.Get("Content-Type"))
	}
}
