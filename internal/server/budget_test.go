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
	"github.com/latchkey/latchkey/internal/oauth"
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
// once; introspection is one read, none on PostgreSQL with the deny-list in
// memory; a refresh is one transaction of a few
// statements; the whole code flow stays within ten.
func TestQueryBudget(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		rec := &statements{}
		// The client cache lives a minute on both backends (SQLite's default
		// is a second): the device poll below comes 6 s after the last.
		h := newHarnessWithStore(t, b, store.Options{OnStatement: rec.record, ClientCacheTTL: time.Minute}, func(c *config.Config) { c.AccessTokenFormat = config.FormatJWT })
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
		// DPoP (RFC 9449): the proof's jti is the one write.
		key, _ := dpopKey(t)
		if resp, m := h.tokenWithProofs(svc, url.Values{"grant_type": {"client_credentials"}}, h.proof(key, "POST", "/oauth2/token", "", "")); resp.StatusCode != http.StatusOK {
			t.Fatalf("cc with DPoP: %d %v", resp.StatusCode, m)
		}
		check("cc dpop", rec.take(), 0, 1, 0)

		// Introspection of a JWT: its revocation check is the one read,
		// and on PostgreSQL none at all once the in-memory deny-list is
		// trusted (store/denylist.go): a token nobody revoked is a definite
		// miss there.
		h.introspect(rs, tok)
		if b.Name == "postgres" {
			deadline := time.Now().Add(30 * time.Second)
			for !h.store.RevocationsInMemory() {
				if time.Now().After(deadline) {
					t.Fatal("the deny-list is never trusted")
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		rec.take()
		h.introspect(rs, tok)
		if stmts := rec.take(); b.Name == "postgres" {
			check("introspect", stmts, 0, 0, 0)
		} else {
			check("introspect", stmts, 1, 0, 0)
		}

		// The device flow (RFC 8628): a pending poll is one indexed read and
		// no write (the client is cached); the redemption one transaction.
		tv := h.deviceClient(true, "openid offline_access")
		dev := h.startDevice(tv, "openid offline_access")
		h.pollDevice(tv, dev["device_code"].(string))
		h.clock.advance(6 * time.Second)
		rec.take()
		if resp, m := h.pollDevice(tv, dev["device_code"].(string)); m["error"] != "authorization_pending" {
			t.Fatalf("device poll: %d %v", resp.StatusCode, m)
		}
		check("device poll", rec.take(), 1, 0, 0)
		h.browser(h.public.URL+"/nowhere").approve(dev["user_code"].(string), "quinn", "quinn-password-1", "allow")
		h.clock.advance(6 * time.Second)
		rec.take()
		if resp, m := h.pollDevice(tv, dev["device_code"].(string)); resp.StatusCode != http.StatusOK {
			t.Fatalf("device redemption: %d %v", resp.StatusCode, m)
		}
		// The device code read; the grant lock (PostgreSQL), the claim and
		// the refresh token (a JWT access token stores nothing).
		check("device redeem", rec.take(), 1, 3, 1)

		first := h.token(pwd, url.Values{"grant_type": {"password"}, "username": {"quinn"}, "password": {"quinn-password-1"}, "scope": {"read offline_access"}})
		rec.take()
		h.token(pwd, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first["refresh_token"].(string)}})
		stmts := rec.take()
		check("refresh", stmts, 1, 4, 1)
		if r, w, _ := count(stmts); r+w > 5 {
			t.Errorf("refresh sends %d statements, budget 5", r+w)
		}

		// A refresh with DPoP: the same, plus the jti.
		second := h.token(pwd, url.Values{"grant_type": {"password"}, "username": {"quinn"}, "password": {"quinn-password-1"}, "scope": {"read offline_access"}})
		rec.take()
		if resp, m := h.tokenWithProofs(pwd, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {second["refresh_token"].(string)}},
			h.proof(key, "POST", "/oauth2/token", "", "")); resp.StatusCode != http.StatusOK || m["token_type"] != "DPoP" {
			t.Fatalf("refresh with DPoP: %d %v", resp.StatusCode, m)
		}
		dr, dw, dx := count(rec.take())
		if r0, w0, x0 := count(stmts); dr != r0 || dw != w0+1 || dx != x0 {
			t.Errorf("refresh with DPoP: %d reads %d writes %d transactions, want a refresh's %d %d %d plus the jti's write", dr, dw, dx, r0, w0, x0)
		}

		// Token exchange (RFC 8693) of a JWT: the subject token checked as
		// introspection checks it (one read, none on PostgreSQL), nothing
		// written.
		xc := h.client(map[string]any{"grant_types": []string{oauth.GrantTypeTokenExchange}, "scope": "read"})
		subject := h.token(pwd, url.Values{"grant_type": {"password"}, "username": {"quinn"}, "password": {"quinn-password-1"}, "scope": {"read"}})
		xf := url.Values{"grant_type": {oauth.GrantTypeTokenExchange}, "subject_token": {subject["access_token"].(string)},
			"subject_token_type": {oauth.TokenTypeAccessToken}}
		h.token(xc, xf) // cold client cache
		rec.take()
		h.token(xc, xf)
		check("exchange", rec.take(), 1, 0, 0)

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

// An ID token costs no query with scope openid alone (the grant proves the
// user) and one user read when a scope releases the user's claims: on the
// password grant, on refresh and on the code flow.
func TestQueryBudgetOpenID(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		rec := &statements{}
		h := newHarnessWithStore(t, b, store.Options{OnStatement: rec.record}, func(c *config.Config) { c.AccessTokenFormat = config.FormatJWT })
		h.person("ida", "ida-password-1")
		pwd := oidcPasswordClient(h, "")
		total := func(stmts []string) (int, int, int) { return count(stmts) }
		login := func(scope string) ([]string, map[string]any) {
			rec.take()
			m := h.token(pwd, url.Values{"grant_type": {"password"}, "username": {"ida"}, "password": {"ida-password-1"}, "scope": {scope}})
			return rec.take(), m
		}
		refreshStmts := func(m map[string]any) []string {
			rec.take()
			if resp, r := refresh(h, pwd, m["refresh_token"].(string)); resp.StatusCode != http.StatusOK || (m["id_token"] != nil) != (r["id_token"] != nil) {
				t.Fatalf("refresh: %d %v", resp.StatusCode, r)
			}
			return rec.take()
		}
		login("read offline_access") // warm the client cache
		plain, plainTok := login("read offline_access")
		openid, openidTok := login("openid offline_access")
		profile, profileTok := login("openid profile email groups offline_access")
		pr, pw, px := total(plain)
		for name, tc := range map[string]struct {
			stmts      []string
			extraReads int
		}{"password openid": {openid, 0}, "password openid profile": {profile, 1}} {
			r, w, x := total(tc.stmts)
			t.Logf("%-24s reads %d writes %d transactions %d", name, r, w, x)
			if r != pr+tc.extraReads || w != pw || x != px {
				t.Errorf("%s: %d reads %d writes %d transactions; without openid %d %d %d, allowed %d more reads:\n%s",
					name, r, w, x, pr, pw, px, tc.extraReads, strings.Join(tc.stmts, "\n"))
			}
		}

		// Refresh: with openid the statements of a refresh without it
		// (TestQueryBudget pins those), one read more with the profile
		// scopes.
		base := refreshStmts(plainTok)
		br0, bw0, bx0 := total(base)
		for name, tc := range map[string]struct {
			tok        map[string]any
			extraReads int
		}{"refresh openid": {openidTok, 0}, "refresh openid profile": {profileTok, 1}} {
			stmts := refreshStmts(tc.tok)
			r, w, x := total(stmts)
			t.Logf("%-24s reads %d writes %d transactions %d (without openid %d %d %d)", name, r, w, x, br0, bw0, bx0)
			if r != br0+tc.extraReads || w != bw0 || x != bx0 {
				t.Errorf("%s: %d reads %d writes %d transactions; without openid %d %d %d, allowed %d more reads:\n%s",
					name, r, w, x, br0, bw0, bx0, tc.extraReads, strings.Join(stmts, "\n"))
			}
		}

		// The code flow of a signed-in browser: 11 statements at most with
		// openid (TestQueryBudget), exactly one read more with profile.
		var codeStmts []int
		for _, scope := range []string{"openid offline_access", "openid profile offline_access"} {
			app := h.spa("https://app.example/cb", true, scope)
			br := h.browser(app.conf.RedirectURL)
			codeFlow(t, h, br, app) // signs in
			rec.take()
			tok := codeFlow(t, h, br, app)
			stmts := rec.take()
			if idTokenOf(tok) == "" {
				t.Fatalf("%s: no id_token", scope)
			}
			r, w, _ := total(stmts)
			t.Logf("code flow %-30s %d statements", scope, r+w)
			codeStmts = append(codeStmts, r+w)
		}
		if codeStmts[0] > 11 || codeStmts[1] != codeStmts[0]+1 {
			t.Errorf("code flow statements: %d with openid (budget 11), %d with profile (want one more)", codeStmts[0], codeStmts[1])
		}
	})
}

