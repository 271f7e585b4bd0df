package cli

import (
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

// latchkey client create sets the OpenID Connect client metadata (issue 14)
// from flags; what breaks a rule fails with invalid_client_metadata and
// stores nothing.
func TestClientCreateOpenIDFlags(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		environ := migrated(t, b)
		base := []string{"client", "create", "--grant-type", "authorization_code", "--redirect-uri", "https://rp.example/cb"}

		for name, args := range map[string][]string{
			"unknown algorithm":                  {"--id-token-alg", "HS256"},
			"logout over http":                   {"--backchannel-logout-uri", "http://rp.example/bcl"},
			"logout with a fragment":             {"--backchannel-logout-uri", "https://rp.example/bcl#x"},
			"session required without logout":    {"--backchannel-logout-session-required"},
			"post-logout redirect with http":     {"--post-logout-redirect-uri", "http://rp.example/bye"},
			"post-logout redirect, not absolute": {"--post-logout-redirect-uri", "/bye"},
		} {
			t.Run(name, func(t *testing.T) {
				code := "invalid_client_metadata"
				if strings.HasPrefix(name, "post-logout") {
					code = "invalid_redirect_uri"
				}
				mustFail(t, latchkey(t, environ, "", append(append([]string{}, base...), args...)...), code)
			})
		}
		if list := decode[[]map[string]any](t, mustSucceed(t, latchkey(t, environ, "", "client", "list"))); len(list) != 0 {
			t.Fatalf("refused registrations were stored: %v", list)
		}

		created := decode[map[string]any](t, mustSucceed(t, latchkey(t, environ, "", append(base,
			"--id-token-alg", "EdDSA", "--backchannel-logout-uri", "https://rp.example/bcl", "--backchannel-logout-session-required",
			"--post-logout-redirect-uri", "https://rp.example/bye", "--require-par")...)))
		id, _ := created["client_id"].(string)
		got := decode[map[string]any](t, mustSucceed(t, latchkey(t, environ, "", "client", "get", id)))
		for what, c := range map[string]map[string]any{"create": created, "get": got} {
			if c["id_token_signed_response_alg"] != "EdDSA" || c["backchannel_logout_uri"] != "https://rp.example/bcl" ||
				c["backchannel_logout_session_required"] != true || c["require_pushed_authorization_requests"] != true {
				t.Errorf("client %s: %v", what, c)
			}
			if uris, _ := c["post_logout_redirect_uris"].([]any); len(uris) != 1 || uris[0] != "https://rp.example/bye" {
				t.Errorf("client %s: post_logout_redirect_uris %v", what, c["post_logout_redirect_uris"])
			}
		}

		// Without the flag the answer says the default.
		plain := decode[map[string]any](t, mustSucceed(t, latchkey(t, environ, "", base...)))
		if plain["id_token_signed_response_alg"] != "RS256" || plain["backchannel_logout_uri"] != nil || plain["require_pushed_authorization_requests"] != nil {
			t.Errorf("client create without OpenID flags: %v", plain)
		}
	})
}
