package metrics

import "github.com/prometheus/client_golang/prometheus"

// WatchClientCache exports how the client cache learns of changes made at
// other instances (store.CacheMode) as latchkey_client_cache_mode{mode}: 1
// for the current mode, 0 for the others. "polled" through a pooler means
// LATCHKEY_DATABASE_LISTEN_URL is missing; "off" for long means the
// invalidation channel is down (docs/operations.md).
func (m *Metrics) WatchClientCache(mode func() string, modes ...string) {
	for _, name := range modes {
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "latchkey_client_cache_mode",
			Help:        "How the client cache hears of changes: 1 for the current mode (pushed, polled, expiring or off).",
			ConstLabels: prometheus.Labels{"mode": name},
		}, func() float64 {
			if mode() == name {
				return 1
			}
			return 0
		}))
	}
}

// WatchDenyList exports whether revocation checks are answered from the
// in-memory deny-list (store.RevocationsInMemory) as
// latchkey_revocations_in_memory: 1 while "not revoked" costs no query, 0
// while every check asks the database (SQLite, a pooler without a listen
// URL, a listener not proven alive, a load in progress).
func (m *Metrics) WatchDenyList(inMemory func() bool) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "latchkey_revocations_in_memory",
		Help: "1 while revocation checks answer \"not revoked\" from the in-memory deny-list, 0 while each asks the database.",
	}, func() float64 {
		if inMemory() {
			return 1
		}
		return 0
	}))
}
