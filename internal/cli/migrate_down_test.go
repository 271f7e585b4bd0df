package cli

import (
	"database/sql"
	"strings"
	"testing"

	_ "github.com/glebarez/go-sqlite"  // database/sql driver "sqlite"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// `migrate down` without --yes only says what it would do; with --yes it
// rolls back the last migration alone, which `migrate up` applies again.
func TestMigrateDown(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		environ := migrated(t, b)
		status := mustSucceed(t, latchkey(t, environ, "", "migrate", "status")).stdout
		lines := strings.Split(strings.TrimSpace(status), "\n")
		last := strings.Fields(lines[len(lines)-1])[0]

		dry := mustSucceed(t, latchkey(t, environ, "", "migrate", "down"))
		for _, want := range []string{"would roll back " + last, "this deletes ", "--yes"} {
			if !strings.Contains(dry.stdout, want) {
				t.Errorf("dry run does not say %q: %s", want, dry.stdout)
			}
		}
		if st := migrationStates(t, mustSucceed(t, latchkey(t, environ, "", "migrate", "status")).stdout); !allEqual(st, "applied") {
			t.Fatalf("the dry run changed the schema: %v", st)
		}

		done := mustSucceed(t, latchkey(t, environ, "", "migrate", "down", "--yes"))
		if !strings.HasPrefix(done.stdout, "rolled back "+last) {
			t.Fatalf("down --yes: %s", done.stdout)
		}
		st := migrationStates(t, mustSucceed(t, latchkey(t, environ, "", "migrate", "status")).stdout)
		if st[len(st)-1] != "pending" || !allEqual(st[:len(st)-1], "applied") {
			t.Fatalf("after down --yes only the last migration should be pending: %v", st)
		}
		// The binary that needs the rolled-back migration refuses to serve.
		mustFail(t, latchkey(t, environ, "", "client", "list"), "migrate up")
		up := mustSucceed(t, latchkey(t, environ, "", "migrate", "up"))
		if strings.TrimSpace(up.stdout) != "applied "+last+" "+strings.Fields(lines[len(lines)-1])[1] {
			t.Fatalf("migrate up after down: %q", up.stdout)
		}
	})
}

// On an empty database there is nothing to roll back, and that is not an error.
func TestMigrateDownNothingApplied(t *testing.T) {
	r := mustSucceed(t, latchkey(t, []string{"LATCHKEY_DATABASE_URL=" + storetest.SQLiteURL(t)}, "", "migrate", "down", "--yes"))
	if !strings.Contains(r.stdout, "nothing to roll back") {
		t.Fatalf("down on an empty database: %s", r.stdout)
	}
}

// A migration applied by a newer binary has no Down section here: down
// refuses it and names the way out.
func TestMigrateDownRefusesUnknownMigration(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		environ := migrated(t, b)
		dialect, source, err := config.ParseDatabaseURL(strings.TrimPrefix(environ[0], "LATCHKEY_DATABASE_URL="))
		if err != nil {
			t.Fatal(err)
		}
		driver, dsn := "pgx", source
		if dialect == store.DialectSQLite {
			driver, dsn = "sqlite", "file:"+source
		}
		db, err := sql.Open(driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec("INSERT INTO goose_db_version (version_id, is_applied) VALUES (99999, true)"); err != nil {
			t.Fatal(err)
		}
		mustFail(t, latchkey(t, environ, "", "migrate", "down", "--yes"), "99999 was applied by a newer latchkey")
	})
}
