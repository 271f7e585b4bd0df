package main

import (
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

// The cluster tests also run through PgBouncer when LATCHKEY_TEST_PGBOUNCER
// is set (storetest.Main).
func TestMain(m *testing.M) { storetest.Main(m) }
