package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// refreshChain logs a user in with the password grant (offline_access) and
// returns the client and the first token response.
func refreshChain(t *testing.T, h *harness) (testClient, map[string]any) {
	t.Helper()
	h.user("rita", "rita-password-1")
	c := passwordClient(h, true)
	return c, h.token(c, url.Values{"grant_type": {"password"}, "username": {"rita"}, "password": {"rita-password-1"}, "scope": {"read offline_access"}})
}

func refresh(h *harness, c testClient, rt string) (*http.Response, map[string]any) {
	return h.form("/oauth2/token", c.id, c.secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
}

func formats(t *testing.T, fn func(t *testing.T, b storetest.Backend, format string)) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		for _, f := range []string{config.FormatOpaque, config.FormatJWT} {
			t.Run(f, func(t *testing.T) { fn(t, b, f) })
		}
	})
}

func withFormat(f string) func(*config.Config) {
	return func(c *config.Config) { c.AccessTokenFormat = f }
}

// 50 concurrent refreshes of one token inside the grace period all succeed
// with the same successor, and the chain goes on from it.
func TestConcurrentRefreshConverges(t *testing.T) {
	formats(t, func(t *testing.T, b storetest.Backend, format string) {
		h := newHarness(t, b, withFormat(format))
		c, first := refreshChain(t, h)
		rt1 := first["refresh_token"].(string)

		const n = 50
		var wg sync.WaitGroup
		results := make([]map[string]any, n)
		statuses := make([]int, n)
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				req, _ := http.NewRequest(http.MethodPost, h.public.URL+"/oauth2/token",
					strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(c.id, c.secret)
				resp, m := h.do(req)
				statuses[i], results[i] = resp.StatusCode, m
			}()
		}
		close(start)
		wg.Wait()

		successor := ""
		access := map[string]bool{}
		for i := range n {
			if statuses[i] != http.StatusOK {
				t.Fatalf("request %d: %d %v", i, statuses[i], results[i])
			}
			rt := results[i]["refresh_token"].(string)
			if successor == "" {
				successor = rt
			}
			if rt != successor {
				t.Fatalf("the chain forked: %q and %q", successor, rt)
			}
			access[results[i]["access_token"].(string)] = true
		}
		if successor == rt1 {
			t.Fatal("no rotation happened")
		}
		for tok := range access {
			if h.introspect(c, tok)["active"] != true {
				t.Fatal("an access token from the burst is not active")
			}
		}
		resp, next := refresh(h, c, successor)
		if resp.StatusCode != http.StatusOK || next["refresh_token"] == successor {
			t.Fatalf("the successor does not refresh normally: %d %v", resp.StatusCode, next)
		}
	})
}

// A rotated token presented after the grace period is reuse: invalid_grant,
// and every token of the grant, including the successor chain, is dead.
func TestRefreshReuseAfterGrace(t *testing.T) {
	formats(t, func(t *testing.T, b storetest.Backend, format string) {
		h := newHarness(t, b, withFormat(format), func(c *config.Config) { c.RefreshGracePeriod = 5 * time.Second })
		c, first := refreshChain(t, h)
		rt1 := first["refresh_token"].(string)
		_, second := refresh(h, c, rt1)
		rt2, at2 := second["refresh_token"].(string), second["access_token"].(string)

		h.clock.advance(6 * time.Second)
		resp, m := refresh(h, c, rt1)
		wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")
		for name, tok := range map[string]string{"successor refresh": rt2, "successor access": at2, "first access": first["access_token"].(string)} {
			if in := h.introspect(c, tok); in["active"] != false {
				t.Errorf("%s token survived reuse detection: %v", name, in)
			}
		}
		resp, m = refresh(h, c, rt2)
		wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")

		events, err := h.store.SecurityEvents(context.Background(), "refresh_token_reuse")
		if err != nil || len(events) != 1 || events[0].ClientID != c.id || events[0].Subject != "user-rita" || events[0].RequestID == "" || events[0].IP == "" {
			t.Fatalf("audit trail: %+v, %v", events, err)
		}
		if !strings.Contains(h.logs.String(), "refresh token reuse detected") {
			t.Error("reuse was not logged")
		}
	})
}

