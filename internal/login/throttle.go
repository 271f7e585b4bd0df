package login

import (
	"context"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
)

// ThrottlePolicy sets how failed sign-ins are slowed down and locked out.
// Counters are per username and per client IP, kept in the database so that
// they hold across instances, and counted for unknown usernames too, so a
// lockout says nothing about whether an account exists.
type ThrottlePolicy struct {
	// Window is how long failures are remembered.
	Window time.Duration
	// UserLimit and IPLimit are the failures after which the username or
	// IP is locked out.
	UserLimit, IPLimit int
	// Lockout is the first lockout; each further failure doubles it, up to
	// MaxLockout.
	Lockout, MaxLockout time.Duration
	// DelayStep is added to the answer of every failure per failure so far,
	// up to MaxDelay: guessing gets slower before it gets locked.
	DelayStep, MaxDelay time.Duration
}

// DefaultThrottlePolicy: 5 failures per username or 20 per IP in 15
// minutes lock for 1 minute, doubling to at most 15; each failure answers
// 200 ms later per failure so far, at most 2 s.
var DefaultThrottlePolicy = ThrottlePolicy{
	Window: 15 * time.Minute, UserLimit: 5, IPLimit: 20,
	Lockout: time.Minute, MaxLockout: 15 * time.Minute,
	DelayStep: 200 * time.Millisecond, MaxDelay: 2 * time.Second,
}

// Throttle applies a ThrottlePolicy.
type Throttle struct {
	store  *store.Store
	policy ThrottlePolicy
	// Sleep is time.Sleep unless a test replaces it.
	Sleep func(context.Context, time.Duration)
}

// NewThrottle returns a throttle for the password grant and the login page.
func NewThrottle(st *store.Store, p ThrottlePolicy) *Throttle {
	return &Throttle{store: st, policy: p}
}

// userKey names a username's counter by a digest: any bytes a client sends
// make a valid key, and the table holds no usernames.
func userKey(username string) string {
	return "user:" + secrets.SignatureKey(strings.ToLower(username))
}
func ipKey(ip string) string { return "ip:" + ip }

// Locked reports whether the username or the IP is locked out now.
func (t *Throttle) Locked(ctx context.Context, username, ip string) (bool, error) {
	recs, err := t.store.LoginFailures(ctx, t.policy.Window, userKey(username), ipKey(ip))
	if err != nil {
		return false, err
	}
	now := time.Now()
	for _, r := range recs {
		if r.LockedUntil != nil && r.LockedUntil.After(now) {
			return true, nil
		}
	}
	return false, nil
}

func (t *Throttle) lockout(limit int) func(int) time.Duration {
	return func(failures int) time.Duration {
		if failures < limit {
			return 0
		}
		d := t.policy.Lockout
		for i := limit; i < failures && d < t.policy.MaxLockout; i++ {
			d *= 2
		}
		return min(d, t.policy.MaxLockout)
	}
}

// Failed counts a failure against the username and the IP, then waits the
// growing delay before the caller answers.
func (t *Throttle) Failed(ctx context.Context, username, ip string) error {
	u, err := t.store.RecordLoginFailure(ctx, userKey(username), t.policy.Window, t.lockout(t.policy.UserLimit))
	if err != nil {
		return err
	}
	if _, err := t.store.RecordLoginFailure(ctx, ipKey(ip), t.policy.Window, t.lockout(t.policy.IPLimit)); err != nil {
		return err
	}
	delay := min(time.Duration(u.Failures)*t.policy.DelayStep, t.policy.MaxDelay)
	sleep := t.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	sleep(ctx, delay)
	return nil
}

// Succeeded forgets the username's failures. The IP's stay: one good
// password must not reset a spray across many accounts.
func (t *Throttle) Succeeded(ctx context.Context, username string) error {
	return t.store.ClearLoginFailures(ctx, userKey(username))
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
}
