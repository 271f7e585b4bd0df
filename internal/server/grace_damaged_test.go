package server_test

import (
	"net/http"
	"strings"
	"testing"

	_ "github.com/glebarez/go-sqlite"  // database/sql driver "sqlite", to damage a row
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// A rotated token presented again inside the grace period gets the
// successor sealed under it. When that seal cannot be opened (a damaged
// row: the token's own HMAC checked out), the answer is invalid_grant with
// an error in the log, not a silent "reuse" that would revoke the person's
// grant, and not a 500.
func TestGraceSuccessorUnreadable(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		c, first := refreshChain(t, h)
		old := first["refresh_token"].(string)
		resp, next := refresh(h, c, old)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("refresh: %d %v", resp.StatusCode, next)
		}
		damageSuccessors(t, h.cfg.DatabaseURL)

		resp, m := refresh(h, c, old)
		wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")
		if !strings.Contains(h.logs.String(), "sealed refresh successor cannot be opened") {
			t.Error("no error logged for the unreadable successor")
		}
		if strings.Contains(h.logs.String(), "refresh token reuse detected") {
			t.Error("an unreadable successor was treated as reuse")
		}
		// The grant was not revoked: the successor still refreshes.
		if resp, m := refresh(h, c, next["refresh_token"].(string)); resp.StatusCode != http.StatusOK {
			t.Errorf("the successor no longer refreshes: %d %v", resp.StatusCode, m)
		}
	})
}

// damageSuccessors overwrites every sealed successor through a connection
// of its own, as a damaged backup or a bad manual edit would.
func damageSuccessors(t *testing.T, databaseURL string) {
	t.Helper()
	if execSQL(t, databaseURL, "UPDATE refresh_tokens SET successor = ? WHERE successor IS NOT NULL", []byte("not a sealed token")) == 0 {
		t.Fatal("no sealed successor to damage")
	}
}
