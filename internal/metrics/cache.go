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
