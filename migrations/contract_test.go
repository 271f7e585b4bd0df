package migrations_test

import (
	"io/fs"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/migrations"
)

// contracting are the statements that break the release before them,
// which still runs during a rolling upgrade (README.md, "Expand, then
// contract"): it reads and writes the old columns and tables, and inserts
// rows without the new ones.
var contracting = []struct {
	why string
	re  *regexp.Regexp
}{
	{"drops", regexp.MustCompile(`(?i)\bDROP\s+(TABLE|COLUMN|VIEW|FUNCTION|TYPE|SCHEMA)\b`)},
	{"drops a column", regexp.MustCompile(`(?i)\bALTER\s+TABLE\b.*\bDROP\s+("?\w+"?)\s*(;|,|$|CASCADE|RESTRICT)`)},
	{"renames", regexp.MustCompile(`(?i)\bRENAME\b`)},
	{"changes a type", regexp.MustCompile(`(?i)\bALTER\s+COLUMN\b.*\bTYPE\b`)},
	{"makes a column NOT NULL", regexp.MustCompile(`(?i)\bSET\s+NOT\s+NULL\b`)},
	{"adds a NOT NULL column without a default", regexp.MustCompile(`(?i)\bADD\s+(COLUMN\s+)?("?\w+"?)\s+[^;]*\bNOT\s+NULL\b`)},
	{"truncates", regexp.MustCompile(`(?i)\bTRUNCATE\b`)},
}

var (
	hasDefault = regexp.MustCompile(`(?i)\bDEFAULT\b`)
	marker     = regexp.MustCompile(`--\s*contract:\s*\S`)
)

// statement is one SQL statement with the comment lines above it.
type statement struct {
	line     int // 1-based, in the file
	comments string
	code     string
}

// statements splits an Up section on lines that end in ";". A
// StatementBegin..End block (a function body) is one statement.
func statements(up string) []statement {
	var out []statement
	cur, block := statement{}, false
	for i, l := range strings.Split(up, "\n") {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "-- +goose StatementBegin"):
			block = true
		case strings.HasPrefix(t, "-- +goose StatementEnd"):
			block = false
			out, cur = append(out, cur), statement{}
		case strings.HasPrefix(t, "--"):
			cur.comments += t + "\n"
		case t == "":
		default:
			if cur.code == "" {
				cur.line = i + 1
			}
			code, comment, _ := strings.Cut(t, "--")
			cur.code += code + " "
			if comment != "" {
				cur.comments += "--" + comment + "\n"
			}
			if !block && strings.HasSuffix(strings.TrimSpace(code), ";") {
				out, cur = append(out, cur), statement{}
			}
		}
	}
	if strings.TrimSpace(cur.code) != "" {
		out = append(out, cur)
	}
	return out
}

// violations lists the contracting statements of an Up section that carry
// no `-- contract: <why it is safe>` comment.
func violations(up string) []string {
	var out []string
	for _, s := range statements(up) {
		if marker.MatchString(s.comments) {
			continue
		}
		for _, c := range contracting {
			if !c.re.MatchString(s.code) {
				continue
			}
			if c.why == "adds a NOT NULL column without a default" && hasDefault.MatchString(s.code) {
				continue
			}
			out = append(out, c.why+": "+strings.TrimSpace(s.code))
			break
		}
	}
	return out
}

// Release N-1 still runs while release N migrates (rolling upgrade), so an
// Up may only expand the schema. A statement that drops, renames, retypes
// or tightens must say why it is safe in a `-- contract:` comment above it,
// which makes it a decision someone reviewed. PostgreSQL only: SQLite runs
// one process, so it never sees two releases at once.
func TestMigrationsOnlyExpand(t *testing.T) {
	files, err := fs.Glob(migrations.FS, "postgres/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no PostgreSQL migrations found: %v", err)
	}
	for _, f := range files {
		b, err := fs.ReadFile(migrations.FS, f)
		if err != nil {
			t.Fatal(err)
		}
		up, _ := migrations.Sections(string(b))
		for _, v := range violations(up) {
			t.Errorf("%s: the Up section %s; add `-- contract: <why release N-1 survives it>` above the statement (migrations/README.md)", path.Base(f), v)
		}
	}
}

// The check itself: each contracting form is caught, expanding ones and
// marked ones pass.
func TestContractCheck(t *testing.T) {
	for _, tc := range []struct {
		name, up string
		flagged  bool
	}{
		{"add nullable column", "ALTER TABLE clients ADD COLUMN x TEXT;", false},
		{"add defaulted not null column", "ALTER TABLE clients ADD COLUMN x TEXT NOT NULL DEFAULT '';", false},
		{"create table", "CREATE TABLE t (id TEXT NOT NULL PRIMARY KEY);", false},
		{"create index", "CREATE INDEX t_idx ON t (id);", false},
		{"drop index", "DROP INDEX t_idx;", false},
		{"backfill", "UPDATE clients SET x = '' WHERE x IS NULL;", false},
		{"drop table", "DROP TABLE t;", true},
		{"drop table if exists", "DROP TABLE IF EXISTS t;", true},
		{"drop column", "ALTER TABLE clients DROP COLUMN x;", true},
		{"drop column without the keyword", "ALTER TABLE clients DROP x;", true},
		{"drop function", "DROP FUNCTION f(TEXT);", true},
		{"rename column", "ALTER TABLE clients RENAME COLUMN x TO y;", true},
		{"rename table", "ALTER TABLE clients RENAME TO apps;", true},
		{"change a type", "ALTER TABLE clients ALTER COLUMN x TYPE BIGINT;", true},
		{"change a type, SET DATA", "ALTER TABLE clients ALTER COLUMN x SET DATA TYPE BIGINT;", true},
		{"set not null", "ALTER TABLE clients ALTER COLUMN x SET NOT NULL;", true},
		{"add not null column without default", "ALTER TABLE clients ADD COLUMN x TEXT NOT NULL;", true},
		{"truncate", "TRUNCATE t;", true},
		{"statement over lines", "ALTER TABLE clients\n    DROP COLUMN x;", true},
		{"marked", "-- contract: release 41 stopped reading x (issue 77)\nALTER TABLE clients DROP COLUMN x;", false},
		{"marked on the line", "ALTER TABLE clients DROP COLUMN x; -- contract: unused since release 41", false},
		{"empty marker", "-- contract:\nALTER TABLE clients DROP COLUMN x;", true},
		{"marker covers its statement only", "-- contract: x unused\nALTER TABLE clients DROP COLUMN x;\nDROP TABLE t;", true},
		{"drop inside a comment", "-- we never DROP TABLE here\nCREATE TABLE t (id TEXT);", false},
		{"function body", "-- +goose StatementBegin\nCREATE FUNCTION f() RETURNS INTEGER LANGUAGE plpgsql AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$;\n-- +goose StatementEnd\nDROP TABLE t;", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := violations(tc.up)
			if got := len(v) > 0; got != tc.flagged {
				t.Fatalf("flagged = %v (%v), want %v", got, v, tc.flagged)
			}
		})
	}
}

// Losses names the tables and columns a Down section deletes.
func TestLosses(t *testing.T) {
	down, err := migrations.Down("postgres", 22)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(migrations.Losses(down), ", ")
	if want := "column clients.client_uri, column clients.logo_uri, table scopes"; got != want {
		t.Fatalf("Losses(00022 down) = %q, want %q", got, want)
	}
	down, err = migrations.Down("sqlite", 14)
	if err != nil {
		t.Fatal(err)
	}
	if l := migrations.Losses(down); len(l) != 0 {
		t.Fatalf("00014 drops an index only, Losses = %v", l)
	}
}
