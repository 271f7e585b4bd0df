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
	// SignIns counts password checks by result: success, bad_password,
	// unknown_user, locked, busy, error; and mfa_required, a success
	// (counted there too) that now waits for its second factor.
	SignIns *prometheus.CounterVec
	// Lockouts counts lockouts begun, by throttle (password, mfa) and
	// counter (user, ip).
	Lockouts *prometheus.CounterVec
	// MFAVerifications counts second-factor checks, by kind (totp,
	// recovery, passkey) and result (success, failure, locked, error).
	MFAVerifications *prometheus.CounterVec
	// JanitorPasses counts janitor passes by result: ok, error, or
	// skipped (another instance held the lease).
	JanitorPasses *prometheus.CounterVec
	// JanitorDeleted counts rows the janitor deleted, by table.
	JanitorDeleted *prometheus.CounterVec
	// JanitorLastPass is when this instance last finished a pass that
	// held the lease, without error (Unix seconds).
	JanitorLastPass prometheus.Gauge
}

// SignIn counts one password check; m may be nil (counts nothing).
func (m *Metrics) SignIn(result string) {
	if m != nil {
		m.SignIns.WithLabelValues(result).Inc()
	}
}

// Lockout counts a lockout begun; m may be nil.
func (m *Metrics) Lockout(throttle, counter string) {
	if m != nil {
		m.Lockouts.WithLabelValues(throttle, counter).Inc()
	}
}

// MFAVerification counts one second-factor check; m may be nil.
func (m *Metrics) MFAVerification(kind, result string) {
	if m != nil {
		m.MFAVerifications.WithLabelValues(kind, result).Inc()
	}
}

// Build names the running binary for latchkey_build_info.
type Build struct {
	Version, Commit, GoVersion string
}

// SetBuild registers latchkey_build_info, 1 with the build as labels, so
// that a dashboard shows which version each instance runs.
func (m *Metrics) SetBuild(b Build) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "latchkey_build_info", Help: "Version, commit and Go version of the running binary (always 1).",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "goversion": b.GoVersion},
	})
	g.Set(1)
	m.Registry.MustRegister(g)
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
		SignIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_sign_ins_total", Help: "Password checks (login page, password grant, account page) by result.",
		}, []string{"result"}),
		Lockouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_lockouts_total", Help: "Lockouts begun, by throttle (password, mfa) and counter (user, ip).",
		}, []string{"throttle", "counter"}),
		MFAVerifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_mfa_verifications_total", Help: "Second-factor codes checked, by kind and result.",
		}, []string{"kind", "result"}),
		JanitorPasses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_janitor_passes_total", Help: "Janitor passes by result (ok, error, skipped: another instance held the lease).",
		}, []string{"result"}),
		JanitorDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_janitor_deleted_rows_total", Help: "Expired rows the janitor deleted, by table.",
		}, []string{"table"}),
		JanitorLastPass: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "latchkey_janitor_last_success_timestamp_seconds", Help: "When this instance last finished a janitor pass without error (Unix time).",
		}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.HTTPRequests, m.HTTPDuration, m.TokenRequests, m.TokenDuration, m.TokensIssued, m.OAuthErrors, m.RefreshReuse,
		m.BackchannelLogouts, m.SignIns, m.Lockouts, m.MFAVerifications, m.JanitorPasses, m.JanitorDeleted,
		m.JanitorLastPass,
	)
	// The known label values start at 0, so that each series exists from
	// the first scrape: rate() and the alerts see the first increase, and
	// a dashboard shows 0 rather than "no data".
	for _, r := range []string{"success", "bad_password", "unknown_user", "locked", "mfa_required", "busy", "error"} {
		m.SignIns.WithLabelValues(r)
	}
	for _, th := range []string{"password", "mfa"} {
		for _, c := range []string{"user", "ip"} {
			m.Lockouts.WithLabelValues(th, c)
		}
	}
	for _, k := range []string{"totp", "recovery", "passkey"} {
		for _, r := range []string{"success", "failure", "locked", "error"} {
			m.MFAVerifications.WithLabelValues(k, r)
		}
	}
	for _, r := range []string{"ok", "error", "skipped"} {
		m.JanitorPasses.WithLabelValues(r)
	}
	for _, o := range []string{"delivered", "retry", "gave_up", "dropped"} {
		m.BackchannelLogouts.WithLabelValues(o)
	}
	return m
}
