package login_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// The password policy the store no longer holds: a wrong password and an
// unknown user give the same answer, and the unknown user is checked
// against a stand-in hash, so that both cost one argon2id verification and
// cannot be told apart by time.
func TestAuthenticatorPolicy(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		st := storetest.New(t, b)
		ctx := t.Context()
		hash, err := secrets.HashPassword("correct horse", secrets.Argon2Params{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateUser(ctx, &store.User{ID: "u-1", Username: "alice", PasswordHash: hash}); err != nil {
			t.Fatal(err)
		}
		var (
			mu     sync.Mutex
			hashes []string
		)
		verify := func(h, password string) (bool, error) {
			mu.Lock()
			hashes = append(hashes, h)
			mu.Unlock()
			return secrets.VerifyPassword(h, password)
		}
		th := login.NewThrottle(st, login.DefaultThrottlePolicy)
		th.Sleep = func(context.Context, time.Duration) {}
		auth := login.NewAuthenticator(st, th, login.PasswordLimits{}, verify)
		cases := []struct {
			name, username, password string
			wantID                   string
			wantErr                  error
			wantUserHash             bool
		}{
			{"right password", "alice", "correct horse", "u-1", nil, true},
			{"wrong password", "alice", "wrong", "", store.ErrNotFound, true},
			{"unknown user", "bob", "correct horse", "", store.ErrNotFound, false},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				hashes = nil
				id, err := auth.Authenticate(ctx, tc.username, tc.password, "192.0.2.7")
				if id != tc.wantID || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
					t.Fatalf("Authenticate = %q, %v; want %q, %v", id, err, tc.wantID, tc.wantErr)
				}
				if len(hashes) != 1 || hashes[0] == "" {
					t.Fatalf("verifications = %q, want exactly one against a hash", hashes)
				}
				if got := hashes[0] == hash; got != tc.wantUserHash {
					t.Fatalf("checked against the user's hash = %v, want %v (a stand-in for an unknown user)", got, tc.wantUserHash)
				}
			})
		}
	})
}
