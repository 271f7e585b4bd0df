package storetest

import (
	"context"
	"testing"

	"github.com/latchkey/latchkey/internal/store"
)

// RawSignatures returns the primary keys stored in a token table, read past
// the store's API so tests can check what really lands on disk.
func RawSignatures(t testing.TB, st *store.Store, table string) []string {
	t.Helper()
	keys, err := st.RawColumn(context.Background(), table, "signature")
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	return keys
}

// RawColumn returns one column of a table as stored (see store.RawColumn
// for the tables and columns that may be read).
func RawColumn(t testing.TB, st *store.Store, table, column string) []string {
	t.Helper()
	vals, err := st.RawColumn(context.Background(), table, column)
	if err != nil {
		t.Fatalf("read %s.%s: %v", table, column, err)
	}
	return vals
}
