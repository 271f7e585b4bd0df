// Package metrics defines Latchkey's Prometheus metrics. One Metrics value
// is made at start-up and passed to whoever records; nothing registers with
// the global Prometheus registry.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every collector and the registry that exposes them.
type Metrics struct {
	Registry *prometheus.Registry

	// HTTPRequests counts requests by route pattern and status code.
	HTTPRequests *prometheus.CounterVec
	// HTTPDuration observes request latency by route pattern.
	HTTPDuration *prometheus.HistogramVec
	// TokenRequests counts token endpoint requests by grant type and outcome
	// ("ok" or the RFC 6749 error code).
	TokenRequests *prometheus.CounterVec
	// TokenDuration observes token endpoint latency by grant type.
	TokenDuration *prometheus.HistogramVec
	// TokensIssued counts issued tokens by grant and token type.
	TokensIssued *prometheus.CounterVec
	// OAuthErrors counts protocol errors by endpoint and RFC error code.
	OAuthErrors *prometheus.CounterVec
	// RefreshReuse counts rotated refresh tokens presented after the grace
	// period: each one revoked a grant and may be a stolen token.
	RefreshReuse prometheus.Counter
	// BackchannelLogouts counts back-channel logout token deliveries by
	// outcome: delivered, retry (the RP failed; tried again later),
	// gave_up (retries exhausted), dropped (the client is gone).
	BackchannelLogouts *prometheus.CounterVec
}

// New makes the collectors and registers them, with the Go runtime and
// process collectors, on a fresh registry.
func New() *Metrics {
	buckets := []float64{.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "latchkey_http_request_duration_seconds", Help: "HTTP request latency by route.", Buckets: buckets,
		}, []string{"route"}),
		TokenRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_token_requests_total", Help: "Token endpoint requests by grant type and outcome.",
		}, []string{"grant_type", "outcome"}),
		TokenDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "latchkey_token_request_duration_seconds", Help: "Token endpoint latency by grant type.", Buckets: buckets,
		}, []string{"grant_type"}),
		TokensIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_tokens_issued_total", Help: "Tokens issued by grant type and token type.",
		}, []string{"grant_type", "token_type"}),
		OAuthErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_oauth_errors_total", Help: "OAuth protocol errors by endpoint and RFC error code.",
		}, []string{"endpoint", "error"}),
		RefreshReuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "latchkey_refresh_token_reuse_total", Help: "Rotated refresh tokens presented again after the grace period (grant revoked).",
		}),
		BackchannelLogouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_backchannel_logout_deliveries_total", Help: "Back-channel logout token deliveries by outcome.",
		}, []string{"outcome"}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.HTTPRequests, m.HTTPDuration, m.TokenRequests, m.TokenDuration, m.TokensIssued, m.OAuthErrors, m.RefreshReuse,
		m.BackchannelLogouts,
	)
	return m
}
