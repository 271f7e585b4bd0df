package server_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

func (h *harness) setEmail(id, email string) {
	h.t.Helper()
	if err := h.store.UpdateUser(context.Background(), id, func(u *store.User) error { u.Email = email; return nil }); err != nil {
		h.t.Fatal(err)
	}
}

// "Login by username or email" (issue 14): an email that exactly one user
// has signs that user in, on the login page and in the password grant,
// case-insensitively; an address several users share signs in nobody; a
// username wins over another user's email of the same spelling.
func TestSignInByEmail(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		erin := h.user("erin", "erin-password-1")
		h.setEmail(erin, "Erin@Example.com")
		h.setEmail(h.user("twin1", "twin-password-1"), "shared@example.com")
		h.setEmail(h.user("twin2", "twin-password-2"), "SHARED@example.com")
		atName := h.user("x@example.com", "atname-password-1")
		h.setEmail(h.user("xavier", "xavier-password-1"), "x@example.com")
		rs := h.serviceClient("introspect")

		pages := []struct {
			typed, password string
			want            int
		}{
			{"erin@example.com", "erin-password-1", http.StatusOK},
			{"ERIN@EXAMPLE.COM", "erin-password-1", http.StatusOK},
			{"Erin@Example.com", "wrong-password", http.StatusUnauthorized},
			{"shared@example.com", "twin-password-1", http.StatusUnauthorized},
			{"shared@example.com", "twin-password-2", http.StatusUnauthorized},
			{"x@example.com", "atname-password-1", http.StatusOK},
			{"x@example.com", "xavier-password-1", http.StatusUnauthorized},
			{"nobody@example.com", "erin-password-1", http.StatusUnauthorized},
		}
		for _, c := range pages {
			br := h.browser("never")
			_, page := br.get(h.public.URL + "/login")
			if resp, _ := br.login(page, c.typed, c.password); resp.StatusCode != c.want {
				t.Errorf("login page %q / %q: %d, want %d", c.typed, c.password, resp.StatusCode, c.want)
			}
		}

		// The password grant: the token is the user's, and introspection
		// names the account, not what was typed.
		app := h.client(map[string]any{"client_name": "first party", "trusted": true, "grant_types": []string{"password"}, "scope": "openid"})
		tok := h.token(app, url.Values{"grant_type": {"password"}, "username": {"ERIN@example.com"}, "password": {"erin-password-1"}, "scope": {"openid"}})
		if in := h.introspect(rs, tok["access_token"].(string)); in["sub"] != erin || in["username"] != "erin" {
			t.Fatalf("introspection %v", in)
		}
		tok = h.token(app, url.Values{"grant_type": {"password"}, "username": {"x@example.com"}, "password": {"atname-password-1"}})
		if in := h.introspect(rs, tok["access_token"].(string)); in["sub"] != atName {
			t.Fatalf("introspection %v", in)
		}
		resp, m := h.form("/oauth2/token", app.id, app.secret, url.Values{"grant_type": {"password"}, "username": {"shared@example.com"}, "password": {"twin-password-1"}})
		wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")
	})
}

// Guesses by username and by email draw on one allowance: three wrong
// passwords by name and two by email lock the account, whichever way it is
// then typed.
func TestEmailAndUsernameShareTheThrottle(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		checks := &checkCounter{}
		h, clock := throttleHarness(t, b, checks, roomy)
		fay := h.user("fay", "fay-password-1")
		h.setEmail(fay, "fay@example.com")
		br := h.browser("never")
		try := func(typed, password string) int {
			_, page := br.get(h.public.URL + "/login")
			resp, _ := br.login(page, typed, password)
			return resp.StatusCode
		}
		for i, typed := range []string{"fay", "fay@example.com", "FAY", "Fay@Example.com", "fay"} {
			if got := try(typed, "wrong-password"); got != http.StatusUnauthorized {
				t.Fatalf("guess %d (%s): %d", i, typed, got)
			}
		}
		if n := loginFailures(t, h, userCounter("fay")); n != 5 {
			t.Fatalf("failures counted for fay: %d, want 5", n)
		}
		if n := loginFailures(t, h, userCounter("fay@example.com")); n != 0 {
			t.Fatalf("failures counted under the email: %d, want 0", n)
		}
		for _, typed := range []string{"fay@example.com", "fay"} {
			if got := try(typed, "fay-password-1"); got != http.StatusTooManyRequests {
				t.Fatalf("right password by %s while locked: %d, want 429", typed, got)
			}
		}
		before := checks.n.Load()
		clock.advance(h.cfg.LoginLockout * 64)
		if got := try("fay@example.com", "fay-password-1"); got != http.StatusOK {
			t.Fatalf("after the lockout: %d", got)
		}
		if checks.n.Load() != before+1 {
			t.Fatalf("password checks: %d, want one more", checks.n.Load()-before)
		}
	})
}
