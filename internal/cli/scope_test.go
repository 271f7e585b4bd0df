package cli

import (
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

// `latchkey scope` is /admin/scopes on the command line: set (create or
// replace), get, list, delete; bad names and descriptions are refused with
// the rule they broke.
func TestScopeCommands(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		environ := migrated(t, b)
		sc := decode[map[string]any](t, mustSucceed(t, latchkey(t, environ, "", "scope", "set", "invoices:read", "Read your invoices")))
		if sc["name"] != "invoices:read" || sc["description"] != "Read your invoices" {
			t.Fatalf("scope set: %v", sc)
		}
		mustSucceed(t, latchkey(t, environ, "", "scope", "set", "invoices:read", "Read and download your invoices"))
		if got := decode[map[string]any](t, mustSucceed(t, latchkey(t, environ, "", "scope", "get", "invoices:read"))); got["description"] != "Read and download your invoices" {
			t.Errorf("scope get: %v", got)
		}
		if list := decode[[]map[string]any](t, mustSucceed(t, latchkey(t, environ, "", "scope", "list"))); len(list) != 1 {
			t.Errorf("scope list: %v", list)
		}
		mustFail(t, latchkey(t, environ, "", "scope", "set", "email", "x"), "built-in")
		mustFail(t, latchkey(t, environ, "", "scope", "set", "a b", "x"), "scope token")
		mustFail(t, latchkey(t, environ, "", "scope", "set", "x", " "), "description is required")
		mustSucceed(t, latchkey(t, environ, "", "scope", "delete", "invoices:read"))
		mustFail(t, latchkey(t, environ, "", "scope", "get", "invoices:read"), "not_found")
	})
}
