package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/store"
)

// backendTests are conformance cases that open the database themselves,
// because they need store.Options of their own.
var backendTests = []struct {
	name string
	fn   func(t *testing.T, b Backend)
}{
	{"EndLoginSessionIsSetBased", testEndLoginSessionSetBased},
}

// Logout runs a fixed number of statements whatever the number of grants
// the session holds: no statement per grant.
func testEndLoginSessionSetBased(t *testing.T, b Backend) {
	var counting atomic.Bool
	var statements atomic.Int64
	st := Open(t, b.URL(t), store.Options{OnStatement: func(_ context.Context, sql string) {
		if counting.Load() && sql != "BEGIN" && sql != "COMMIT" && !strings.HasPrefix(sql, "NOTIFY") {
			statements.Add(1)
		}
	}})
	ctx := ctxT(t)
	mustUser(t, st, "sb-u")
	c := mustClient(t, st, "sb-c")
	now := time.Now().UTC()
	count := func(grants int) int64 {
		t.Helper()
		ls := &store.LoginSession{UserID: "sb-u", AuthTime: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := st.CreateLoginSession(ctx, fmt.Sprintf("sb-cookie-%d", grants), ls); err != nil {
			t.Fatal(err)
		}
		for i := range grants {
			r := userGrant(c, fmt.Sprintf("sb-%d-%d", grants, i), "sb-u", ls.ID)
			if err := st.CreateAuthorizeCodeSession(ctx, "code-"+r.ID, r); err != nil {
				t.Fatal(err)
			}
		}
		statements.Store(0)
		counting.Store(true)
		defer counting.Store(false)
		if err := st.EndLoginSession(ctx, ls.ID, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		return statements.Load()
	}
	if one, many := count(1), count(12); one != many {
		t.Errorf("logout ran %d statements for one grant, %d for twelve: want the same", one, many)
	}
}
