package store_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"testing"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// Every migration's Down section works: all of them up, then down one by
// one to zero (leaving no table, index or function behind), then up again
// to the same schema. `latchkey migrate down` runs these sections.
func TestMigrateDownToZeroAndUp(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		u := b.URL(t)
		dialect, source, err := config.ParseDatabaseURL(u)
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.Open(ctx, dialect, source, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		raw := rawDB(t, dialect, source)
		if _, err := st.LastApplied(ctx); !errors.Is(err, store.ErrNothingToRollBack) {
			t.Fatalf("LastApplied on an empty database: %v, want ErrNothingToRollBack", err)
		}
		applied, err := st.Migrate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		full := schemaObjects(t, raw, dialect)
		if len(full) == 0 {
			t.Fatal("the migrated schema reads as empty: the listing query is wrong")
		}
		current, known, err := st.SchemaVersion(ctx)
		if err != nil || current != known || known != applied[len(applied)-1].Version {
			t.Fatalf("SchemaVersion = %d, %d, %v; want both %d", current, known, err, applied[len(applied)-1].Version)
		}

		for i := len(applied) - 1; i >= 0; i-- {
			last, err := st.LastApplied(ctx)
			if err != nil || last.Version != applied[i].Version {
				t.Fatalf("LastApplied = %+v, %v; want %05d", last, err, applied[i].Version)
			}
			down, err := st.MigrateDown(ctx)
			if err != nil {
				t.Fatalf("down %05d %s: %v", applied[i].Version, applied[i].Name, err)
			}
			if down.Version != applied[i].Version {
				t.Fatalf("down rolled back %05d, want %05d", down.Version, applied[i].Version)
			}
			if pending, err := st.Pending(ctx); err != nil || !pending {
				t.Fatalf("after down %05d: Pending = %v, %v", down.Version, pending, err)
			}
		}
		if left := schemaObjects(t, raw, dialect); len(left) != 0 {
			t.Fatalf("down to zero left behind: %v", left)
		}
		if _, err := st.MigrateDown(ctx); !errors.Is(err, store.ErrNothingToRollBack) {
			t.Fatalf("down at zero: %v, want ErrNothingToRollBack", err)
		}

		again, err := st.Migrate(ctx)
		if err != nil {
			t.Fatalf("up again after down to zero: %v", err)
		}
		if len(again) != len(applied) {
			t.Fatalf("up again applied %d migrations, first up %d", len(again), len(applied))
		}
		if got := schemaObjects(t, raw, dialect); !slices.Equal(got, full) {
			t.Fatalf("schema after down and up differs from the first up:\nfirst: %v\nagain: %v", full, got)
		}
	})
}

// rawDB is a database/sql handle on the same database, to list its schema.
func rawDB(t *testing.T, dialect, source string) *sql.DB {
	t.Helper()
	driver, dsn := "pgx", source
	if dialect == store.DialectSQLite {
		driver, dsn = "sqlite", "file:"+source+"?mode=ro"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// schemaObjects lists every table column, index and function of the
// schema apart from goose's version table, sorted.
func schemaObjects(t *testing.T, db *sql.DB, dialect string) []string {
	t.Helper()
	var out []string
	if dialect == store.DialectSQLite {
		out = queryStrings(t, db, `SELECT m.type || ' ' || m.name || ' ' || COALESCE(c.name, '') || ' ' || COALESCE(c.type, '')
			FROM sqlite_master m LEFT JOIN pragma_table_info(m.name) c ON m.type = 'table'
			WHERE m.name NOT LIKE 'sqlite_%' AND m.tbl_name <> 'goose_db_version'`)
	} else {
		out = queryStrings(t, db, `SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || COALESCE(column_default, '')
			FROM information_schema.columns WHERE table_schema = current_schema() AND table_name <> 'goose_db_version'
			UNION ALL SELECT 'index ' || indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename <> 'goose_db_version'
			UNION ALL SELECT 'function ' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = current_schema()`)
	}
	slices.Sort(out)
	return out
}
