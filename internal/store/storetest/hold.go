package storetest

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite" // database/sql driver for holding SQLite's write lock
)

// Hold is a lock held from a connection of its own, so that a test can stop
// the server's statements in the middle of a transaction at a point it
// chooses, and release them when it wants.
type Hold struct {
	db   *sql.DB
	conn *sql.Conn
	// PID is the PostgreSQL backend holding the lock (0 on SQLite).
	PID int
}

// HoldRow takes a lock that the next write touching the row blocks on. On
// PostgreSQL it is SELECT ... FOR UPDATE of the row whose key column equals
// id (an insert referencing it by foreign key waits for it); on SQLite, with
// one writer, it is the write lock of the whole database (BEGIN IMMEDIATE).
// The lock is released by Release or at the end of the test.
func HoldRow(t testing.TB, databaseURL, table, key, id string) *Hold {
	t.Helper()
	ctx := context.Background()
	driver, dsn := "pgx", databaseURL
	if path, ok := strings.CutPrefix(databaseURL, "sqlite://"); ok {
		driver, dsn = "sqlite", path
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatalf("open %s: %v", driver, err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	h := &Hold{db: db, conn: conn}
	t.Cleanup(h.Release)
	if driver == "sqlite" {
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			t.Fatalf("take the write lock: %v", err)
		}
		return h
	}
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatalf("begin: %v", err)
	}
	// table and key are the test's own constants, never input.
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT 1 FROM "+table+" WHERE "+key+" = $1 FOR UPDATE", id).Scan(&n); err != nil {
		t.Fatalf("lock %s %s: %v", table, id, err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&h.PID); err != nil {
		t.Fatalf("backend pid: %v", err)
	}
	return h
}

// Release rolls the holding transaction back; again is a no-op.
func (h *Hold) Release() {
	if h.conn == nil {
		return
	}
	_, _ = h.conn.ExecContext(context.Background(), "ROLLBACK")
	_ = h.conn.Close()
	_ = h.db.Close()
	h.conn = nil
}

// WaitBlockedBy waits until a PostgreSQL backend is waiting for a lock that
// pid holds, and returns it; it gives up when done is closed (the awaited
// statement finished without waiting) or after timeout. It polls
// pg_blocking_pids: the test waits for a state of the database, never for
// time to pass.
func WaitBlockedBy(t testing.TB, databaseURL string, pid int, done <-chan struct{}, timeout time.Duration) (int, bool) {
	t.Helper()
	db, err := sql.Open("pgx", databaseURL)
	if err != nil {
		t.Fatalf("open pgx: %v", err)
	}
	defer db.Close()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for {
		var blocked int
		err := db.QueryRow("SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)) LIMIT 1", pid).Scan(&blocked)
		if err == nil {
			return blocked, true
		}
		if !errors.Is(err, sql.ErrNoRows) {
			t.Fatalf("pg_blocking_pids: %v", err)
		}
		select {
		case <-done:
			return 0, false
		case <-deadline:
			t.Fatalf("no backend waited on pid %d within %s", pid, timeout)
		case <-tick.C:
		}
	}
}
