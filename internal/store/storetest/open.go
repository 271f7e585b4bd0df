// Package storetest is the one storage conformance suite (RunConformance)
// and the helpers that give tests a real, migrated database: SQLite always,
// PostgreSQL when LATCHKEY_TEST_POSTGRES_URL names a server, and PostgreSQL
// through PgBouncer when LATCHKEY_TEST_PGBOUNCER is set too (pgbouncer.go).
// Each PostgreSQL test gets its own schema, so tests run in parallel without
// seeing each other's rows.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver for schema set-up
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/store"
)

// PostgresEnv names the PostgreSQL server tests use.
const PostgresEnv = "LATCHKEY_TEST_POSTGRES_URL"

// Backend is a database the tests run against.
type Backend struct {
	Name string
	// URL returns a LATCHKEY_DATABASE_URL for a fresh, empty database.
	URL func(t testing.TB) string
}

// Backends lists SQLite and, when configured, PostgreSQL, and PostgreSQL
// through PgBouncer in transaction mode (see Main).
func Backends() []Backend {
	b := []Backend{{Name: "sqlite", URL: SQLiteURL}}
	if os.Getenv(PostgresEnv) != "" {
		b = append(b, Backend{Name: "postgres", URL: PostgresURL})
	}
	if pgbouncerOn() {
		b = append(b, Backend{Name: "pgbouncer", URL: PgBouncerURL})
	}
	return b
}

// ForEachBackend runs fn as a subtest per backend. Without PostgreSQL its
// subtest still runs and skips, so `go test -v` shows SKIP, not a log line
// nobody reads.
func ForEachBackend(t *testing.T, fn func(t *testing.T, b Backend)) {
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) { fn(t, b) })
	}
	if os.Getenv(PostgresEnv) == "" {
		t.Run("postgres", func(t *testing.T) {
			t.Skipf("PostgreSQL not configured: set %s to run against it", PostgresEnv)
		})
	}
}

// SQLiteURL is a new SQLite file in the test's temporary directory; a file
// rather than :memory: so WAL, locking and the busy timeout are real.
func SQLiteURL(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "latchkey.db")
}

// PostgresURL creates a schema of its own on the test server and returns a
// URL whose search_path points at it. The schema is dropped after the test.
func PostgresURL(t testing.TB) string {
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Skipf("%s is not set", PostgresEnv)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open %s: %v", PostgresEnv, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() { _, _ = db.Exec("DROP SCHEMA " + schema + " CASCADE") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", PostgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Open opens and migrates the database at databaseURL, closing it after the test.
func Open(t testing.TB, databaseURL string, opts store.Options) *store.Store {
	t.Helper()
	ctx := context.Background()
	dialect, source, err := config.ParseDatabaseURL(databaseURL)
	if err != nil {
		t.Fatalf("database URL %s: %v", databaseURL, err)
	}
	st, err := store.Open(ctx, dialect, source, opts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return st
}

// New is Open on a fresh database of the backend.
func New(t testing.TB, b Backend) *store.Store {
	return Open(t, b.URL(t), store.Options{})
}
