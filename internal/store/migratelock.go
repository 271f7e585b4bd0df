package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/pressly/goose/v3/lock"
)

// xactMigrationLock makes exactly one of several instances started at once
// with --migrate apply the migrations. goose's own PostgreSQL locker takes
// a session-level advisory lock and releases it in a later statement: behind
// a pooler in transaction mode (PgBouncer) those two statements may run on
// different server connections, so the unlock fails and the lock stays with
// a pooled connection for good. Here the lock is transaction-scoped, taken
// in a transaction held open on one pool connection until the migrations
// are done: a pooler keeps a transaction on one server connection, and the
// lock goes when the transaction ends, including when the process dies.
// The key is goose's, so an older instance taking the session lock
// excludes this one, and the other way round.
type xactMigrationLock struct {
	mu sync.Mutex
	tx *sql.Tx
}

var _ lock.Locker = (*xactMigrationLock)(nil)

func (l *xactMigrationLock) Lock(ctx context.Context, db *sql.DB) error {
	// Not ctx: database/sql rolls a transaction back when its context
	// ends, and this one must last until Unlock.
	tx, err := db.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return fmt.Errorf("begin migration lock: %w", err)
	}
	// Waits while another instance migrates.
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", lock.DefaultLockID); err != nil {
		_ = tx.Rollback()
		return fmt.Errorf("take migration lock: %w", err)
	}
	l.mu.Lock()
	l.tx = tx
	l.mu.Unlock()
	return nil
}

func (l *xactMigrationLock) Unlock(context.Context, *sql.DB) error {
	l.mu.Lock()
	tx := l.tx
	l.tx = nil
	l.mu.Unlock()
	if tx == nil {
		return errors.New("release migration lock: not held")
	}
	// Rollback: the transaction did nothing but hold the lock.
	if err := tx.Rollback(); err != nil {
		return fmt.Errorf("release migration lock: %w", err)
	}
	return nil
}
