package seed_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/seed"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/hmac"
)

const systemSecret = "seed-test-secret-0123456789abcdef0123456789"

// strategy is the server's opaque-token strategy for systemSecret, built
// as internal/oauth builds it.
func strategy(t *testing.T) *oauth2.HMACSHAStrategy {
	t.Helper()
	keys, err := secrets.ParseSystemSecrets(systemSecret).DeriveKeys(secrets.PurposeTokenHMAC)
	if err != nil {
		t.Fatal(err)
	}
	fc := &fosite.Config{GlobalSecret: keys[0], TokenEntropy: 32}
	return oauth2.NewHMACSHAStrategy(&hmac.HMACStrategy{Config: fc}, fc)
}

// TestSeededTokensAreFosites: a seeded token passes fosite's own HMAC
// check under the server's key, and fails under another secret's.
func TestSeededTokensAreFosites(t *testing.T) {
	ctx := context.Background()
	ss := secrets.ParseSystemSecrets(systemSecret)
	rt, err := seed.RefreshToken(ss, 42)
	if err != nil {
		t.Fatal(err)
	}
	at, err := seed.AccessToken(ss, 42)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rt, "ory_rt_") || !strings.HasPrefix(at, "ory_at_") {
		t.Fatalf("prefixes: %q %q", rt, at)
	}
	st := strategy(t)
	sess := grantsession.New("")
	sess.SetExpiresAt(fosite.AccessToken, time.Now().Add(time.Hour))
	sess.SetExpiresAt(fosite.RefreshToken, time.Now().Add(time.Hour))
	live := &fosite.Request{Session: sess}
	if err := st.ValidateRefreshToken(ctx, live, rt); err != nil {
		t.Errorf("seeded refresh token refused: %v", err)
	}
	if err := st.ValidateAccessToken(ctx, live, at); err != nil {
		t.Errorf("seeded access token refused: %v", err)
	}
	other, _ := seed.RefreshToken(secrets.ParseSystemSecrets(strings.Repeat("x", 40)), 42)
	if err := st.ValidateRefreshToken(ctx, live, other); err == nil {
		t.Error("a token seeded under another secret was accepted")
	}
}

func tinyOptions(now time.Time) seed.Options {
	return seed.Options{Grants: 500, RevokedGrants: 50, RevokedJTIs: 200, Users: 100, Clients: 3, AccessTokens: true,
		Rotated: 1, ExpiredFraction: 0.05, RefreshTTL: 720 * time.Hour, AccessTTL: 15 * time.Minute, DenyWindow: 24 * time.Hour,
		Batch: 64, Secret: secrets.ParseSystemSecrets(systemSecret), Now: func() time.Time { return now }}
}

type counts map[string]int64

func count(t *testing.T, conn *pgx.Conn) counts {
	t.Helper()
	c := counts{}
	for _, q := range []struct{ name, sql string }{
		{"refresh", "SELECT count(*) FROM refresh_tokens"},
		{"refresh active", "SELECT count(*) FROM refresh_tokens WHERE active"},
		{"access", "SELECT count(*) FROM access_tokens"},
		{"revoked grants", "SELECT count(*) FROM revoked_grants"},
		{"revoked jtis", "SELECT count(*) FROM revoked_jtis"},
		{"users", "SELECT count(*) FROM users"},
		{"clients", "SELECT count(*) FROM clients"},
		{"distinct grants", "SELECT count(DISTINCT request_id) FROM refresh_tokens"},
	} {
		var n int64
		if err := conn.QueryRow(context.Background(), q.sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q.name, err)
		}
		c[q.name] = n
	}
	return c
}

