package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/latchkey/latchkey/internal/actor"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/metrics"
	"github.com/latchkey/latchkey/internal/requestid"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/tracing"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// WithBuildInfo names the running binary in latchkey_build_info; without
// it the version is "dev" and the commit "unknown".
func WithBuildInfo(version, commit string) Option {
	return func(o *options) { o.version, o.commit = version, commit }
}

// WithTracerProvider turns traces on: each request gets a span named by its
// route pattern, joined to the caller's trace when it sent a W3C
// traceparent. The store must be opened with Options.Traced for the SQL
// spans. Without it (or with nil) nothing is wrapped.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracer = tp }
}

// traced wraps a listener's handler in its HTTP span when traces are on.
// The span is named by the method until observe, which sees the route
// pattern once the mux has matched, renames it.
func (s *Server) traced(h http.Handler) http.Handler {
	if s.tracer == nil {
		return h
	}
	return otelhttp.NewHandler(h, "http",
		otelhttp.WithTracerProvider(s.tracer),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method }))
}

// nameSpan gives the request's span its route pattern and request id.
func nameSpan(ctx context.Context, route, requestID string) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetName(route)
	span.SetAttributes(attribute.String("http.route", route), tracing.RequestIDKey.String(requestID))
}

// serverLogger is log with the request's fields: every line logged while
// serving a request carries its request_id, the client_id and, on the
// admin listener, the actor once known. actor's wrapper is outermost so
// that the admin API's own actor.Logger finds it and adds nothing twice.
func serverLogger(log *slog.Logger) *slog.Logger {
	return actor.Logger(requestid.Logger(log))
}

// activeSessionsLimit bounds the count behind latchkey_active_login_sessions:
// past it the gauge reads the limit, and a scrape never scans more rows.
const activeSessionsLimit = 1_000_000

// activeSessionsMaxAge is how long one count serves scrapes: several
// Prometheus servers scraping every few seconds cost one query per period.
const activeSessionsMaxAge = 15 * time.Second

// registerStateMetrics adds the gauges read at scrape time (login sessions,
// the signing key's schedule), the connection pool's statistics and the
// build.
func registerStateMetrics(m *metrics.Metrics, cfg *config.Config, st *store.Store, km *keys.Manager, o options, log *slog.Logger) error {
	version, commit := o.version, o.commit
	if version == "" {
		version = "dev"
	}
	if commit == "" {
		commit = "unknown"
	}
	m.SetBuild(metrics.Build{Version: version, Commit: commit, GoVersion: runtime.Version()})
	sqlDB, err := st.SQLDB()
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	sessions := &cachedCount{now: o.now, maxAge: activeSessionsMaxAge, log: log, count: func(ctx context.Context) (int64, error) {
		return st.CountActiveLoginSessions(ctx, o.now().Add(-cfg.SessionIdleTTL), activeSessionsLimit)
	}}
	schedule := func(f func(age time.Duration, next time.Time) float64) func() float64 {
		return func() float64 {
			age, next, err := km.Schedule()
			if err != nil {
				return 0
			}
			return f(age, next)
		}
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "latchkey_active_login_sessions",
			Help: "Login sessions neither expired nor idle (counted at most every 15 s, capped at 1,000,000).",
		}, sessions.value),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "latchkey_signing_key_age_seconds",
			Help: "How long the key that signs now has been signing.",
		}, schedule(func(age time.Duration, _ time.Time) float64 { return age.Seconds() })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "latchkey_signing_key_next_rotation_timestamp_seconds",
			Help: "When the next signing key is due to take over (Unix time).",
		}, schedule(func(_ time.Duration, next time.Time) float64 { return float64(next.Unix()) })),
		// go_sql_* with db_name: pool saturation (wait_count, in_use
		// against max_open_connections).
		collectors.NewDBStatsCollector(sqlDB, st.Dialect()),
	} {
		if err := m.Registry.Register(c); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	return nil
}

// cachedCount is a count from the database that scrapes share for maxAge.
// A failed count keeps the last value and is logged: a scrape must not
// fail, and a gap would hide the trend.
type cachedCount struct {
	now    func() time.Time
	maxAge time.Duration
	count  func(context.Context) (int64, error)
	log    *slog.Logger

	mu   sync.Mutex
	at   time.Time
	last float64
}

func (c *cachedCount) value() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if !c.at.IsZero() && now.Sub(c.at) < c.maxAge {
		return c.last
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := c.count(ctx)
	if err != nil {
		c.log.Warn("metrics: counting active login sessions failed", "error", err)
		return c.last
	}
	c.at, c.last = now, float64(n)
	return c.last
}
