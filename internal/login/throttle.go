package login

import (
	"context"
	"errors"
	"fmt"
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
	store  AttemptStore
	policy ThrottlePolicy
	// Sleep is time.Sleep unless a test replaces it.
	Sleep func(context.Context, time.Duration)
	// OnLockout, when set, hears of each lockout a failure begins, with
	// the counter locked: "user" or "ip" (the metrics).
	OnLockout func(counter string)
}

// NewThrottle returns a throttle for the password grant and the login page.
func NewThrottle(st AttemptStore, p ThrottlePolicy) *Throttle {
	return &Throttle{store: st, policy: p}
}

// userCounter names a username's counter by a digest: any bytes a client
// sends make a valid key, and the table holds no usernames.
func userCounter(username string) string {
	return "user:" + secrets.SignatureKey(strings.ToLower(username))
}

// ipCounter names a client IP's counter.
func ipCounter(ip string) string { return "ip:" + ip }

func (t *Throttle) lockout(limit int) func(int) time.Duration {
	return func(attempts int) time.Duration {
		if attempts < limit {
			return 0
		}
		d := t.policy.Lockout
		for i := limit; i < attempts && d < t.policy.MaxLockout; i++ {
			d *= 2
		}
		return min(d, t.policy.MaxLockout)
	}
}

// Attempt is one sign-in counted by Reserve. Exactly one of Failed,
// Succeeded or Cancel ends it.
type Attempt struct {
	t            *Throttle
	username, ip string
	// userAttempts is the username's count, this attempt included;
	// ipAttempts the IP's.
	userAttempts, ipAttempts int
}

// Reserve counts an attempt against the username and the IP before the
// password is checked ("reserve, then verify"): checking first and counting
// after lets every one of a burst of parallel guesses pass the check before
// any is counted. Past a limit it refuses with store.ErrLocked and counts
// nothing. Unknown usernames are counted like known ones.
func (t *Throttle) Reserve(ctx context.Context, username, ip string) (*Attempt, error) {
	counts, err := t.store.ReserveLoginAttempt(ctx, t.policy.Window,
		// The username first: every caller locks rows in the same order.
		store.AttemptKey{Key: userCounter(username), Lock: t.lockout(t.policy.UserLimit)},
		store.AttemptKey{Key: ipCounter(ip), Lock: t.lockout(t.policy.IPLimit)})
	if err != nil {
		return nil, fmt.Errorf("throttle: %w", err)
	}
	return &Attempt{t: t, username: username, ip: ip, userAttempts: counts[0], ipAttempts: counts[1]}, nil
}

// Failed ends an attempt whose password was wrong (or whose user does not
// exist): it stays counted, and the caller answers after a delay that grows
// with the username's failures.
func (a *Attempt) Failed(ctx context.Context) {
	// A failure that reached a limit locks its counter (the lock was
	// written with the reservation; a success would have cleared it).
	if a.t.OnLockout != nil {
		if a.userAttempts >= a.t.policy.UserLimit {
			a.t.OnLockout("user")
		}
		if a.ipAttempts >= a.t.policy.IPLimit {
			a.t.OnLockout("ip")
		}
	}
	delay := min(time.Duration(a.userAttempts)*a.t.policy.DelayStep, a.t.policy.MaxDelay)
	sleep := a.t.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	sleep(ctx, delay)
}

// Succeeded ends an attempt with the right password: the username's
// failures are forgotten and this attempt is taken back from the IP. The
// IP's earlier failures stay: one good password must not reset a spray
// across many accounts.
func (a *Attempt) Succeeded(ctx context.Context) error {
	// The sign-in has happened; the bookkeeping must not be lost to a
	// client that hangs up now.
	ctx = context.WithoutCancel(ctx)
	if err := a.t.store.ClearLoginFailures(ctx, userCounter(a.username)); err != nil {
		return err
	}
	return a.t.store.ReleaseLoginAttempt(ctx, ipCounter(a.ip), a.t.policy.IPLimit)
}

// Cancel ends an attempt whose password was never checked (the server was
// busy, or the database failed): it is taken back from both counters, so
// a refusal for load never counts as a guess.
func (a *Attempt) Cancel(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	return errors.Join(
		a.t.store.ReleaseLoginAttempt(ctx, userCounter(a.username), a.t.policy.UserLimit),
		a.t.store.ReleaseLoginAttempt(ctx, ipCounter(a.ip), a.t.policy.IPLimit))
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
