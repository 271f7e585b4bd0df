package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/latchkey/latchkey/internal/admin"
	"github.com/latchkey/latchkey/internal/backchannel"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/janitor"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/metrics"
	"github.com/latchkey/latchkey/internal/oauth"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"
)

// MaxBodyBytes is the largest request body any endpoint reads (1 MiB).
const MaxBodyBytes = 1 << 20

// ShutdownTimeout bounds how long in-flight requests may take to finish
// after SIGTERM.
const ShutdownTimeout = 30 * time.Second

// Server holds both listeners' handlers.
type Server struct {
	cfg      *config.Config
	store    *store.Store
	provider *oauth.Provider
	pages    *login.Handler
	// endSession is the end-session endpoint and the sign-out form.
	endSession *oauth.EndSession
	// account is /account and the e-mailed links' pages.
	account *login.Account
	// backchannel delivers back-channel logout tokens.
	backchannel *backchannel.Deliverer
	// janitor deletes expired rows; one of the background tasks.
	janitor *janitor.Janitor
	keys    *keys.Manager
	admin   *admin.API
	metrics *metrics.Metrics
	log     *slog.Logger
	// tracer is nil when traces are off: the handlers are then not
	// wrapped at all.
	tracer trace.TracerProvider
	// background is what Run keeps running beside the listeners: key
	// rotation and the janitor. Each returns once its context is done.
	background []func(context.Context)
}

// Option changes how New builds the server; tests use them, production
// needs none.
type Option func(*options)

type options struct {
	login []func(*login.Config)
	now   func() time.Time
	// background replaces the background tasks Run starts (tests).
	background []func(context.Context)
	// backchannel adjusts the back-channel deliverer's options (tests).
	backchannel []func(*backchannel.Options)
	// account adjusts the account pages' configuration (tests).
	account []func(*login.AccountConfig)
	// keys adjusts the key manager's options (tests).
	keys []func(*keys.Options)
	// version and commit are latchkey_build_info's (WithBuildInfo).
	version, commit string
	// tracer makes the HTTP spans (WithTracerProvider); nil is off.
	tracer trace.TracerProvider
}

// WithLogin lets f adjust the login pages' configuration (the throttle, the
// argon2id bounds, a verification hook) before they are built.
func WithLogin(f func(*login.Config)) Option {
	return func(o *options) { o.login = append(o.login, f) }
}

// WithClock sets the server's one clock: the signing keys, JWT verification,
// the provider and its refresh grant, the pages and the admin service read
// it, so that a test lets time pass without waiting for it. Without it the
// server reads the store's clock (store.Options.Now); a test that sets both
// passes the same one, since the store dates rotations, revocations and
// throttle counters.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// New builds the server from a validated configuration and an open,
// migrated store. It loads the signing keys, making the first one when the
// database has none.
func New(ctx context.Context, cfg *config.Config, st *store.Store, log *slog.Logger, opts ...Option) (*Server, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.now == nil {
		o.now = st.Now
	}
	log = serverLogger(log)
	m := metrics.New()
	m.WatchClientCache(st.CacheMode, store.CacheOff, store.CachePushed, store.CachePolled, store.CacheExpiring)
	m.WatchDenyList(st.RevocationsInMemory)
	ko := KeyOptions(cfg, log)
	ko.Now = o.now
	for _, f := range o.keys {
		f(&ko)
	}
	km, err := keys.New(ctx, st, cfg.SystemSecrets(), ko)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	proxies, err := cfg.TrustedProxyPrefixes()
	if err != nil {
		return nil, fmt.Errorf("LATCHKEY_TRUSTED_PROXIES: %w", err)
	}
	lc := login.Config{
		AuthorizePath:  oauth.PathAuthorize,
		Issuer:         cfg.Issuer,
		DevicePath:     oauth.PathDevice,
		Secure:         cfg.SecureCookies(),
		SessionIdleTTL: cfg.SessionIdleTTL,
		SessionTTL:     cfg.SessionTTL,
		RevokeFor:      cfg.RevocationWindow(),
		SystemSecrets:  cfg.SystemSecrets(),
		Throttle:       ThrottlePolicy(cfg),
		Passwords:      login.DefaultPasswordLimits(),
		TrustedProxies: proxies,
		Theme: login.Theme{Dir: cfg.ThemeDir, ProductName: cfg.ProductName, LogoURL: cfg.LogoURL,
			PrimaryColor: cfg.PrimaryColor},
		Now:     o.now,
		Metrics: m,
	}
	for _, f := range o.login {
		f(&lc)
	}
	// The login pages and the password grant share one Authenticator: one
	// throttle, one set of argon2id slots.
	pages, err := login.New(st, lc, log)
	if err != nil {
		return nil, err
	}
	provider, err := oauth.New(cfg, st, km, pages, m, log, o.now)
	if err != nil {
		return nil, err
	}
	hasher, err := secrets.NewClientSecretHasher(cfg.SystemSecrets())
	if err != nil {
		return nil, err
	}
	adminService := admin.NewService(st, hasher, admin.Policy{RevokeFor: cfg.RevocationWindow(), Now: o.now})
	bo := backchannel.Options{Issuer: cfg.Issuer, Outcomes: m.BackchannelLogouts, Now: o.now, Logger: log}
	for _, f := range o.backchannel {
		f(&bo)
	}
	// Every instance delivers: the outbox's lease keeps two from sending
	// one row at once.
	deliverer := backchannel.New(st, km, bo)
	account, err := newAccount(cfg, st, pages, deliverer, o.account)
	if err != nil {
		return nil, err
	}
	if err := registerStateMetrics(m, cfg, st, km, o, log); err != nil {
		return nil, err
	}
	jan := janitor.New(st, Retention(cfg), log)
	jan.Metrics, jan.Now = m, o.now
	background := o.background
	if background == nil {
		background = []func(context.Context){km.Run, jan.Run, deliverer.Run}
	}
	return &Server{
		endSession:  provider.EndSession(pages, deliverer),
		account:     account,
		backchannel: deliverer,
		janitor:     jan,
		background:  background,
		cfg:         cfg,
		store:       st,
		provider:    provider,
		pages:       pages,
		keys:        km,
		admin:       admin.NewAPI(adminService, km, cfg.AdminToken, log),
		metrics:     m,
		log:         log,
		tracer:      o.tracer,
	}, nil
}

