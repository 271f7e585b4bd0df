package store

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// Through PgBouncer in transaction mode with pgx's default exec mode, reads
// fail with `prepared statement "stmtcache_…" does not exist` or `already
// exists`; the error then says which URL parameter fixes it.
func TestPreparedStatementErrorsNameTheFix(t *testing.T) {
	for _, code := range []string{"26000", "42P05"} {
		err := translate(&pgconn.PgError{Code: code, Message: `prepared statement "stmtcache_1" does not exist`})
		if !strings.Contains(err.Error(), "default_query_exec_mode=exec") {
			t.Errorf("%s: %v", code, err)
		}
	}
}