// TestSeed seeds a tiny deployment into the test's PostgreSQL database and
// checks the row counts, that the store finds a seeded grant's tokens as
// it finds the server's own (and refuses a revoked grant's), that the deny
// list answers for a seeded jti, and that reruns, whole or after the
// janitor deleted part of a batch, never double a row.
func TestSeed(t *testing.T) {
	ctx := context.Background()
	url := storetest.PostgresURL(t)
	now := time.Now().UTC()
	st := storetest.Open(t, url, store.Options{Now: func() time.Time { return now }})
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(ctx) })

	opts := tinyOptions(now)
	stats, err := seed.Seed(ctx, conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := counts{"refresh": 1000, "refresh active": 450, "access": 450, "revoked grants": 50, "revoked jtis": 200,
		"users": 100, "clients": 3, "distinct grants": 500}
	got := count(t, conn)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %d rows, want %d", k, got[k], v)
		}
	}
	if stats.Rows != 1000+450+50+200+100+3 {
		t.Errorf("stats say %d rows written", stats.Rows)
	}
	var expired int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM refresh_tokens WHERE active AND expires_at < $1", now).Scan(&expired); err != nil {
		t.Fatal(err)
	}
	if expired == 0 || expired > 100 {
		t.Errorf("%d live refresh tokens already expired, want some (about 5%%) for the janitor", expired)
	}

	ss := opts.Secret
	hs := strategy(t)
	// Grant 0 leads its batch: always live. Grant 5 is the first revoked.
	rt, _ := seed.RefreshToken(ss, 0)
	req, err := st.GetRefreshTokenSession(ctx, hs.RefreshTokenSignature(ctx, rt), grantsession.New(""))
	if err != nil {
		t.Fatalf("seeded refresh token not found: %v", err)
	}
	if req.GetID() != seed.GrantID(0) || req.GetSession().GetSubject() != seed.UserID(0) || req.GetClient().GetID() != seed.ClientID(0) {
		t.Errorf("seeded grant read back as %s of %s by %s", req.GetID(), req.GetSession().GetSubject(), req.GetClient().GetID())
	}
	if err := hs.ValidateRefreshToken(ctx, req, rt); err != nil {
		t.Errorf("seeded refresh token invalid: %v", err)
	}
	at, _ := seed.AccessToken(ss, 0)
	areq, err := st.GetAccessTokenSession(ctx, hs.AccessTokenSignature(ctx, at), grantsession.New(""))
	if err != nil {
		t.Fatalf("seeded access token not found: %v", err)
	}
	if err := hs.ValidateAccessToken(ctx, areq, at); err != nil {
		t.Errorf("seeded access token invalid: %v", err)
	}
	revoked, _ := seed.RefreshToken(ss, 5)
	if _, err := st.GetRefreshTokenSession(ctx, hs.RefreshTokenSignature(ctx, revoked), grantsession.New("")); !errors.Is(err, fosite.ErrInactiveToken) {
		t.Errorf("revoked seeded grant's refresh token: %v, want ErrInactiveToken", err)
	}
	// The seed writes through a connection of its own, as another
	// instance would: its rows reach st's in-memory deny-list over
	// LISTEN/NOTIFY (migration 00026's triggers fire for COPY too) within
	// the notification latency, so asked again for up to a second.
	for deadline := time.Now().Add(time.Second); ; time.Sleep(time.Millisecond) {
		rev, err := st.IsRevoked(ctx, seed.RevokedJTI(0), "none", "none", now)
		if err == nil && rev {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("seeded revoked jti 0: revoked %v, %v", rev, err)
			break
		}
	}
	if rev, err := st.IsRevoked(ctx, "not-seeded", seed.GrantID(0), seed.UserID(0), now); err != nil || rev {
		t.Errorf("live seeded grant: revoked %v, %v", rev, err)
	}

	again, err := seed.Seed(ctx, conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Rows != 0 || again.Skipped != 2+8+4 {
		t.Errorf("rerun wrote %d rows and skipped %d batches, want 0 and 14", again.Rows, again.Skipped)
	}
	if c := count(t, conn); c["refresh"] != want["refresh"] || c["access"] != want["access"] || c["users"] != want["users"] {
		t.Errorf("rerun changed the counts: %v", c)
	}

	// The janitor deletes expired rows, a batch's first among them here:
	// the rerun writes the batch again around the rows still there.
	if _, err := conn.Exec(ctx, "DELETE FROM refresh_tokens WHERE request_id = $1 OR expires_at < $2", seed.GrantID(64), now); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "DELETE FROM users WHERE id = $1", seed.UserID(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := seed.Seed(ctx, conn, opts); err != nil {
		t.Fatalf("rerun after deletions: %v", err)
	}
	c := count(t, conn)
	if c["users"] != want["users"] || c["refresh"] > want["refresh"] {
		t.Errorf("after a rerun over deleted rows: %v", c)
	}
	rt64, _ := seed.RefreshToken(ss, 64)
	if _, err := st.GetRefreshTokenSession(ctx, hs.RefreshTokenSignature(ctx, rt64), grantsession.New("")); err != nil {
		t.Errorf("grant 64, deleted, was not written again: %v", err)
	}
}

// TestLoad: the janitor-load mode adds grants, each a refresh token with
// its access token, owned by the seeded users and clients.
func TestLoad(t *testing.T) {
	ctx := context.Background()
	url := storetest.PostgresURL(t)
	now := time.Now().UTC()
	storetest.Open(t, url, store.Options{})
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(ctx) })
	opts := tinyOptions(now)
	opts.Grants, opts.RevokedGrants, opts.RevokedJTIs = 0, 0, 0
	if _, err := seed.Seed(ctx, conn, opts); err != nil {
		t.Fatal(err)
	}
	st, err := seed.Load(ctx, conn, seed.LoadOptions{Rate: 1000, TTL: time.Minute, Duration: 300 * time.Millisecond,
		Users: opts.Users, Clients: opts.Clients, Secret: opts.Secret})
	if err != nil {
		t.Fatal(err)
	}
	if st.Grants == 0 {
		t.Fatal("load wrote no grants")
	}
	c := count(t, conn)
	if c["refresh"] != int64(st.Grants) || c["access"] != int64(st.Grants) || c["distinct grants"] != int64(st.Grants) {
		t.Errorf("load says %d grants; rows: %v", st.Grants, c)
	}
}
