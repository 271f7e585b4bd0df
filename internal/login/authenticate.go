package login

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/latchkey/latchkey/internal/metrics"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
)

// ErrBusy means a password check was not run because too many are running
// or waiting, overall or from this client's IP. Callers answer 503 with
// Retry-After; nothing was counted against the username.
var ErrBusy = errors.New("too many sign-ins in progress")

// BusyRetryAfter is the Retry-After, in seconds, of an ErrBusy answer: a
// password check takes tens of milliseconds, so a slot is free by then
// unless the server is under attack, and then the answer is the same.
const BusyRetryAfter = "1"

// PasswordLimits bound the argon2id work that sign-ins can cause. Each
// check costs 19 MiB and tens of milliseconds of a core, so an unbounded
// queue turns a burst of sign-ins (with random usernames: every one costs a
// check) into minutes of waiting for everyone else.
type PasswordLimits struct {
	// Concurrent is how many checks run at once. More than one per core
	// would not finish any sooner.
	Concurrent int
	// RunningPerIP is how many of those one client IP may hold.
	RunningPerIP int
	// InFlightPerIP is how many checks one client IP may have running or
	// waiting; more are answered ErrBusy at once.
	InFlightPerIP int
	// MaxWait is how long a check waits for a free slot before the sign-in
	// is answered ErrBusy.
	MaxWait time.Duration
}

// DefaultPasswordLimits: one check per core (at least two). One IP may run
// at most half of them, so a flood from one address always leaves the other
// half to everyone else, and may queue 8: an office behind one NAT address
// queues briefly, a script gets 503 at once. A check waits at most two
// seconds, so under a flood from many addresses a person gets "try again"
// quickly instead of a page that hangs for as long as the queue is long.
func DefaultPasswordLimits() PasswordLimits {
	n := max(2, runtime.GOMAXPROCS(0))
	return PasswordLimits{Concurrent: n, RunningPerIP: n / 2, InFlightPerIP: 8, MaxWait: 2 * time.Second}
}

// ipChecks is one client IP's share of the checks.
type ipChecks struct {
	inFlight int
	running  chan struct{}
}

// Authenticator checks a username and password for the login page and the
// password grant alike: it reserves the attempt with the throttle, bounds
// the argon2id work, verifies, and records the outcome.
type Authenticator struct {
	store    UserStore
	throttle *Throttle
	limits   PasswordLimits
	slots    chan struct{}
	verify   func(hash, password string) (bool, error)
	// dummyHash is made on first use: argon2id costs tens of milliseconds
	// and most processes (the CLI) never authenticate anyone.
	dummyHash func() (string, error)

	mu   sync.Mutex
	byIP map[string]*ipChecks

	// Metrics counts each check's result; nil counts nothing.
	Metrics *metrics.Metrics
}

// NewAuthenticator returns an authenticator. verify is
// secrets.VerifyPassword unless nil is replaced by a test's hook.
func NewAuthenticator(st UserStore, throttle *Throttle, limits PasswordLimits, verify func(hash, password string) (bool, error)) *Authenticator {
	if verify == nil {
		verify = secrets.VerifyPassword
	}
	def := DefaultPasswordLimits()
	if limits.Concurrent <= 0 {
		limits.Concurrent = def.Concurrent
	}
	if limits.RunningPerIP <= 0 {
		limits.RunningPerIP = max(1, limits.Concurrent/2)
	}
	if limits.InFlightPerIP <= 0 {
		limits.InFlightPerIP = def.InFlightPerIP
	}
	if limits.MaxWait <= 0 {
		limits.MaxWait = def.MaxWait
	}
	return &Authenticator{
		store: st, throttle: throttle, limits: limits, verify: verify,
		slots: make(chan struct{}, limits.Concurrent),
		byIP:  map[string]*ipChecks{},
		dummyHash: sync.OnceValues(func() (string, error) {
			return secrets.HashPassword("latchkey-no-such-user", secrets.DefaultArgon2Params)
		}),
	}
}

// Authenticate returns the user's ID, or an error that is
// store.ErrNotFound for an unknown user and a wrong password alike,
// store.ErrLocked when the account or IP is locked out, ErrBusy when the
// check could not run for load, or another error. name is a username or an
// email (findAccount).
func (a *Authenticator) Authenticate(ctx context.Context, name, password, ip string) (string, error) {
	u, err := a.AuthenticateUser(ctx, name, password, ip)
	if err != nil {
		return "", err
	}
	return u.ID, nil
}

// AuthenticateUser is Authenticate returning the user: the password grant
// records the username, which the person may not have typed.
func (a *Authenticator) AuthenticateUser(ctx context.Context, name, password, ip string) (*store.User, error) {
	u, result, err := a.authenticate(ctx, name, password, ip)
	a.Metrics.SignIn(result)
	return u, err
}

