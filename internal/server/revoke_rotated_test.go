package server_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

// RFC 7009 §2.1 on a refresh token that was already rotated: the person who
// still holds it (an app's old copy, a user revoking from a stale device)
// asks to end the grant, while whoever holds the successor keeps refreshing.
// fosite's handler read the inactive token as "already revoked" and changed
// nothing, so the successor's chain lived on. The rotated token revokes its
// whole grant like any other token of it.
func TestRevokeRotatedRefreshTokenEndsTheChain(t *testing.T) {
	formats(t, func(t *testing.T, b storetest.Backend, format string) {
		h := newHarness(t, b, withFormat(format))
		c, first := refreshChain(t, h)
		old := first["refresh_token"].(string)
		resp, next := refresh(h, c, old)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("refresh: %d %v", resp.StatusCode, next)
		}
		successor, access := next["refresh_token"].(string), next["access_token"].(string)

		// Another client holding a copy cannot use it to end the grant.
		other := passwordClient(h, true)
		if resp, m := h.form("/oauth2/revoke", other.id, other.secret, url.Values{"token": {old}}); resp.StatusCode == http.StatusOK {
			if resp, m := refresh(h, c, successor); resp.StatusCode != http.StatusOK {
				t.Fatalf("another client's revocation of a rotated token ended the grant: %d %v", resp.StatusCode, m)
			}
		} else if m["error"] != "unauthorized_client" {
			t.Fatalf("another client's revocation: %d %v", resp.StatusCode, m)
		}

		if resp, m := h.form("/oauth2/revoke", c.id, c.secret, url.Values{"token": {old}, "token_type_hint": {"refresh_token"}}); resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke the rotated token: %d %v", resp.StatusCode, m)
		}
		if resp, m := refresh(h, c, successor); resp.StatusCode != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Errorf("the successor still refreshes after its grant was revoked: %d %v", resp.StatusCode, m)
		}
		if m := h.introspect(c, access); m["active"] != false {
			t.Errorf("the successor's access token is still active: %v", m)
		}
	})
}
