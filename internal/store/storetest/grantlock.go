package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/store"
	"github.com/ory/fosite"
)

// grantLockTests are the conformance cases of issue 12 item 1: rotation
// and revocation of a grant serialized, and the deny-lists refusing a
// rotation for as long as a grant could live.
var grantLockTests = []struct {
	name string
	fn   func(t *testing.T, st *store.Store)
}{
	{"RotationRefusedForRevokedGrantOrSubject", testRotationRefusedWhenRevoked},
	{"OverlappingRevocationsNeverDeadlock", testOverlappingRevocations},
	{"DenyListsOutliveAccessTokens", testDenyListRetention},
	{"GraceAccessTokenOnlyWhileLive", testGraceAccessToken},
	{"ExchangedAccessTokenOnlyWhileLive", testExchangedAccessToken},
	{"ExchangeRacesRevocation", testExchangeRacesRevocation},
}

// rotation is the successor of old in grant requestID of subject.
func rotation(c *store.Client, old, requestID, subject string, grantedAt time.Time, access bool) store.Rotation {
	return store.Rotation{
		OldSignature: old, Sealed: []byte("sealed"), NewSignature: old + "-next", AccessSignature: old + "-at",
		Request: newRequest(c, requestID, subject), GrantedAt: grantedAt, StoreAccessToken: access,
	}
}

func testRotationRefusedWhenRevoked(t *testing.T, st *store.Store) {
	c := mustClient(t, st, "lock-c1")
	now := time.Now().UTC()
	tests := []struct {
		name    string
		granted time.Time
		revoke  func(ctx context.Context, requestID, subject string) error
		refused bool
	}{
		{"not revoked", now, func(context.Context, string, string) error { return nil }, false},
		{"grant on revoked_grants", now, func(ctx context.Context, id, _ string) error {
			return st.DenyGrantJWTs(ctx, id, now.Add(time.Hour))
		}, true},
		{"grant entry past its introspection expiry", now, func(ctx context.Context, id, _ string) error {
			return st.DenyGrantJWTs(ctx, id, now.Add(-time.Hour))
		}, true},
		{"subject revoked after the grant began", now.Add(-time.Minute), func(ctx context.Context, _, sub string) error {
			return st.RevokeSubject(ctx, sub, now.Add(time.Hour))
		}, true},
		{"subject revoked before the grant began", now.Add(time.Hour), func(ctx context.Context, _, sub string) error {
			return st.RevokeSubject(ctx, sub, now.Add(time.Hour))
		}, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			id, sub, old := fmt.Sprintf("lock-grant-%d", i), fmt.Sprintf("lock-user-%d", i), fmt.Sprintf("lock-rt-%d", i)
			if err := tc.revoke(ctx, id, sub); err != nil {
				t.Fatal(err)
			}
			// Stored after the revocation, as a token whose rotation or code
			// exchange committed just after it would be: only the deny-list
			// can refuse it.
			if err := st.CreateRefreshTokenSession(ctx, old, "", newRequest(c, id, sub)); err != nil {
				t.Fatal(err)
			}
			for _, access := range []bool{false, true} {
				rot := rotation(c, old, id, sub, tc.granted, access)
				rot.NewSignature += fmt.Sprint(access)
				err := st.RotateRefreshTokenOnce(ctx, rot)
				if tc.refused && !errors.Is(err, fosite.ErrSerializationFailure) {
					t.Fatalf("rotation (access %v): %v, want ErrSerializationFailure", access, err)
				}
				if !tc.refused {
					if err != nil {
						t.Fatalf("rotation: %v", err)
					}
					if _, err := st.GetRefreshTokenSession(ctx, rot.NewSignature, nil); err != nil {
						t.Fatalf("successor: %v", err)
					}
					return
				}
			}
			if _, err := st.GetRefreshTokenSession(ctx, old, nil); err != nil {
				t.Errorf("a refused rotation changed the old token: %v", err)
			}
		})
	}
}

