package storetest

import (
	"slices"
	"testing"

	"github.com/latchkey/latchkey/internal/store"
)

var corsTests = []struct {
	name string
	fn   func(t *testing.T, st *store.Store)
}{
	{"ClientCORSOriginsRoundTrip", testClientCORSOrigins},
	{"AnyClientAllowsOrigin", testAnyClientAllowsOrigin},
}

// rowOf reads a client's row, never the cache.
func rowOf(t *testing.T, st *store.Store, id string) *store.Client {
	t.Helper()
	cs, err := st.ListClients(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no client %s", id)
	return nil
}

// testClientCORSOrigins: allowed_cors_origins round-trips through create
// and update, and "none registered" (derive from the redirect URIs) stays
// distinct from "registered as none".
func testClientCORSOrigins(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustClient(t, st, "spa")
	if got := rowOf(t, st, "spa"); got.AllowedCORSOrigins != nil || !slices.Equal(got.CORSOrigins(), []string{"https://app.example"}) {
		t.Fatalf("unregistered origins: stored %#v, derived %v; want nil and the redirect URI's origin", got.AllowedCORSOrigins, got.CORSOrigins())
	}
	for _, want := range [][]string{{"https://spa.example", "http://localhost:5173"}, {}, nil} {
		if err := st.UpdateClient(ctx, "spa", func(c *store.Client) error { c.AllowedCORSOrigins = want; return nil }); err != nil {
			t.Fatal(err)
		}
		got := rowOf(t, st, "spa").AllowedCORSOrigins
		if (got == nil) != (want == nil) || !slices.Equal(got, want) {
			t.Errorf("stored %#v, read back %#v", want, got)
		}
	}
}

// testAnyClientAllowsOrigin: the preflight's question follows every client
// change at once on this instance (the cached set is dropped).
func testAnyClientAllowsOrigin(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	allows := func(origin string) bool {
		t.Helper()
		ok, err := st.AnyClientAllowsOrigin(ctx, origin)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if allows("https://app.example") {
		t.Fatal("an origin is allowed with no client at all")
	}
	mustClient(t, st, "web")
	if !allows("https://app.example") || allows("https://spa.example") {
		t.Fatal("after create: want the redirect URI's origin and nothing else")
	}
	spa := &store.Client{ID: "spa", TokenEndpointAuthMethod: "none", Public: true, AllowedCORSOrigins: []string{"https://spa.example"}}
	if err := st.CreateClient(ctx, spa); err != nil {
		t.Fatal(err)
	}
	if !allows("https://spa.example") {
		t.Fatal("a new client's origin is not allowed: the cached set outlived the creation")
	}
	if err := st.UpdateClient(ctx, "spa", func(c *store.Client) error { c.AllowedCORSOrigins = []string{}; return nil }); err != nil {
		t.Fatal(err)
	}
	if allows("https://spa.example") {
		t.Fatal("an origin removed by an update is still allowed")
	}
	if err := st.DeleteClient(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if allows("https://app.example") {
		t.Fatal("a deleted client's origin is still allowed")
	}
	if allows("") || allows("null") {
		t.Fatal("an empty or opaque origin is allowed")
	}
}
