package store

import (
	"context"
	"fmt"
	"slices"
)

// inspectable lists the tables and columns RawColumn may read.
var inspectable = map[string][]string{
	tableAccess: {"signature", "request_id"}, tableRefresh: {"signature", "request_id"},
	tableCode: {"signature", "request_id"}, tablePKCE: {"signature", "request_id"},
	"signing_keys": {"kid", "public_key", "private_key"},
}

// RawColumn reads one column of a token or key table as stored. It exists
// for tests that check what lands on disk (a digest, not a token; a sealed
// key, not a private key); the names are checked against a fixed list, never interpolated
// from input.
func (s *Store) RawColumn(ctx context.Context, table, column string) ([]string, error) {
	if !slices.Contains(inspectable[table], column) {
		return nil, fmt.Errorf("column %s.%s is not inspectable", table, column)
	}
	var out []string
	if err := s.db(ctx).Table(table).Order(column).Pluck(column, &out).Error; err != nil {
		return nil, translate(err)
	}
	return out, nil
}
