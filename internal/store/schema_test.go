package store_test

import (
	"database/sql"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	_ "github.com/glebarez/go-sqlite"  // database/sql driver "sqlite", to read the schema
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// schema is what the parity test compares: per table, each column's type
// class and nullability; and every index by name, with its table.
type schema struct {
	columns map[string]map[string]string // table -> column -> "class null|not null"
	indexes map[string]string            // index name -> table
}

// typeClass maps a dialect's column type to what the store reads from it.
func typeClass(t string) string {
	switch t = strings.ToLower(t); t {
	case "text":
		return "text"
	case "bytea", "blob":
		return "bytes"
	case "timestamp with time zone", "timestamptz", "datetime":
		return "time"
	case "boolean":
		return "bool"
	case "integer", "bigint", "smallint":
		return "int"
	}
	return "unknown " + t
}

func nullability(notNull bool) string {
	if notNull {
		return "not null"
	}
	return "null"
}

// The PostgreSQL and SQLite migrations build the same schema: the same
// tables, the same columns with compatible types and nullability, the same
// indexes by name. A column or an index added to one dialect only fails here.
func TestSchemaParity(t *testing.T) {
	if os.Getenv(storetest.PostgresEnv) == "" {
		t.Skipf("PostgreSQL not configured: set %s to compare the two schemas", storetest.PostgresEnv)
	}
	lite := sqliteSchema(t)
	pg := postgresSchema(t)
	// A query that read nothing would make any two schemas equal.
	for name, sc := range map[string]schema{"SQLite": lite, "PostgreSQL": pg} {
		if _, ok := sc.columns["refresh_tokens"]["client_id"]; !ok || sc.indexes["refresh_tokens_client_id_idx"] == "" {
			t.Fatalf("the %s schema read has no refresh_tokens.client_id or its index: %d tables, %d indexes", name, len(sc.columns), len(sc.indexes))
		}
	}
	for _, table := range slices.Sorted(maps.Keys(union(lite.columns, pg.columns))) {
		lc, pc := lite.columns[table], pg.columns[table]
		if lc == nil || pc == nil {
			t.Errorf("table %s: in SQLite %v, in PostgreSQL %v", table, lc != nil, pc != nil)
			continue
		}
		for _, col := range slices.Sorted(maps.Keys(union(lc, pc))) {
			if lc[col] != pc[col] {
				t.Errorf("%s.%s: SQLite %q, PostgreSQL %q", table, col, lc[col], pc[col])
			}
		}
	}
	for _, idx := range slices.Sorted(maps.Keys(union(lite.indexes, pg.indexes))) {
		if lite.indexes[idx] != pg.indexes[idx] {
			t.Errorf("index %s: on SQLite table %q, on PostgreSQL table %q", idx, lite.indexes[idx], pg.indexes[idx])
		}
	}
}

func union[V any](a, b map[string]V) map[string]V {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

// ignoredTable is goose's bookkeeping, not Latchkey's schema.
const ignoredTable = "goose_db_version"

func sqliteSchema(t *testing.T) schema {
	path := strings.TrimPrefix(storetest.SQLiteURL(t), "sqlite://")
	storetest.Open(t, "sqlite://"+path, store.Options{})
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := schema{columns: map[string]map[string]string{}, indexes: map[string]string{}}
	tables := queryStrings(t, db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> ?", ignoredTable)
	for _, table := range tables {
		s.columns[table] = map[string]string{}
		// The table name comes from sqlite_master, not from input.
		rows, err := db.Query(fmt.Sprintf("SELECT name, type, \"notnull\", pk FROM pragma_table_info('%s')", table))
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var name, typ string
			var notNull, pk int
			if err := rows.Scan(&name, &typ, &notNull, &pk); err != nil {
				t.Fatal(err)
			}
			// A primary key column is NOT NULL on PostgreSQL whatever the
			// declaration says; SQLite lets a TEXT key be null unless told.
			s.columns[table][name] = typeClass(typ) + " " + nullability(notNull == 1 || pk > 0)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	rows, err := db.Query("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex_%'")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, table string
		if err := rows.Scan(&name, &table); err != nil {
			t.Fatal(err)
		}
		s.indexes[name] = table
	}
	return s
}

func postgresSchema(t *testing.T) schema {
	u := storetest.PostgresURL(t)
	storetest.Open(t, u, store.Options{})
	db, err := sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := schema{columns: map[string]map[string]string{}, indexes: map[string]string{}}
	rows, err := db.Query(`SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name <> $1`, ignoredTable)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var table, name, typ, nullable string
		if err := rows.Scan(&table, &name, &typ, &nullable); err != nil {
			t.Fatal(err)
		}
		if s.columns[table] == nil {
			s.columns[table] = map[string]string{}
		}
		s.columns[table][name] = typeClass(typ) + " " + nullability(nullable == "NO")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	// Primary keys and UNIQUE constraints are indexes PostgreSQL names
	// itself (SQLite's sqlite_autoindex_*): only CREATE INDEX names count.
	rows, err = db.Query(`SELECT i.indexname, i.tablename FROM pg_indexes i
WHERE i.schemaname = current_schema() AND i.tablename <> $1
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname AND c.connamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()))`, ignoredTable)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, table string
		if err := rows.Scan(&name, &table); err != nil {
			t.Fatal(err)
		}
		s.indexes[name] = table
	}
	return s
}

func queryStrings(t *testing.T, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
