package store

import (
	"context"
	"errors"
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

// ErrNothingToRollBack means MigrateDown found no applied migration.
var ErrNothingToRollBack = errors.New("no migration is applied")

// LastApplied is the most recently applied migration, the one MigrateDown
// would roll back; ErrNothingToRollBack when none is.
func (s *Store) LastApplied(ctx context.Context) (MigrationStatus, error) {
	status, err := s.Status(ctx)
	if err != nil {
		return MigrationStatus{}, err
	}
	current, err := s.dbVersion(ctx)
	if err != nil {
		return MigrationStatus{}, err
	}
	if current == 0 {
		return MigrationStatus{}, ErrNothingToRollBack
	}
	for _, m := range status {
		if m.Version == current {
			return m, nil
		}
	}
	// Applied by a newer binary: this one has no Down section for it.
	return MigrationStatus{Version: current, Applied: true}, fmt.Errorf("migration %05d was applied by a newer latchkey; roll it back with that binary", current)
}

// MigrateDown rolls back the most recently applied migration by running
// its Down section in a transaction, and returns it.
func (s *Store) MigrateDown(ctx context.Context) (MigrationStatus, error) {
	p, err := s.migrator()
	if err != nil {
		return MigrationStatus{}, err
	}
	r, err := p.Down(ctx)
	if errors.Is(err, goose.ErrNoNextVersion) {
		return MigrationStatus{}, ErrNothingToRollBack
	}
	if err != nil {
		return MigrationStatus{}, fmt.Errorf("roll back migration: %w", err)
	}
	return MigrationStatus{Version: r.Source.Version, Name: path.Base(r.Source.Path)}, nil
}

// SchemaVersion is the newest migration applied to the database and the
// newest this binary knows. current > known means a newer binary migrated
// the database (normal during a rolling upgrade); current < known, or a gap
// reported by Pending, means the schema is behind.
func (s *Store) SchemaVersion(ctx context.Context) (current, known int64, err error) {
	current, err = s.dbVersion(ctx)
	if err != nil {
		return 0, 0, err
	}
	p, err := s.migrator()
	if err != nil {
		return 0, 0, err
	}
	src := p.ListSources()
	return current, src[len(src)-1].Version, nil
}

func (s *Store) dbVersion(ctx context.Context) (int64, error) {
	p, err := s.migrator()
	if err != nil {
		return 0, err
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}
