package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// The account page's statements, pinned like TestQueryBudget's: showing
// the page is a few reads whatever the person holds; ending a session and
// revoking an application are each one transaction of set-based
// statements (the grants' count does not add statements).
func TestQueryBudgetAccount(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		rec := &statements{}
		h := newHarnessWithStore(t, b, store.Options{OnStatement: rec.record})
		h.user("quinn", "quinn-password-1")
		app := h.spa("https://app.example/cb", false, "read offline_access")
		other := h.browser(app.conf.RedirectURL)
		for range 3 {
			signInTo(t, h, other, app, "quinn", "quinn-password-1")
		}
		br := h.browser("https://never.example")
		signIn(t, br, "quinn", "quinn-password-1")
		br.account()

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
		page := br.account()
		check("account", rec.take(), 5, 0, 0)

		csrf := field(t, csrfRe, page)
		rec.take()
		resp, _ := br.post("/account/apps/revoke", url.Values{"csrf_token": {csrf}, "client_id": {app.id}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke: %d", resp.StatusCode)
		}
		// The revocation in one transaction (7 writes on PostgreSQL, the
		// grant locks included), then the account page it redirects to.
		check("revoke app", rec.take(), 8, 7, 1)

		sid := other.session().SID
		rec.take()
		resp, _ = br.post("/account/sessions/end", url.Values{"csrf_token": {csrf}, "sid": {sid}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("end: %d", resp.StatusCode)
		}
		// Ending a session with three grants: EndLoginSession's one
		// transaction, as at logout, then the page.
		check("end session", rec.take(), 10, 9, 1)
	})
}
