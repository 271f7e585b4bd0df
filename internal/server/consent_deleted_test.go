package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// TestConsentForDeletedClient: an application deleted while its consent
// page was open gets neither a consent nor a redirect: the person's "Allow"
// ends on the error page (400), as for any unknown client.
func TestConsentForDeletedClient(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		userID := h.user("vera", "vera-password-1")
		app := h.spa("https://app.example/cb", false, "openid")
		br := h.browser(app.conf.RedirectURL)
		_, page := br.get(app.conf.AuthCodeURL("state-deleted", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		resp, page := br.login(page, "vera", "vera-password-1")
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, `value="allow"`) {
			t.Fatalf("consent page: %d", resp.StatusCode)
		}
		if err := h.store.DeleteClient(context.Background(), app.id); err != nil {
			t.Fatal(err)
		}
		resp, _ = br.consent(page, "allow")
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Fatalf("allow for a deleted client: %d Location=%q, want the 400 page", resp.StatusCode, resp.Header.Get("Location"))
		}
		if s, _ := h.store.ConsentedScopes(context.Background(), userID, app.id); len(s) != 0 {
			t.Errorf("a consent was stored for a deleted client: %v", s)
		}
	})
}
