package store_test

import (
	"context"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"github.com/ory/fosite"
)

func benchRequest(c *store.Client, id string) *fosite.Request {
	r := fosite.NewRequest()
	r.ID, r.Client, r.RequestedAt = id, c, time.Now().UTC()
	r.GrantedScope = fosite.Arguments{"read", "offline_access"}
	r.Form = url.Values{"grant_type": {"refresh_token"}}
	s := grantsession.New("user")
	s.SetExpiresAt(fosite.AccessToken, time.Now().Add(time.Hour))
	s.SetExpiresAt(fosite.RefreshToken, time.Now().Add(time.Hour))
	r.Session = s
	return r
}

// The storage paths of the hot flows, on each database: a cached client
// read, an opaque token write and read, a revocation check, and one refresh
// rotation transaction.
func BenchmarkStorage(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			st := storetest.New(b, be)
			c := &store.Client{ID: "bench", TokenEndpointAuthMethod: "client_secret_basic", GrantTypes: []string{"refresh_token"}}
			if err := st.CreateClient(ctx, c); err != nil {
				b.Fatal(err)
			}
			b.Run("FindClient", func(b *testing.B) {
				for b.Loop() {
					if _, err := st.FindClient(ctx, "bench"); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("CreateGetAccessToken", func(b *testing.B) {
				i := 0
				for b.Loop() {
					i++
					sig := "at-" + strconv.Itoa(i)
					if err := st.CreateAccessTokenSession(ctx, sig, benchRequest(c, sig)); err != nil {
						b.Fatal(err)
					}
					if _, err := st.GetAccessTokenSession(ctx, sig, grantsession.New("")); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("IsRevoked", func(b *testing.B) {
				for b.Loop() {
					if _, err := st.IsRevoked(ctx, "jti", "grant", "user", time.Now()); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("RotateRefresh", func(b *testing.B) {
				_ = st.CreateRefreshTokenSession(ctx, "rt-0", "", benchRequest(c, "grant"))
				i := 0
				for b.Loop() {
					old, next := "rt-"+strconv.Itoa(i), "rt-"+strconv.Itoa(i+1)
					i++
					err := st.RotateRefreshTokenOnce(ctx, store.Rotation{
						OldSignature: old, Sealed: []byte("sealed"), NewSignature: next,
						Request: benchRequest(c, "grant"), GrantedAt: time.Now(),
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
