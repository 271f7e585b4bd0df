package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// What a failover shows the store, each an ErrUnavailable (503 with
// Retry-After, never 500). TestFailover met the closed connection: a
// transaction whose connection the driver closed when the primary was
// killed failed at COMMIT with "conn closed", and the token endpoint
// answered 500.
func TestFailoverErrorsAreUnavailable(t *testing.T) {
	for name, err := range map[string]error{
		"connection closed by the driver": fmt.Errorf("commit: %w", pgconn.ErrConnClosed),
		"server killed (immediate stop)":  &pgconn.PgError{Code: "57P01"},
		"server crashed":                  &pgconn.PgError{Code: "57P02"},
		"server starting (promotion)":     &pgconn.PgError{Code: "57P03"},
		"standby refusing a write":        &pgconn.PgError{Code: "25006"},
	} {
		if got := translate(err); !errors.Is(got, ErrUnavailable) {
			t.Errorf("%s: %v, want ErrUnavailable", name, got)
		}
	}
	if got := translate(&pgconn.PgError{Code: "23502"}); errors.Is(got, ErrUnavailable) {
		t.Errorf("a not-null violation is a bug, not an outage: %v", got)
	}
}
