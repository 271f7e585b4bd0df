package store

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"time"

	"github.com/latchkey/latchkey/migrations"
	"github.com/pressly/goose/v3"
)

// MigrationStatus is one row of `latchkey migrate status`.
type MigrationStatus struct {
	Version   int64     `json:"version"`
	Name      string    `json:"name"`
	Applied   bool      `json:"applied"`
	AppliedAt time.Time `json:"applied_at,omitzero"`
}

func (s *Store) migrator() (*goose.Provider, error) {
	sqlDB, err := s.gdb.DB()
	if err != nil {
		return nil, err
	}
	dir, err := fs.Sub(migrations.FS, s.dialect)
	if err != nil {
		return nil, err
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	dialect := goose.DialectSQLite3
	if s.dialect == DialectPostgres {
		dialect = goose.DialectPostgres
		// Several instances may start at once with --migrate: an advisory
		// lock makes exactly one of them apply the migrations
		// (migratelock.go).
		opts = append(opts, goose.WithLocker(&xactMigrationLock{}))
	}
	p, err := goose.NewProvider(dialect, sqlDB, dir, opts...)
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return p, nil
}

// Migrate applies every pending migration, each in its own transaction, and
// returns the versions it applied.
func (s *Store) Migrate(ctx context.Context) ([]MigrationStatus, error) {
	p, err := s.migrator()
	if err != nil {
		return nil, err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("apply migrations: %w", err)
	}
	applied := make([]MigrationStatus, 0, len(results))
	for _, r := range results {
		applied = append(applied, MigrationStatus{Version: r.Source.Version, Name: path.Base(r.Source.Path), Applied: true})
	}
	return applied, nil
}

// Status lists every known migration and whether it has been applied.
func (s *Store) Status(ctx context.Context) ([]MigrationStatus, error) {
	p, err := s.migrator()
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("read migration status: %w", err)
	}
	out := make([]MigrationStatus, 0, len(st))
	for _, m := range st {
		out = append(out, MigrationStatus{
			Version:   m.Source.Version,
			Name:      path.Base(m.Source.Path),
			Applied:   m.State == goose.StateApplied,
			AppliedAt: m.AppliedAt.UTC(),
		})
	}
	return out, nil
}

// Pending reports whether the schema is behind this binary.
func (s *Store) Pending(ctx context.Context) (bool, error) {
	p, err := s.migrator()
	if err != nil {
		return false, err
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return false, fmt.Errorf("check migrations: %w", err)
	}
	return pending, nil
}