// PublicHandler serves the OAuth 2.0 endpoints.
func (s *Server) PublicHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+oauth.PathMetadata, s.provider.ServeMetadata)
	mux.HandleFunc("GET "+oauth.PathOpenIDConfiguration, s.provider.ServeMetadata)
	mux.HandleFunc("GET "+oauth.PathJWKS, s.provider.ServeJWKS)
	mux.HandleFunc("GET "+oauth.PathAuthorize, s.provider.Authorize)
	mux.HandleFunc("POST "+oauth.PathAuthorize, s.provider.Authorize)
	mux.HandleFunc("GET "+oauth.PathUserinfo, s.provider.Userinfo)
	mux.HandleFunc("POST "+oauth.PathUserinfo, s.provider.Userinfo)
	s.pages.Register(mux)
	s.account.Register(mux)
	mux.HandleFunc("GET "+oauth.PathEndSession, s.endSession.Serve)
	mux.HandleFunc("POST "+oauth.PathEndSession, s.endSession.Serve)
	mux.HandleFunc("POST /logout", s.endSession.LogoutForm)
	mux.HandleFunc("POST "+oauth.PathToken, s.provider.Token)
	mux.HandleFunc("POST "+oauth.PathPAR, s.provider.PushedAuthorize)
	mux.HandleFunc("POST "+oauth.PathDeviceAuthorization, s.provider.DeviceAuthorization)
	mux.HandleFunc("GET "+oauth.PathDevice, s.provider.Device)
	mux.HandleFunc("POST "+oauth.PathDevice, s.provider.Device)
	mux.HandleFunc("POST "+oauth.PathRevoke, s.provider.Revoke)
	mux.HandleFunc("POST "+oauth.PathIntrospect, s.provider.Introspect)
	s.health(mux)
	return s.traced(s.middleware(s.cors(notFoundPage(mux, s.pages.NotFound))))
}

// AdminHandler serves the admin API and /metrics.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	s.admin.Register(mux)
	// The admin token guards these too: the admin listener may be reachable
	// by every container on its network, and a CPU profile or trace on
	// demand is a way to slow the server down.
	mux.Handle("GET /metrics", s.admin.Guard(promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{})))
	if s.cfg.Pprof {
		// Off by default: profiles show internals.
		mux.Handle("GET /debug/pprof/", s.admin.Guard(http.HandlerFunc(pprof.Index)))
		mux.Handle("GET /debug/pprof/profile", s.admin.Guard(http.HandlerFunc(pprof.Profile)))
		mux.Handle("GET /debug/pprof/trace", s.admin.Guard(http.HandlerFunc(pprof.Trace)))
		mux.Handle("GET /debug/pprof/symbol", s.admin.Guard(http.HandlerFunc(pprof.Symbol)))
	}
	s.health(mux)
	return s.traced(s.middleware(mux))
}

func (s *Server) health(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.store.Ready(ctx); err != nil {
			s.log.WarnContext(ctx, "readiness check failed", "error", err)
			w.Header().Set("Retry-After", "5")
			writeStatus(w, http.StatusServiceUnavailable, "database unavailable")
			return
		}
		writeStatus(w, http.StatusOK, "ok")
	})
}

