package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

const reuseWarning = `"msg":"refresh token reuse detected; grant revoked"`

// Issue 11 item 5: one rotated refresh token replayed 60 times after the
// grace period (here none), in parallel, revokes its grant once: one
// security_events row and one warning, however many replays.
func TestRefreshReuseFloodRecordsOnce(t *testing.T) {
	formats(t, func(t *testing.T, b storetest.Backend, format string) {
		h := newHarness(t, b, withFormat(format), func(c *config.Config) { c.RefreshGracePeriod = 0 })
		c, first := refreshChain(t, h)
		rt1 := first["refresh_token"].(string)
		if resp, m := refresh(h, c, rt1); resp.StatusCode != http.StatusOK {
			t.Fatalf("rotation: %d %v", resp.StatusCode, m)
		}

		const replays = 60
		statuses := make(chan int, replays)
		var wg sync.WaitGroup
		for range replays {
			wg.Go(func() {
				v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}}
				req, _ := http.NewRequest(http.MethodPost, h.public.URL+"/oauth2/token", strings.NewReader(v.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					statuses <- 0
					return
				}
				resp.Body.Close()
				statuses <- resp.StatusCode
			})
		}
		wg.Wait()
		close(statuses)
		for s := range statuses {
			if s != http.StatusBadRequest {
				t.Fatalf("a replay answered %d, want 400 invalid_grant", s)
			}
		}
		events, err := h.store.SecurityEvents(context.Background(), "refresh_token_reuse")
		if err != nil || len(events) != 1 {
			t.Fatalf("%d security events after %d replays of one token (%v), want 1", len(events), replays, err)
		}
		if n := strings.Count(h.logs.String(), reuseWarning); n != 1 {
			t.Fatalf("%d reuse warnings after %d replays of one token, want 1", n, replays)
		}
	})
}

// Many grants, each replayed once: each is recorded (one row per grant),
// but the warning is rate-limited per instance, and the next line written
// says how many were held back.
func TestRefreshReuseWarningsRateLimited(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, func(c *config.Config) { c.RefreshGracePeriod = 0 })
		c, _ := refreshChain(t, h)
		const grants = 14
		for range grants {
			rt := h.token(c, url.Values{"grant_type": {"password"}, "username": {"rita"}, "password": {"rita-password-1"}, "scope": {"read offline_access"}})["refresh_token"].(string)
			if resp, m := refresh(h, c, rt); resp.StatusCode != http.StatusOK {
				t.Fatalf("rotation: %d %v", resp.StatusCode, m)
			}
			resp, m := refresh(h, c, rt)
			wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")
		}
		events, err := h.store.SecurityEvents(context.Background(), "refresh_token_reuse")
		if err != nil || len(events) != grants {
			t.Fatalf("%d security events for %d reused grants (%v)", len(events), grants, err)
		}
		if n := strings.Count(h.logs.String(), reuseWarning); n != 10 {
			t.Fatalf("%d reuse warnings for %d reused grants, want the limit of 10 a minute", n, grants)
		}
	})
}