// Token exchange with opaque tokens: the subject token's row, then one
// transaction that checks its grant is live under the grant's lock and
// stores the new token.
func TestQueryBudgetExchangeOpaque(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		rec := &statements{}
		h := newHarnessWithStore(t, b, store.Options{OnStatement: rec.record}, func(c *config.Config) { c.AccessTokenFormat = config.FormatOpaque })
		h.user("quinn", "quinn-password-1")
		pwd := passwordClient(h, true)
		xc := h.client(map[string]any{"grant_types": []string{oauth.GrantTypeTokenExchange}, "scope": "read"})
		subject := h.token(pwd, url.Values{"grant_type": {"password"}, "username": {"quinn"}, "password": {"quinn-password-1"}, "scope": {"read"}})
		xf := url.Values{"grant_type": {oauth.GrantTypeTokenExchange}, "subject_token": {subject["access_token"].(string)},
			"subject_token_type": {oauth.TokenTypeAccessToken}}
		h.token(xc, xf) // cold client cache
		rec.take()
		h.token(xc, xf)
		stmts := rec.take()
		r, w, x := count(stmts)
		t.Logf("exchange (opaque) reads %d writes %d transactions %d", r, w, x)
		if r > 2 || w > 2 || x > 1 {
			t.Errorf("opaque exchange over budget: %d reads (max 2), %d writes (max 2), %d transactions (max 1):\n%s", r, w, x, strings.Join(stmts, "\n"))
		}
	})
}
