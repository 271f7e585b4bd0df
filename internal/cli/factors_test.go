package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// `user factors list` shows kinds and dates, never secrets; `reset` with
// --factor removes one, without it all, recovery codes included.
func TestUserFactorsListAndReset(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		environ := migrated(t, b)
		st := openTestStore(t, environ)
		ctx := context.Background()
		if err := st.CreateUser(ctx, &store.User{ID: "u-mfa", Username: "mfa", PasswordHash: "$argon2id$x"}); err != nil {
			t.Fatal(err)
		}
		if err := st.EnrollFactor(ctx, &store.Factor{ID: "f-1", UserID: "u-mfa", Kind: store.FactorTOTP, Secret: []byte("sealed-secret")}, []string{"h1", "h2"}); err != nil {
			t.Fatal(err)
		}
		r := mustSucceed(t, latchkey(t, environ, "", "user", "factors", "list", "u-mfa"))
		got := decode[map[string]any](t, r)
		fs, _ := got["factors"].([]any)
		if len(fs) != 1 || fs[0].(map[string]any)["kind"] != "totp" || got["recovery_codes"] != float64(2) || strings.Contains(r.stdout, "sealed") {
			t.Errorf("factors list: %s", r.stdout)
		}
		if r := latchkey(t, environ, "", "user", "factors", "reset", "u-mfa", "--factor", "no-such"); r.code == 0 {
			t.Errorf("reset of an unknown factor succeeded: %v", r)
		}
		mustSucceed(t, latchkey(t, environ, "", "user", "factors", "reset", "u-mfa"))
		if fs, _ := st.ListFactors(ctx, "u-mfa"); len(fs) != 0 {
			t.Errorf("factors after reset: %v", fs)
		}
		if n, _ := st.CountRecoveryCodes(ctx, "u-mfa"); n != 0 {
			t.Errorf("recovery codes after reset: %d", n)
		}
	})
}
