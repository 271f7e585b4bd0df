package store

import (
	"testing"
	"time"
)

// The janitor's cutoffs read the configured revocation window; a Retention
// without one keeps the same rule (the access token lifetime and a minute).
func TestRetentionRevocationWindow(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Retention
		want time.Duration
	}{
		{"configured", Retention{AccessTokenTTL: 15 * time.Minute, RevocationWindow: 20 * time.Minute}, 20 * time.Minute},
		{"unset: access token lifetime and a minute", Retention{AccessTokenTTL: 15 * time.Minute}, 16 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.revocationWindow(); got != tc.want {
				t.Errorf("revocationWindow() = %v, want %v", got, tc.want)
			}
		})
	}
}
