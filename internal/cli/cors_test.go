package cli

import (
	"fmt"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

// client create and client update set allowed_cors_origins (issue 18):
// a list, none at all, or back to the redirect URIs' origins; update
// changes only the flags given.
func TestClientCORSOriginFlags(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		environ := migrated(t, b)
		created := decode[map[string]any](t, mustSucceed(t, latchkey(t, environ, "", "client", "create", "--id", "spa", "--name", "SPA",
			"--auth-method", "none", "--redirect-uri", "https://spa.example/cb", "--allowed-cors-origin", "https://spa.example/", "--allowed-cors-origin", "http://localhost:5173")))
		if got := fmt.Sprint(created["allowed_cors_origins"]); got != "[https://spa.example http://localhost:5173]" {
			t.Fatalf("client create --allowed-cors-origin: %v", created)
		}
		mustFail(t, latchkey(t, environ, "", "client", "create", "--auth-method", "none", "--redirect-uri", "https://x.example/cb", "--allowed-cors-origin", "https://x.example/app"), "allowed_cors_origins")
		mustFail(t, latchkey(t, environ, "", "client", "create", "--auth-method", "none", "--redirect-uri", "https://x.example/cb", "--allowed-cors-origin", "https://x.example", "--no-cors-origins"), "contradict")

		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--no-cors-origins"}, "[]"},
			{[]string{"--allowed-cors-origin", "https://new.example"}, "[https://new.example]"},
			{[]string{"--derive-cors-origins"}, "<nil>"},
		} {
			updated := decode[map[string]any](t, mustSucceed(t, latchkey(t, environ, "", append([]string{"client", "update", "spa"}, tc.args...)...)))
			if got := fmt.Sprint(updated["allowed_cors_origins"]); got != tc.want || updated["client_name"] != "SPA" || fmt.Sprint(updated["redirect_uris"]) != "[https://spa.example/cb]" {
				t.Errorf("client update %v: %v; want allowed_cors_origins %s and the rest kept", tc.args, updated, tc.want)
			}
		}
		mustFail(t, latchkey(t, environ, "", "client", "update", "nobody", "--no-cors-origins"), "nobody")
	})
}
