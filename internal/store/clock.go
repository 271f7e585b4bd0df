package store

import (
	"context"
	"time"
)

// DatabaseNow is the database server's clock. Instances compare times that
// other instances wrote (expiries, leases, key activation), so a clock far
// from the others' makes tokens and keys start or end early or late;
// `latchkey doctor` compares this one with the database's. SQLite runs
// inside this process and shares its clock.
func (s *Store) DatabaseNow(ctx context.Context) (time.Time, error) {
	if s.dialect != DialectPostgres {
		return time.Now(), nil
	}
	var t time.Time
	if err := s.gdb.WithContext(ctx).Raw("SELECT now()").Scan(&t).Error; err != nil {
		return time.Time{}, translate(err)
	}
	return t, nil
}
