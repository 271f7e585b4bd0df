package server_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

func TestAdminUsers(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, func(c *config.Config) { c.AccessTokenFormat = config.FormatJWT })
		resp, u := h.adminJSON(http.MethodPost, "/admin/users", map[string]string{"username": "hana", "password": "hana-password-1"})
		if resp.StatusCode != http.StatusCreated || u["id"] == "" || u["username"] != "hana" || u["password"] != nil {
			t.Fatalf("create: %d %v", resp.StatusCode, u)
		}
		id := u["id"].(string)
		for name, tc := range map[string]struct {
			body   map[string]string
			status int
		}{
			"duplicate":      {map[string]string{"username": "hana", "password": "another-password"}, http.StatusConflict},
			"short password": {map[string]string{"username": "ivan", "password": "short"}, http.StatusBadRequest},
			"blank username": {map[string]string{"username": " ", "password": "long-enough-1"}, http.StatusBadRequest},
			"space inside":   {map[string]string{"username": "a b", "password": "long-enough-1"}, http.StatusBadRequest},
		} {
			if resp, m := h.adminJSON(http.MethodPost, "/admin/users", tc.body); resp.StatusCode != tc.status {
				t.Errorf("%s: %d %v, want %d", name, resp.StatusCode, m, tc.status)
			}
		}
		if resp, list := h.adminList("/admin/users"); resp.StatusCode != http.StatusOK || len(list) != 1 || list[0]["password_hash"] != nil {
			t.Fatalf("list: %v", list)
		}

		c := passwordClient(h, true)
		login := url.Values{"grant_type": {"password"}, "username": {"hana"}, "password": {"hana-password-1"}, "scope": {"read offline_access"}}
		tok := h.token(c, login)

		// Revoking a user's tokens ends JWT access tokens and refresh tokens at once.
		if resp, _ := h.adminJSON(http.MethodPost, "/admin/users/"+id+"/revoke-tokens", nil); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("revoke-tokens: %d", resp.StatusCode)
		}
		for name, tk := range map[string]string{"access": tok["access_token"].(string), "refresh": tok["refresh_token"].(string)} {
			if h.introspect(c, tk)["active"] != false {
				t.Errorf("%s token active after revoke-tokens", name)
			}
		}
		if resp, _ := h.adminJSON(http.MethodPost, "/admin/users/nobody/revoke-tokens", nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("revoke-tokens of unknown user: %d", resp.StatusCode)
		}

		// A password change signs the user out everywhere; the new password works.
		tok = h.token(c, login)
		if resp, m := h.adminJSON(http.MethodPut, "/admin/users/"+id+"/password", map[string]string{"password": "hana-password-2"}); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("set password: %d %v", resp.StatusCode, m)
		}
		if h.introspect(c, tok["refresh_token"].(string))["active"] != false {
			t.Error("refresh token survived a password change")
		}
		resp, m := h.form("/oauth2/token", c.id, c.secret, login)
		wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")
		login.Set("password", "hana-password-2")
		h.token(c, login)

		if resp, _ := h.adminJSON(http.MethodDelete, "/admin/users/"+id, nil); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("delete: %d", resp.StatusCode)
		}
		if resp, _ := h.adminJSON(http.MethodDelete, "/admin/users/"+id, nil); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("second delete: %d", resp.StatusCode)
		}
		resp, m = h.form("/oauth2/token", c.id, c.secret, login)
		wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")
	})
}
