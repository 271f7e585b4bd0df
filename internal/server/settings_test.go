package server_test

import (
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/server"
)

// The throttle and audit retention come from the configuration. Their
// defaults there are the ones login and the janitor had built in (config
// cannot import login, which sits on the store), so this test is what keeps
// the two declarations equal.
func TestSettingsReachThrottleAndRetention(t *testing.T) {
	def := config.Default()
	if got := server.ThrottlePolicy(def); got != login.DefaultThrottlePolicy {
		t.Errorf("default throttle %+v, want login.DefaultThrottlePolicy %+v", got, login.DefaultThrottlePolicy)
	}
	if got := server.Retention(def); got.SecurityEvents != 365*24*time.Hour || got.FailureWindow != login.DefaultThrottlePolicy.Window {
		t.Errorf("default retention %+v: want 365 days of audit and security events and the throttle's window", got)
	}

	c := config.Default()
	c.LoginFailureWindow, c.LoginUserLimit, c.LoginIPLimit = time.Hour, 3, 7
	c.LoginLockout, c.LoginMaxLockout, c.AuditRetention = 2*time.Minute, time.Hour, 30*24*time.Hour
	p := server.ThrottlePolicy(c)
	want := login.DefaultThrottlePolicy
	want.Window, want.UserLimit, want.IPLimit, want.Lockout, want.MaxLockout = time.Hour, 3, 7, 2*time.Minute, time.Hour
	if p != want {
		t.Errorf("throttle %+v, want %+v", p, want)
	}
	if r := server.Retention(c); r.SecurityEvents != 30*24*time.Hour || r.FailureWindow != time.Hour {
		t.Errorf("retention %+v", r)
	}
}
