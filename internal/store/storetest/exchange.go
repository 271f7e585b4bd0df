package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/store"
)

// An exchanged access token (RFC 8693) joins the subject token's grant only
// while that grant is live: its subject token still stored (opaque) and the
// grant and its subject not on the deny-lists.
func testExchangedAccessToken(t *testing.T, st *store.Store) {
	c := mustClient(t, st, "exch-c1")
	now := time.Now().UTC()
	tests := []struct {
		name       string
		subjectSig string // "" for a JWT subject token
		revoke     func(ctx context.Context, id, sub string) error
		refused    bool
	}{
		{"opaque subject live", "exch-at", nil, false},
		{"JWT subject live", "", nil, false},
		{"opaque subject's row gone", "exch-at", func(ctx context.Context, id, _ string) error {
			return st.RevokeAccessToken(ctx, id)
		}, true},
		{"grant revoked", "", func(ctx context.Context, id, _ string) error {
			return st.RevokeGrant(ctx, id, now.Add(time.Hour))
		}, true},
		{"subject revoked", "", func(ctx context.Context, _, sub string) error {
			return st.RevokeSubject(ctx, sub, now.Add(time.Hour))
		}, true},
		{"another grant's opaque token", "exch-other-at", nil, true},
	}
	other := newRequest(c, "exch-other-grant", "exch-other-user")
	if err := st.CreateAccessTokenSession(ctxT(t), "exch-other-at", other); err != nil {
		t.Fatal(err)
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			id, sub := fmt.Sprintf("exch-grant-%d", i), fmt.Sprintf("exch-user-%d", i)
			req := newRequest(c, id, sub)
			req.Session.(*grantsession.Session).GrantedAt = now.Add(-time.Minute)
			sig := tc.subjectSig
			if sig == "exch-at" {
				sig = fmt.Sprintf("exch-at-%d", i)
				if err := st.CreateAccessTokenSession(ctx, sig, req); err != nil {
					t.Fatal(err)
				}
			}
			if tc.revoke != nil {
				if err := tc.revoke(ctx, id, sub); err != nil {
					t.Fatal(err)
				}
			}
			newSig := fmt.Sprintf("exch-new-%d", i)
			err := st.CreateExchangedAccessToken(ctx, sig, newSig, req)
			if tc.refused {
				if !errors.Is(err, store.ErrGrantRevoked) {
					t.Fatalf("got %v, want ErrGrantRevoked", err)
				}
				if _, err := st.GetAccessTokenSession(ctx, newSig, nil); err == nil {
					t.Error("the exchanged token was stored")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := st.GetAccessTokenSession(ctx, newSig, nil)
			if err != nil || got.GetID() != id {
				t.Fatalf("exchanged token: %v %v", got, err)
			}
			// It is the grant's: revoking the grant deletes it.
			if err := st.RevokeGrant(ctx, id, now.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if _, err := st.GetAccessTokenSession(ctx, newSig, nil); err == nil {
				t.Error("the exchanged token outlived its grant's revocation")
			}
		})
	}
}

// Exchanges racing a revocation of their grant: once the revocation has
// returned, no exchanged token of the grant remains, whichever side won
// each race.
func testExchangeRacesRevocation(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	c := mustClient(t, st, "exch-c2")
	req := newRequest(c, "exch-race-grant", "exch-race-user")
	if err := st.CreateAccessTokenSession(ctx, "exch-race-at", req); err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n+1)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			err := st.CreateExchangedAccessToken(ctx, "exch-race-at", fmt.Sprintf("exch-race-new-%d", i), req)
			if err != nil && !errors.Is(err, store.ErrGrantRevoked) {
				errs <- fmt.Errorf("exchange %d: %w", i, err)
			}
		}()
	}
	var revoked sync.WaitGroup
	revoked.Add(1)
	go func() {
		defer revoked.Done()
		<-start
		if err := st.RevokeGrant(ctx, "exch-race-grant", time.Now().Add(time.Hour)); err != nil {
			errs <- err
		}
	}()
	close(start)
	revoked.Wait()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range n {
		if _, err := st.GetAccessTokenSession(ctx, fmt.Sprintf("exch-race-new-%d", i), nil); err == nil {
			t.Errorf("exchanged token %d outlived the revocation of its grant", i)
		}
	}
}
