package doctor_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite"  // database/sql driver "sqlite"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/doctor"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

const secret = "doctor-test-secret-0123456789-0123456789"

// deployment is a migrated database with its first keys, and a valid
// configuration naming it.
func deployment(t *testing.T, b storetest.Backend) *config.Config {
	t.Helper()
	u := b.URL(t)
	st := storetest.Open(t, u, store.Options{})
	cfg, err := config.Load(nil, []string{"LATCHKEY_DATABASE_URL=" + u, "LATCHKEY_SECRET=" + secret, "LATCHKEY_ADMIN_TOKEN=doctor-admin-token-0123456789", "LATCHKEY_ISSUER=http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.New(context.Background(), st, cfg.SystemSecrets(), keys.Options{
		Alg: cfg.SigningAlg, RotationPeriod: cfg.KeyRotationPeriod, PrepublishPeriod: cfg.KeyPrepublishPeriod, TokenTTL: cfg.AccessTokenTTL,
	}); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func check(t *testing.T, rep doctor.Report, name string) doctor.Check {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s check: %+v", name, rep.Checks)
	return doctor.Check{}
}

// A machine whose clock is more than 2 s from the database's is warned
// about; within it, not. SQLite shares the process's clock.
func TestClockSkew(t *testing.T) {
	cfg := deployment(t, storetest.Backend{Name: "postgres", URL: storetest.PostgresURL})
	for _, tc := range []struct {
		offset time.Duration
		want   doctor.Status
	}{{0, doctor.OK}, {5 * time.Second, doctor.Warn}, {-5 * time.Second, doctor.Warn}} {
		rep := doctor.Run(context.Background(), cfg, nil, doctor.Options{Now: func() time.Time { return time.Now().Add(tc.offset) }})
		if c := check(t, rep, "clock"); c.Status != tc.want {
			t.Errorf("clock %s off: %s %q, want %s", tc.offset, c.Status, c.Message, tc.want)
		}
	}
}

// A signing key past its rotation period with no successor (no instance
// maintained the keys) is warned about.
func TestRotationOverdue(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		cfg := deployment(t, b)
		rep := doctor.Run(context.Background(), cfg, nil, doctor.Options{})
		if c := check(t, rep, "signing keys"); c.Status != doctor.OK {
			t.Fatalf("fresh keys: %s %q", c.Status, c.Message)
		}
		later := func() time.Time { return time.Now().Add(cfg.KeyRotationPeriod + time.Hour) }
		rep = doctor.Run(context.Background(), cfg, nil, doctor.Options{Now: later})
		if c := check(t, rep, "signing keys"); c.Status != doctor.Warn || c.Fix == "" {
			t.Fatalf("a rotation period later: %s %q, want warn", c.Status, c.Message)
		}
		if !rep.OK {
			t.Fatal("an overdue rotation is a warning, not a failure")
		}
	})
}

// A database a newer release migrated (a version this binary does not
// know) is ahead: a warning, since old and new run side by side during a
// rolling upgrade.
func TestSchemaAhead(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		cfg := deployment(t, b)
		dialect, source, err := config.ParseDatabaseURL(cfg.DatabaseURL)
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
		rep := doctor.Run(context.Background(), cfg, nil, doctor.Options{})
		if c := check(t, rep, "schema"); c.Status != doctor.Warn || !strings.Contains(c.Message, "ahead of this binary: at 99999") {
			t.Fatalf("schema: %s %q, want warn ahead", c.Status, c.Message)
		}
		if !rep.OK {
			t.Fatalf("ahead is a warning: %+v", rep.Checks)
		}
	})
}
