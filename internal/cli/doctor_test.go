package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/doctor"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// fakeIssuer answers the discovery document with the issuer *claim, so a
// test can make it match the configuration or not.
func fakeIssuer(t *testing.T, claim *string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": *claim})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// doctorReport runs `latchkey doctor --json` and decodes its report.
func doctorReport(t *testing.T, environ []string) (int, map[string]doctor.Check) {
	t.Helper()
	r := latchkey(t, environ, "", "doctor", "--json")
	var rep doctor.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("doctor --json is not a report (%v): %v", err, r)
	}
	if rep.OK != (r.code == 0) {
		t.Fatalf("report ok = %v but exit code %d", rep.OK, r.code)
	}
	checks := map[string]doctor.Check{}
	for _, c := range rep.Checks {
		checks[c.Name] = c
	}
	return r.code, checks
}

func wantCheck(t *testing.T, checks map[string]doctor.Check, name string, status doctor.Status, msgHas string) {
	t.Helper()
	c, ok := checks[name]
	if !ok {
		t.Fatalf("no %q check in %v", name, checks)
	}
	if c.Status != status || !strings.Contains(c.Message, msgHas) {
		t.Fatalf("%s: %s %q, want %s mentioning %q", name, c.Status, c.Message, status, msgHas)
	}
	if (status == doctor.Warn || status == doctor.Fail) && c.Fix == "" {
		t.Errorf("%s is %s but says nothing to do", name, status)
	}
}

// A healthy deployment passes every check; then each thing broken in turn
// fails (or warns on) its own check, and the exit code follows.
func TestDoctor(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		claim := ""
		issuer := fakeIssuer(t, &claim)
		claim = issuer
		environ := append(migrated(t, b), "LATCHKEY_ISSUER="+issuer)
		mustSucceed(t, latchkey(t, environ, "", "keys", "list")) // makes the first keys, as serve does

		code, checks := doctorReport(t, environ)
		if code != 0 {
			t.Fatalf("healthy deployment: exit %d: %v", code, checks)
		}
		for _, name := range []string{"configuration", "database", "schema", "clock", "signing keys", "issuer"} {
			wantCheck(t, checks, name, doctor.OK, "")
		}
		wantCheck(t, checks, "signing keys", doctor.OK, "ES256 signs with")

		t.Run("issuer mismatch warns", func(t *testing.T) {
			claim = "https://elsewhere.example"
			defer func() { claim = issuer }()
			code, checks := doctorReport(t, environ)
			wantCheck(t, checks, "issuer", doctor.Warn, `answers issuer "https://elsewhere.example"`)
			if code != 0 {
				t.Fatalf("a warning alone must exit 0, got %d", code)
			}
		})
		t.Run("issuer unreachable warns", func(t *testing.T) {
			env := append(environ[:len(environ):len(environ)], "LATCHKEY_ISSUER=http://127.0.0.1:1")
			code, checks := doctorReport(t, env)
			wantCheck(t, checks, "issuer", doctor.Warn, "GET http://127.0.0.1:1/.well-known/openid-configuration")
			if code != 0 {
				t.Fatalf("exit %d", code)
			}
		})
		t.Run("bad secret fails", func(t *testing.T) {
			env := append(environ[:len(environ):len(environ)], "LATCHKEY_SECRET=another-secret-0123456789-0123456789")
			code, checks := doctorReport(t, env)
			wantCheck(t, checks, "signing keys", doctor.Fail, "LATCHKEY_SECRET does not open")
			if code != 1 {
				t.Fatalf("exit %d, want 1", code)
			}
			// The secret rotation form "new,old" opens them: a warning that
			// the next maintenance re-seals them, not a failure.
			env = append(environ[:len(environ):len(environ)], "LATCHKEY_SECRET=another-secret-0123456789-0123456789,"+testSecret)
			_, checks = doctorReport(t, env)
			wantCheck(t, checks, "signing keys", doctor.Warn, "older secret")
		})
		t.Run("invalid configuration fails", func(t *testing.T) {
			env := append(environ[:len(environ):len(environ)], "LATCHKEY_SECRET=short")
			code, checks := doctorReport(t, env)
			wantCheck(t, checks, "configuration", doctor.Fail, "LATCHKEY_SECRET")
			wantCheck(t, checks, "signing keys", doctor.Skip, "")
			if code != 1 {
				t.Fatalf("exit %d, want 1", code)
			}
		})
		// Last: it changes the schema.
		t.Run("schema behind fails", func(t *testing.T) {
			mustSucceed(t, latchkey(t, environ, "", "migrate", "down", "--yes"))
			code, checks := doctorReport(t, environ)
			wantCheck(t, checks, "schema", doctor.Fail, "behind this binary")
			if !strings.Contains(checks["schema"].Fix, "migrate up") {
				t.Errorf("schema fix does not say migrate up: %q", checks["schema"].Fix)
			}
			if code != 1 {
				t.Fatalf("exit %d, want 1", code)
			}
		})
	})
}

// An unreachable database fails, and the checks that need it are skipped
// rather than reported as failures of their own.
func TestDoctorUnreachableDatabase(t *testing.T) {
	for name, url := range map[string]string{
		"postgres":            "postgres://postgres@127.0.0.1:1/latchkey?sslmode=disable&connect_timeout=2",
		"sqlite missing file": "sqlite://" + filepath.Join(t.TempDir(), "nowhere.db"),
	} {
		t.Run(name, func(t *testing.T) {
			env := []string{"LATCHKEY_DATABASE_URL=" + url, "LATCHKEY_SECRET=" + testSecret, "LATCHKEY_ADMIN_TOKEN=" + testAdminToken, "LATCHKEY_ISSUER=http://127.0.0.1:1"}
			code, checks := doctorReport(t, env)
			wantCheck(t, checks, "database", doctor.Fail, "")
			for _, n := range []string{"schema", "clock", "signing keys"} {
				wantCheck(t, checks, n, doctor.Skip, "needs the database")
			}
			if code != 1 {
				t.Fatalf("exit %d, want 1", code)
			}
		})
	}
	// doctor reports a missing SQLite file; it must not create it.
	path := filepath.Join(t.TempDir(), "absent.db")
	latchkey(t, []string{"LATCHKEY_DATABASE_URL=sqlite://" + path}, "", "doctor")
	if m, _ := filepath.Glob(path + "*"); len(m) != 0 {
		t.Fatalf("doctor created %v", m)
	}
}

// The text output names each check with its status and the fix.
func TestDoctorText(t *testing.T) {
	r := latchkey(t, []string{"LATCHKEY_DATABASE_URL=sqlite://" + filepath.Join(t.TempDir(), "x.db")}, "", "doctor")
	mustFail(t, r, "a check failed")
	for _, want := range []string{"fail  configuration", "fail  database", "skip  schema", "→ "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("text output lacks %q:\n%s", want, r.stdout)
		}
	}
}

// An empty database is behind, and the key check waits for the tables.
func TestDoctorEmptyDatabase(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		environ := baseEnv(t, b)
		if path, ok := strings.CutPrefix(environ[0], "LATCHKEY_DATABASE_URL=sqlite://"); ok {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		code, checks := doctorReport(t, append(environ, "LATCHKEY_ISSUER=http://127.0.0.1:1"))
		wantCheck(t, checks, "database", doctor.OK, "")
		wantCheck(t, checks, "schema", doctor.Fail, "behind this binary: at 00000")
		wantCheck(t, checks, "signing keys", doctor.Skip, "migrated schema")
		if code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
	})
}
