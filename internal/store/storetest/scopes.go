package storetest

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/latchkey/latchkey/internal/store"
)

var scopeTests = []struct {
	name string
	fn   func(t *testing.T, st *store.Store)
}{
	{"ScopeDescriptions", testScopeDescriptions},
	{"ConcurrentScopePuts", testConcurrentScopePuts},
	{"ClientBrandingRoundTrip", testClientBranding},
}

// testScopeDescriptions: put creates then replaces (keeping created_at),
// find/list/delete, and the consent page's one-query lookup.
func testScopeDescriptions(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	created, err := st.PutScope(ctx, &store.Scope{Name: "invoices:read", Description: "Read invoices"})
	if err != nil || !created {
		t.Fatalf("first put: created=%v %v", created, err)
	}
	first, err := st.FindScope(ctx, "invoices:read")
	if err != nil || first.Description != "Read invoices" {
		t.Fatalf("find: %+v %v", first, err)
	}
	sc := &store.Scope{Name: "invoices:read", Description: "Read your invoices"}
	created, err = st.PutScope(ctx, sc)
	if err != nil || created {
		t.Fatalf("second put: created=%v %v", created, err)
	}
	if sc.Description != "Read your invoices" || !sc.CreatedAt.Equal(first.CreatedAt) {
		t.Errorf("replaced: %+v, created_at was %v", sc, first.CreatedAt)
	}
	if _, err := st.PutScope(ctx, &store.Scope{Name: "a", Description: "A"}); err != nil {
		t.Fatal(err)
	}
	list, err := st.ListScopes(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "a" || list[1].Name != "invoices:read" {
		t.Fatalf("list: %+v %v", list, err)
	}
	got, err := st.ScopeDescriptions(ctx, []string{"invoices:read", "unknown", "a"})
	if err != nil || len(got) != 2 || got["invoices:read"] != "Read your invoices" || got["a"] != "A" {
		t.Errorf("descriptions: %v %v", got, err)
	}
	if got, err := st.ScopeDescriptions(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("descriptions of none: %v %v", got, err)
	}
	if err := st.DeleteScope(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteScope(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if _, err := st.FindScope(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("find deleted: %v", err)
	}
}

// testConcurrentScopePuts: parallel PUTs of one new scope all succeed
// (an upsert, not find-then-insert) and one description is left.
func testConcurrentScopePuts(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	var i atomic.Int32
	errs := runConcurrently(8, func() error {
		_, err := st.PutScope(ctx, &store.Scope{Name: "race", Description: fmt.Sprint("d", i.Add(1))})
		return err
	})
	for _, err := range errs {
		if err != nil {
			t.Errorf("concurrent put: %v", err)
		}
	}
	if list, err := st.ListScopes(ctx); err != nil || len(list) != 1 {
		t.Errorf("after concurrent puts: %+v %v", list, err)
	}
}

// testClientBranding: logo_uri and client_uri are stored with the client.
func testClientBranding(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	c := &store.Client{ID: "branded", GrantTypes: []string{"authorization_code"}, LogoURI: "https://a.example/l.png", ClientURI: "https://a.example/"}
	if err := st.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := st.FindClient(ctx, "branded")
	if err != nil || got.LogoURI != c.LogoURI || got.ClientURI != c.ClientURI {
		t.Errorf("client: %+v %v", got, err)
	}
}
