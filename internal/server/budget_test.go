package server_test

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// statements records the SQL each flow sends.
type statements struct {
	mu   sync.Mutex
	list []string
}

func (s *statements) record(_ context.Context, sql string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, sql)
}

// take returns what was recorded since the last call.
func (s *statements) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.list
	s.list = nil
	return out
}

func count(stmts []string) (reads, writes, txs int) {
	for _, q := range stmts {
		switch up := strings.ToUpper(strings.TrimSpace(q)); {
		case up == "BEGIN":
			txs++
		case up == "COMMIT":
		case strings.HasPrefix(up, "SELECT LATCHKEY_"):
			// Our PL/pgSQL functions (migration 00009) write: the refresh
			// rotation, the grant locks.
			writes++
		case strings.HasPrefix(up, "SELECT"):
			reads++
		default:
			writes++
		}
	}
	return reads, writes, txs
}

// The query budget of each flow, counted on every backend so that it cannot
// creep up: client credentials writes nothing and reads at most its client
// once; introspection is one read; a refresh is one transaction of a few
// statements; the whole code flow stays within ten.
func TestQueryBudget(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		rec := &statements{}
		h := newHarnessWithStore(t, b, store.Options{OnStatement: rec.record}, func(c *config.Config) { c.AccessTokenFormat = config.FormatJWT })
		svc := h.serviceClient("read")
		rs := h.serviceClient("introspect")
		h.user("quinn", "quinn-password-1")
		pwd := passwordClient(h, true)
		app := h.spa("https://app.example/cb", true, "openid offline_access")

		check := func(flow string, stmts []string, maxReads, maxWrites, maxTxs int) {
			t.Helper()
			r, w, x := count(stmts)
			t.Logf("%-12s reads %d writes %d transactions %d", flow, r, w, x)
			if r > maxReads || w > maxWrites || x > maxTxs {
				t.Errorf("%s over budget: %d reads (max %d), %d writes (max %d), %d transactions (max %d):\n%s",
					flow, r, maxReads, w, maxWrites, x, maxTxs, strings.Join(stmts, "\n"))
			}
		}

		rec.take()
		h.token(svc, url.Values{"grant_type": {"client_credentials"}}) // cold client cache
		check("cc cold", rec.take(), 1, 0, 0)
		tok := h.token(svc, url.Values{"grant_type": {"client_credentials"}})["access_token"].(string)
		check("cc", rec.take(), 0, 0, 0)

		h.introspect(rs, tok)
		rec.take()
		h.introspect(rs, tok)
		check("introspect", rec.take(), 1, 0, 0)

		first := h.token(pwd, url.Values{"grant_type": {"password"}, "username": {"quinn"}, "password": {"quinn-password-1"}, "scope": {"read offline_access"}})
		rec.take()
		h.token(pwd, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first["refresh_token"].(string)}})
		stmts := rec.take()
		check("refresh", stmts, 1, 4, 1)
		if r, w, _ := count(stmts); r+w > 5 {
			t.Errorf("refresh sends %d statements, budget 5", r+w)
		}

		// RFC 7009 on a refresh token: one lookup, then the whole grant in
		// one transaction under one grant lock.
		h.form("/oauth2/revoke", pwd.id, pwd.secret, url.Values{"token": {first["refresh_token"].(string)}})
		check("revoke", rec.take(), 1, 5, 1)

		br := h.browser(app.conf.RedirectURL)
		verifier := oauth2.GenerateVerifier()
		_, page := br.get(app.conf.AuthCodeURL("state-budget0", oauth2.S256ChallengeOption(verifier)))
		resp, _ := br.login(page, "quinn", "quinn-password-1")
		_ = resp
		// The measured flow: a signed-in browser, authorize then token.
		verifier = oauth2.GenerateVerifier()
		rec.take()
		resp, _ = br.get(app.conf.AuthCodeURL("state-budget1", oauth2.S256ChallengeOption(verifier)))
		code := callback(t, resp, app.conf.RedirectURL).Get("code")
		if _, err := app.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier)); err != nil {
			t.Fatal(err)
		}
		stmts = rec.take()
		// 11: the code also records which login session its grant belongs
		// to (login_session_grants), so that logout stays exact.
		if r, w, _ := count(stmts); r+w > 11 {
			t.Errorf("code flow sends %d statements, budget 11:\n%s", r+w, strings.Join(stmts, "\n"))
		} else {
			t.Logf("code flow    %d statements", r+w)
		}
	})
}
