package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/ory/fosite/storage"
	"gorm.io/gorm"
)

var _ storage.Transactional = (*Store)(nil)

type txKey struct{}

// txState is the transaction a context carries. Nested BeginTX calls share
// the outermost transaction: only the outermost Commit commits, and a nested
// Rollback dooms the whole transaction.
type txState struct {
	tx     *gorm.DB
	root   *txState
	done   bool
	doomed bool
}

// ErrNoTransaction is returned by Commit or Rollback on a context that
// carries no open transaction.
var ErrNoTransaction = errors.New("no transaction in context")

// BeginTX starts a transaction and returns a context that carries it.
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	if st, ok := ctx.Value(txKey{}).(*txState); ok && !st.done {
		root := st
		if st.root != nil {
			root = st.root
		}
		return context.WithValue(ctx, txKey{}, &txState{tx: st.tx, root: root}), nil
	}
	// Observed before it runs: on SQLite BEGIN IMMEDIATE is where a writer
	// waits for the lock, and a test can tell a transaction is on its way.
	s.observe(ctx, "BEGIN")
	tx := s.gdb.WithContext(ctx).Begin()
	if tx.Error != nil {
		return ctx, fmt.Errorf("begin transaction: %w", translate(tx.Error))
	}
	return context.WithValue(ctx, txKey{}, &txState{tx: tx}), nil
}

// Commit commits the context's transaction.
func (s *Store) Commit(ctx context.Context) error {
	st, ok := ctx.Value(txKey{}).(*txState)
	if !ok || st.done {
		return ErrNoTransaction
	}
	if st.root != nil {
		return nil
	}
	st.done = true
	if st.doomed {
		_ = st.tx.Rollback()
		return errors.New("commit of a transaction that a nested step rolled back")
	}
	s.observe(ctx, "COMMIT")
	if err := st.tx.Commit().Error; err != nil {
		return fmt.Errorf("commit: %w", translate(err))
	}
	return nil
}

// Rollback abandons the context's transaction.
func (s *Store) Rollback(ctx context.Context) error {
	st, ok := ctx.Value(txKey{}).(*txState)
	if !ok || st.done {
		return ErrNoTransaction
	}
	if st.root != nil {
		st.root.doomed = true
		return nil
	}
	st.done = true
	if err := st.tx.Rollback().Error; err != nil && !errors.Is(err, gorm.ErrInvalidTransaction) {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

// InTx runs fn in a transaction (joining the context's one if there is one)
// and commits when fn returns nil.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context) error) (err error) {
	ctx, err = s.BeginTX(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			_ = s.Rollback(ctx)
			panic(p)
		}
		if err != nil {
			_ = s.Rollback(ctx)
		}
	}()
	if err = fn(ctx); err != nil {
		return err
	}
	return s.Commit(ctx)
}

// db is the one way queries reach the database: the context's transaction
// when there is one, the pool otherwise.
func (s *Store) db(ctx context.Context) *gorm.DB {
	if st, ok := ctx.Value(txKey{}).(*txState); ok && !st.done && (st.root == nil || !st.root.done) {
		return st.tx.WithContext(ctx)
	}
	return s.gdb.WithContext(ctx)
}
