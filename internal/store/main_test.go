package store_test

import (
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

// The store's tests also run through PgBouncer in transaction mode when
// LATCHKEY_TEST_PGBOUNCER is set (storetest.Main).
func TestMain(m *testing.M) { storetest.Main(m) }