// The stolen-token story: an attacker with a copy of the refresh token uses
// it first; when the victim's app refreshes later with the same token, the
// reuse is detected and both chains die.
func TestStolenRefreshToken(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, func(c *config.Config) { c.RefreshGracePeriod = 5 * time.Second })
		c, first := refreshChain(t, h)
		stolen := first["refresh_token"].(string)

		_, attacker := refresh(h, c, stolen)
		attackerRT := attacker["refresh_token"].(string)
		h.clock.advance(time.Minute) // the victim's app refreshes later

		resp, m := refresh(h, c, stolen) // the victim
		wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")
		for name, tok := range map[string]string{"attacker refresh": attackerRT, "attacker access": attacker["access_token"].(string), "victim access": first["access_token"].(string)} {
			if h.introspect(c, tok)["active"] != false {
				t.Errorf("%s still active", name)
			}
		}
		resp, m = refresh(h, c, attackerRT)
		wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")
	})
}

// A refresh token presented by another client fails and leaves the owner's
// grant alone.
func TestRefreshBoundToClient(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		c, first := refreshChain(t, h)
		other := passwordClient(h, true)
		rt := first["refresh_token"].(string)
		resp, m := refresh(h, other, rt)
		wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")
		if h.introspect(c, rt)["active"] != true || h.introspect(c, first["access_token"].(string))["active"] != true {
			t.Fatal("another client's attempt revoked the owner's grant")
		}
		if resp, m := refresh(h, c, rt); resp.StatusCode != http.StatusOK {
			t.Fatalf("the owner can no longer refresh: %v", m)
		}
	})
}

// Strict rotation (grace 0): a second presentation is reuse at once.
func TestStrictRotation(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, func(c *config.Config) { c.RefreshGracePeriod = 0 })
		c, first := refreshChain(t, h)
		rt1 := first["refresh_token"].(string)
		_, second := refresh(h, c, rt1)
		resp, m := refresh(h, c, rt1)
		wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")
		if h.introspect(c, second["refresh_token"].(string))["active"] != false {
			t.Fatal("strict rotation: the successor survived a replay")
		}
	})
}

// The absolute lifetime ends a chain however often it is refreshed; the
// idle lifetime alone would slide forever.
func TestRefreshAbsoluteLifetime(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, func(c *config.Config) {
			c.AccessTokenTTL = time.Second
			c.RefreshTokenTTL = 3 * time.Second
			c.RefreshTokenMaxLifetime = 4 * time.Second
		})
		// Expiries are rounded to whole seconds. Granted at .6 of a second, the
		// refresh token's rounded expiry falls after the absolute end, so the
		// chain ends by the absolute lifetime itself, not half a second early.
		h.clock.set(time.Now().Truncate(time.Second).Add(600 * time.Millisecond))
		c, first := refreshChain(t, h)
		rt := first["refresh_token"].(string)
		// Every half second the chain is refreshed, well inside the 3s idle
		// lifetime each rotation renews: only the absolute lifetime ends it,
		// at the first refresh at or past 4s.
		const step = 500 * time.Millisecond
		var lived time.Duration
		for lived < 8*time.Second {
			h.clock.advance(step)
			lived += step
			resp, m := refresh(h, c, rt)
			if resp.StatusCode != http.StatusOK {
				wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")
				if d, _ := m["error_description"].(string); !strings.Contains(d, "absolute lifetime") {
					t.Errorf("ended for another reason: %q", d)
				}
				break
			}
			rt = m["refresh_token"].(string)
		}
		if lived != 4*time.Second {
			t.Fatalf("the chain ended after %s; want the 4s absolute lifetime", lived)
		}
	})
}