// authenticate is AuthenticateUser, also saying which result it counts.
func (a *Authenticator) authenticate(ctx context.Context, name, password, ip string) (*store.User, string, error) {
	failed := func(err error) (*store.User, string, error) {
		switch {
		case errors.Is(err, ErrBusy):
			return nil, "busy", err
		case errors.Is(err, store.ErrLocked):
			return nil, "locked", err
		}
		return nil, "error", err
	}
	att, share, u, hash, err := a.reserve(ctx, name, ip)
	if err != nil {
		return failed(err)
	}
	ok, err := a.check(ctx, ip, share, hash, password)
	if err != nil {
		if cerr := att.Cancel(ctx); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return failed(err)
	}
	if u == nil || !ok {
		att.Failed(ctx)
		result := "bad_password"
		if u == nil {
			result = "unknown_user"
		}
		return nil, result, fmt.Errorf("authenticate: %w", store.ErrNotFound)
	}
	if err := att.Succeeded(ctx); err != nil {
		return failed(err)
	}
	return u, "success", nil
}

// findAccount resolves what the person typed: a username, else an email
// that exactly one user has. Email is not unique (nothing in the schema or
// the admin API makes it so), and an address several users share names no
// one: it signs in nobody, as an unknown name does. Whether the address is
// verified does not matter: only an operator sets it, and the password is
// what proves who signs in. A username wins over another user's email of
// the same spelling (usernames may contain "@"). nil, nil is nobody.
func (a *Authenticator) findAccount(ctx context.Context, name string) (*store.User, error) {
	u, err := a.store.FindUserByName(ctx, name)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return u, err
	}
	if !strings.Contains(name, "@") {
		return nil, nil
	}
	us, err := a.store.FindUsersByEmail(ctx, name, 2)
	if err != nil || len(us) != 1 {
		return nil, err
	}
	return us[0], nil
}

// reserve admits the IP, finds the account, counts the attempt and finds
// the hash to check: the user's, or a stand-in for an unknown user, so
// that both cost the same time and cannot be told apart.
//
// The attempt counts against the account, not the spelling: a user found
// by email is counted under their username, so guessing by name and by
// email draws on one allowance. A name that finds nobody is counted as
// typed. (A lockout of a username therefore also locks its email: someone
// who can lock an account learns that the two go together, and nothing
// else.)
func (a *Authenticator) reserve(ctx context.Context, name, ip string) (*Attempt, *ipChecks, *store.User, string, error) {
	share := a.admit(ip)
	if share == nil {
		return nil, nil, nil, "", ErrBusy
	}
	u, err := a.findAccount(ctx, name)
	if err != nil {
		a.leave(ip)
		return nil, nil, nil, "", err
	}
	key := name
	if u != nil {
		key = u.Username
	}
	att, err := a.throttle.Reserve(ctx, key, ip)
	if err != nil {
		a.leave(ip)
		return nil, nil, nil, "", err
	}
	var hash string
	if u != nil {
		hash = u.PasswordHash
	} else if hash, err = a.dummyHash(); err != nil {
		a.leave(ip)
		return nil, nil, nil, "", errors.Join(err, att.Cancel(ctx))
	}
	return att, share, u, hash, nil
}

// check runs one argon2id verification in one of the IP's running places
// and one of the slots, waiting at most MaxWait for both. The IP was
// admitted by reserve and leaves here.
func (a *Authenticator) check(ctx context.Context, ip string, share *ipChecks, hash, password string) (bool, error) {
	defer a.leave(ip)
	timer := time.NewTimer(a.limits.MaxWait)
	defer timer.Stop()
	for _, sem := range []chan struct{}{share.running, a.slots} {
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
		case <-timer.C:
			return false, ErrBusy
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	ok, err := a.verify(hash, password)
	if err != nil {
		return false, fmt.Errorf("verify password: %w", err)
	}
	return ok, nil
}

// admit takes one of the IP's in-flight places, if one is free, and returns
// the IP's share.
func (a *Authenticator) admit(ip string) *ipChecks {
	a.mu.Lock()
	defer a.mu.Unlock()
	share := a.byIP[ip]
	if share == nil {
		share = &ipChecks{running: make(chan struct{}, a.limits.RunningPerIP)}
		a.byIP[ip] = share
	}
	if share.inFlight >= a.limits.InFlightPerIP {
		return nil
	}
	share.inFlight++
	return share
}

func (a *Authenticator) leave(ip string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if share := a.byIP[ip]; share != nil {
		if share.inFlight--; share.inFlight <= 0 {
			delete(a.byIP, ip)
		}
	}
}
