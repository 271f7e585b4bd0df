package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/store"
)

// auditTests are the conformance cases of named admin tokens and the admin
// audit log (issue 18).
var auditTests = []struct {
	name string
	fn   func(t *testing.T, st *store.Store)
}{
	{"AdminTokens", testAdminTokens},
	{"AuditFiltersAndCursor", testAuditFiltersAndCursor},
	{"AuditRollsBackWithItsChange", testAuditRollsBack},
	{"JanitorPurgesOldAuditEntries", testAuditPurge},
}

// testAdminTokens: create, look up by hash, a duplicate name refused,
// rotation replaces the hash (the old one no longer found), delete.
func testAdminTokens(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	exp := time.Now().UTC().Add(time.Hour).Truncate(time.Second)
	if err := st.CreateAdminToken(ctx, &store.AdminToken{Name: "ci", TokenHash: "h1", ExpiresAt: &exp}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAdminToken(ctx, &store.AdminToken{Name: "ops", TokenHash: "h2"}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAdminToken(ctx, &store.AdminToken{Name: "ci", TokenHash: "h3"}); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("duplicate name: %v, want ErrAlreadyExists", err)
	}
	got, err := st.FindAdminTokenByHash(ctx, "h1")
	if err != nil || got.Name != "ci" || got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) || got.RotatedAt != nil {
		t.Fatalf("find by hash: %+v %v", got, err)
	}
	if _, err := st.FindAdminTokenByHash(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown hash: %v", err)
	}
	if err := st.RotateAdminToken(ctx, "ci", "h4", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := st.FindAdminTokenByHash(ctx, "h1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old hash after rotation: %v", err)
	}
	if got, err := st.FindAdminTokenByHash(ctx, "h4"); err != nil || got.RotatedAt == nil || got.ExpiresAt != nil {
		t.Errorf("rotated: %+v %v", got, err)
	}
	if err := st.RotateAdminToken(ctx, "nobody", "h5", nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("rotate unknown: %v", err)
	}
	list, err := st.ListAdminTokens(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "ci" || list[1].Name != "ops" {
		t.Fatalf("list: %+v %v", list, err)
	}
	if err := st.DeleteAdminToken(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteAdminToken(ctx, "ops"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if _, err := st.FindAdminTokenByHash(ctx, "h2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted token still found: %v", err)
	}
}

func appendAudit(t *testing.T, st *store.Store, actor, targetType, targetID string) *store.AuditEntry {
	t.Helper()
	after := `{"id":"` + targetID + `"}`
	e := &store.AuditEntry{Actor: actor, Action: targetType + ".create", TargetType: targetType, TargetID: targetID, RequestID: "req-" + targetID, After: &after}
	if err := st.AppendAudit(ctxT(t), e); err != nil {
		t.Fatal(err)
	}
	return e
}

// testAuditFiltersAndCursor: newest first, each filter alone and together,
// and a cursor that walks the pages without gaps or repeats.
func testAuditFiltersAndCursor(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	for i := range 5 {
		appendAudit(t, st, "ci", "client", fmt.Sprint("c", i))
		appendAudit(t, st, "ops", "user", fmt.Sprint("u", i))
	}
	all, err := st.ListAudit(ctx, store.AuditFilter{Limit: 100})
	if err != nil || len(all) != 10 {
		t.Fatalf("all: %d %v", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID >= all[i-1].ID {
			t.Fatalf("not newest first: %d after %d", all[i].ID, all[i-1].ID)
		}
	}
	if e := all[0]; e.TargetID != "u4" || e.Actor != "ops" || e.RequestID != "req-u4" || e.After == nil || *e.After != `{"id":"u4"}` || e.Before != nil || e.At.IsZero() {
		t.Errorf("newest: %+v", e)
	}
	byActor, err := st.ListAudit(ctx, store.AuditFilter{Actor: "ci", Limit: 100})
	if err != nil || len(byActor) != 5 || byActor[0].TargetID != "c4" {
		t.Errorf("actor filter: %d %v", len(byActor), err)
	}
	byTarget, err := st.ListAudit(ctx, store.AuditFilter{TargetType: "user", TargetID: "u2", Limit: 100})
	if err != nil || len(byTarget) != 1 || byTarget[0].TargetID != "u2" {
		t.Errorf("target filter: %+v %v", byTarget, err)
	}
	byType, err := st.ListAudit(ctx, store.AuditFilter{TargetType: "client", Actor: "ops", Limit: 100})
	if err != nil || len(byType) != 0 {
		t.Errorf("type and actor: %d %v", len(byType), err)
	}
	future, err := st.ListAudit(ctx, store.AuditFilter{Since: time.Now().Add(time.Hour), Limit: 100})
	if err != nil || len(future) != 0 {
		t.Errorf("since the future: %d %v", len(future), err)
	}
	past, err := st.ListAudit(ctx, store.AuditFilter{Since: time.Now().Add(-time.Hour), Limit: 100})
	if err != nil || len(past) != 10 {
		t.Errorf("since an hour ago: %d %v", len(past), err)
	}
	var walked []int64
	cursor := int64(0)
	for range 10 {
		page, err := st.ListAudit(ctx, store.AuditFilter{Limit: 3, Before: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			walked = append(walked, e.ID)
		}
		if len(page) < 3 {
			break
		}
		cursor = page[len(page)-1].ID
	}
	if len(walked) != 10 {
		t.Fatalf("walked %d entries, want 10", len(walked))
	}
	for i := range walked {
		if walked[i] != all[i].ID {
			t.Fatalf("page walk %v differs from the list", walked)
		}
	}
}

// testAuditRollsBack: an entry written in a transaction that rolls back
// is gone with the change.
func testAuditRollsBack(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	boom := errors.New("boom")
	err := st.InTx(ctx, func(ctx context.Context) error {
		if _, err := st.PutScope(ctx, &store.Scope{Name: "rolled", Description: "Rolled back"}); err != nil {
			return err
		}
		if err := st.AppendAudit(ctx, &store.AuditEntry{Actor: "ci", Action: "scope.put", TargetType: "scope", TargetID: "rolled"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx: %v", err)
	}
	if es, err := st.ListAudit(ctx, store.AuditFilter{Limit: 10}); err != nil || len(es) != 0 {
		t.Errorf("entries after rollback: %d %v", len(es), err)
	}
	if _, err := st.FindScope(ctx, "rolled"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the change itself after rollback: %v", err)
	}
}

// testAuditPurge: the janitor deletes entries older than the retention,
// in batches, and keeps newer ones; with no retention it keeps all.
func testAuditPurge(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	for i := range 3 {
		appendAudit(t, st, "ci", "client", fmt.Sprint("old", i))
	}
	if err := st.AgeAuditForTest(ctx, 400*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	appendAudit(t, st, "ci", "client", "new")
	r := store.Retention{AccessTokenTTL: 15 * time.Minute, SessionIdleTTL: time.Hour, FailureWindow: time.Hour}
	if n, err := st.DeleteExpiredBatch(ctx, r, 2); err != nil || n != 0 {
		t.Fatalf("without retention: deleted %d %v", n, err)
	}
	r.SecurityEvents = 365 * 24 * time.Hour
	for i, want := range []int64{2, 1, 0} {
		if n, err := st.DeleteExpiredBatch(ctx, r, 2); err != nil || n != want {
			t.Fatalf("batch %d deleted %d (%v), want %d", i, n, err, want)
		}
	}
	es, err := st.ListAudit(ctx, store.AuditFilter{Limit: 10})
	if err != nil || len(es) != 1 || es[0].TargetID != "new" {
		t.Errorf("left: %+v %v", es, err)
	}
}