// Subject-wide, session-wide and single-grant revocations of overlapping
// grants, all at once, with rotations among them: every one must succeed.
// On PostgreSQL a lock order that differed between them would deadlock
// (40P01) here.
func testOverlappingRevocations(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "lock-u")
	c := mustClient(t, st, "lock-c2")
	now := time.Now().UTC()
	ls := &store.LoginSession{UserID: "lock-u", AuthTime: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := st.CreateLoginSession(ctx, "lock-cookie", ls); err != nil {
		t.Fatal(err)
	}
	const grants = 8
	for i := range grants {
		r := userGrant(c, fmt.Sprintf("lock-g%d", i), "lock-u", ls.ID)
		if err := st.CreateAuthorizeCodeSession(ctx, fmt.Sprintf("lock-code%d", i), r); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateRefreshTokenSession(ctx, fmt.Sprintf("lock-rt%d", i), "", r); err != nil {
			t.Fatal(err)
		}
	}
	var ops []func() error
	for i := range grants {
		id := fmt.Sprintf("lock-g%d", grants-1-i) // the reverse of the lock order
		ops = append(ops,
			func() error { _, err := st.RevokeLiveGrant(ctx, id, now.Add(time.Hour)); return err },
			func() error { return st.RevokeRefreshToken(ctx, id) },
			func() error {
				err := st.RotateRefreshTokenOnce(ctx, rotation(c, "lock-rt"+id[len("lock-g"):], id, "lock-u", now, true))
				if errors.Is(err, fosite.ErrSerializationFailure) {
					return nil // revoked first
				}
				return err
			},
		)
	}
	ops = append(ops,
		func() error { return st.RevokeSubject(ctx, "lock-u", now.Add(time.Hour)) },
		func() error { return st.EndLoginSession(ctx, ls.ID, now.Add(time.Hour)) },
		func() error { return st.RevokeSubject(ctx, "lock-u", now.Add(time.Hour)) },
	)
	next := make(chan func() error, len(ops))
	for _, op := range ops {
		next <- op
	}
	close(next)
	for i, err := range runConcurrently(len(ops), func() error { return (<-next)() }) {
		if err != nil {
			t.Errorf("operation %d: %v", i, err)
		}
	}
	if n, err := st.ActiveRefreshTokensOf(ctx, "lock-u"); err != nil || n != 0 {
		t.Errorf("%d refresh tokens live after the revocations (%v)", n, err)
	}
}

// The janitor keeps revoked grants and subjects for as long as a grant can
// live, not one access token lifetime: the refresh path still needs them.
func testDenyListRetention(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	c := mustClient(t, st, "lock-c3")
	now := time.Now().UTC()
	// Revoked, as far as introspection cares, two hours ago.
	if err := st.DenyGrantJWTs(ctx, "ret-grant", now.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateRefreshTokenSession(ctx, "ret-rt", "", newRequest(c, "ret-grant", "ret-user")); err != nil {
		t.Fatal(err)
	}
	r := store.Retention{AccessTokenTTL: 15 * time.Minute, SessionIdleTTL: time.Hour, FailureWindow: time.Hour, GrantLifetime: 90 * 24 * time.Hour}
	if _, err := st.DeleteExpiredBatch(ctx, r, 100); err != nil {
		t.Fatal(err)
	}
	if err := st.RotateRefreshTokenOnce(ctx, rotation(c, "ret-rt", "ret-grant", "ret-user", now, false)); !errors.Is(err, fosite.ErrSerializationFailure) {
		t.Fatalf("after the janitor, a revoked grant rotated: %v", err)
	}
	r.GrantLifetime = time.Hour
	if _, err := st.DeleteExpiredBatch(ctx, r, 100); err != nil {
		t.Fatal(err)
	}
	if err := st.RotateRefreshTokenOnce(ctx, rotation(c, "ret-rt", "ret-grant", "ret-user", now, false)); err != nil {
		t.Fatalf("the deny-list row outlived the grant lifetime: %v", err)
	}
}

// A grace repeat's access token is stored only while the successor is live.
func testGraceAccessToken(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	c := mustClient(t, st, "lock-c4")
	now := time.Now().UTC()
	req := newRequest(c, "grace-grant", "grace-user")
	if err := st.CreateRefreshTokenSession(ctx, "grace-rt", "", req); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateGraceAccessToken(ctx, "grace-rt", "grace-at1", req, now); err != nil {
		t.Fatalf("live successor: %v", err)
	}
	if err := st.RevokeRefreshToken(ctx, "grace-grant"); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateGraceAccessToken(ctx, "grace-rt", "grace-at2", req, now); !errors.Is(err, store.ErrGrantRevoked) {
		t.Fatalf("revoked successor: %v, want ErrGrantRevoked", err)
	}
	if _, err := st.GetAccessTokenSession(ctx, "grace-at2", nil); err == nil {
		t.Error("the access token of a revoked grant was stored")
	}
}
