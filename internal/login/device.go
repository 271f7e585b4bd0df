package login

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
)

// The device verification page (RFC 8628 §3.3): the form where a signed-in
// person types the user code a device shows. Which codes exist is the
// OAuth side's business (oauth.Provider.Device); this package draws the
// form, checks its CSRF token, and throttles wrong codes.

// UserCodePolicy bounds how many wrong user codes may be tried (RFC 8628
// §5.1: the user code's entropy holds only if guessing is rate limited).
// The counters are the sign-in throttle's rows, so they hold across
// instances.
type UserCodePolicy struct {
	// Window is how long wrong codes are remembered, and how long a key
	// stays locked once past its limit.
	Window time.Duration
	// BrowserLimit counts per browser (its CSRF cookie), IPLimit per client
	// IP, GlobalLimit across everyone: a browser that drops its cookies
	// still meets the IP's limit, a botnet the global one.
	BrowserLimit, IPLimit, GlobalLimit int
}

// DefaultUserCodePolicy: 5 wrong codes a minute from a browser, 20 from an
// IP, 1,000 in all; the next is refused for a minute. 20^8 codes, of
// which a few thousand live, make 1,000 guesses a minute worth about one
// hit in 40 years.
var DefaultUserCodePolicy = UserCodePolicy{Window: time.Minute, BrowserLimit: 5, IPLimit: 20, GlobalLimit: 1000}

// UserCodePage shows the user-code form, posting to action (the
// verification URI), prefilled with code and with errMsg (a message key) above it.
func (h *Handler) UserCodePage(w http.ResponseWriter, r *http.Request, status int, action, code, errMsg string) {
	p := page{Title: "device.title", CSRFToken: h.csrfToken(w, r), ReturnTo: action, UserCode: code, Error: errMsg}
	if s, err := h.current(r); err == nil && s != nil {
		p.Username = s.User.Username
	}
	h.render(w, r, status, "device", p)
}

// ValidForm reports whether a POSTed form carries this browser's CSRF token.
func (h *Handler) ValidForm(r *http.Request) bool { return h.validCSRF(r) }

// UserCodeAttempt is one user code checked, counted before the check
// ("reserve, then verify"). Exactly one of Wrong or Right ends it.
type UserCodeAttempt struct {
	h    *Handler
	keys []string
}

// ErrTooManyCodes refuses a user code while its browser, IP or everyone
// is past the policy's limit.
var ErrTooManyCodes = errors.New("too many wrong user codes")

// ReserveUserCode counts one user-code attempt of r's browser against the
// policy, or refuses it with ErrTooManyCodes. A browser without a CSRF
// cookie yet gets one (w), so that it has a key from its first try.
func (h *Handler) ReserveUserCode(ctx context.Context, w http.ResponseWriter, r *http.Request) (*UserCodeAttempt, error) {
	pol := h.cfg.UserCodes
	browser := h.browserKey(w, r)
	keys := []store.AttemptKey{
		{Key: "device-browser:" + secrets.SignatureKey(browser), Lock: lockAt(pol.BrowserLimit, pol.Window)},
		{Key: "device-ip:" + h.ClientIP(r), Lock: lockAt(pol.IPLimit, pol.Window)},
		{Key: "device-global", Lock: lockAt(pol.GlobalLimit, pol.Window)},
	}
	if _, err := h.store.ReserveLoginAttempt(ctx, pol.Window, keys...); err != nil {
		if errors.Is(err, store.ErrLocked) {
			return nil, ErrTooManyCodes
		}
		return nil, fmt.Errorf("reserve user code attempt: %w", err)
	}
	a := &UserCodeAttempt{h: h}
	for _, k := range keys {
		a.keys = append(a.keys, k.Key)
	}
	return a, nil
}

// Right takes back an attempt whose code was live: only wrong codes count.
func (a *UserCodeAttempt) Right(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	pol := a.h.cfg.UserCodes
	var errs []error
	for i, limit := range []int{pol.BrowserLimit, pol.IPLimit, pol.GlobalLimit} {
		errs = append(errs, a.h.store.ReleaseLoginAttempt(ctx, a.keys[i], limit))
	}
	return errors.Join(errs...)
}

// lockAt locks a key for d once it has counted limit attempts: the next
// one is refused.
func lockAt(limit int, d time.Duration) func(int) time.Duration {
	return func(attempts int) time.Duration {
		if attempts < limit {
			return 0
		}
		return d
	}
}

// browserKey is the CSRF cookie of r's browser, set now if it has none.
func (h *Handler) browserKey(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(h.cookieName("latchkey_csrf")); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	h.csrfToken(w, r)
	// The cookie just set, read back from the response.
	for _, c := range (&http.Response{Header: w.Header()}).Cookies() {
		if c.Name == h.cookieName("latchkey_csrf") {
			return c.Value
		}
	}
	return ""
}