func writeStatus(w http.ResponseWriter, code int, status string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintf(w, "{\"status\":%q}\n", status)
}

// KeyOptions are the signing-key settings of the configuration.
func KeyOptions(cfg *config.Config, log *slog.Logger) keys.Options {
	return keys.Options{
		Alg:              cfg.SigningAlg,
		RotationPeriod:   cfg.KeyRotationPeriod,
		PrepublishPeriod: cfg.KeyPrepublishPeriod,
		TokenTTL:         cfg.AccessTokenTTL,
		Logger:           log,
	}
}

// ThrottlePolicy is the sign-in throttle of the configuration. The delay
// that grows with each failure keeps login's defaults.
func ThrottlePolicy(cfg *config.Config) login.ThrottlePolicy {
	p := login.DefaultThrottlePolicy
	p.Window = cfg.LoginFailureWindow
	p.UserLimit, p.IPLimit = cfg.LoginUserLimit, cfg.LoginIPLimit
	p.Lockout, p.MaxLockout = cfg.LoginLockout, cfg.LoginMaxLockout
	return p
}

// Retention is how long the janitor keeps expired rows, from the
// configuration.
func Retention(cfg *config.Config) store.Retention {
	return store.Retention{
		AccessTokenTTL:   cfg.AccessTokenTTL,
		RevocationWindow: cfg.RevocationWindow(),
		SessionIdleTTL:   cfg.SessionIdleTTL,
		FailureWindow:    cfg.LoginFailureWindow,
		SecurityEvents:   cfg.AuditRetention,
		GrantLifetime:    cfg.AuthCodeTTL + cfg.RefreshTokenMaxLifetime + cfg.AccessTokenTTL,
	}
}

// newHTTPServer sets the timeouts that keep slow or stalled clients from
// holding connections forever.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Run serves both listeners until ctx is done, then shuts down gracefully:
// listeners close at once and in-flight requests get ShutdownTimeout to
// finish. ready, if not nil, is called with the bound addresses. Run returns
// only after the background tasks have stopped, so the caller may close the
// store at once: a janitor batch or a key rotation never meets a closed pool.
func (s *Server) Run(ctx context.Context, ready func(public, admin net.Addr)) error {
	publicLn, err := net.Listen("tcp", s.cfg.PublicAddr)
	if err != nil {
		return fmt.Errorf("listen on LATCHKEY_PUBLIC_ADDR %s: %w", s.cfg.PublicAddr, err)
	}
	adminLn, err := net.Listen("tcp", s.cfg.AdminAddr)
	if err != nil {
		_ = publicLn.Close()
		return fmt.Errorf("listen on LATCHKEY_ADMIN_ADDR %s: %w", s.cfg.AdminAddr, err)
	}
	servers := []*http.Server{newHTTPServer(s.PublicHandler(), s.log), newHTTPServer(s.AdminHandler(), s.log)}
	listeners := []net.Listener{publicLn, adminLn}
	bgCtx, stopBackground := context.WithCancel(ctx)
	var background sync.WaitGroup
	for _, task := range s.background {
		background.Go(func() { task(bgCtx) })
	}
	// Deferred first, so it runs last: the listeners have shut down (no
	// request still needs the keys) before the background tasks stop, and
	// Run does not return while one is still using the store.
	defer background.Wait()
	defer stopBackground()
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.Serve(listeners[i]) }()
	}
	s.log.Info("latchkey serving", "public_addr", publicLn.Addr().String(), "admin_addr", adminLn.Addr().String(),
		"issuer", s.cfg.Issuer, "database", s.store.Dialect())
	if ready != nil {
		ready(publicLn.Addr(), adminLn.Addr())
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.log.Info("shutting down", "timeout", ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("shutdown: %w", err))
		}
	}
	if errors.Is(runErr, http.ErrServerClosed) {
		runErr = nil
	}
	return runErr
}

// notFoundPage answers what mux has no route for with the pages' 404, in
// the browser's language. A catch-all "/" route would do that too, but it
// would also take the requests with a known path and a wrong method, which
// must stay 405 with Allow.
func notFoundPage(mux *http.ServeMux, notFound http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		nf := &notFoundWriter{ResponseWriter: w}
		mux.ServeHTTP(nf, r)
		if nf.notFound {
			notFound(w, r)
		}
	})
}

// notFoundWriter passes a response through unless it is a 404, which it
// swallows and records.
type notFoundWriter struct {
	http.ResponseWriter
	notFound, wrote bool
}

func (w *notFoundWriter) WriteHeader(code int) {
	if !w.wrote && code == http.StatusNotFound {
		w.notFound = true
	}
	w.wrote = true
	if !w.notFound {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *notFoundWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.notFound {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}
