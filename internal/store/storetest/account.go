package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/store"
	"github.com/ory/fosite"
)

// accountTests are the conformance cases of what the account page and the
// e-mailed links need: a person's sessions and applications, and
// single-use links.
var accountTests = []struct {
	name string
	fn   func(t *testing.T, st *store.Store)
}{
	{"ListAndEndOwnLoginSessions", testListAndEndLoginSessions},
	{"EndOtherLoginSessions", testEndOtherLoginSessions},
	{"AuthorizedAppsAndRevokeApp", testAuthorizedApps},
	{"EmailTokenSingleUse", testEmailTokenSingleUse},
	{"EmailTokenLimit", testEmailTokenLimit},
	{"ConcurrentEmailTokenRedemptionOneWinner", testConcurrentEmailTokenRedemption},
	{"MarkEmailVerifiedOnlyForTheSameAddress", testMarkEmailVerified},
}

func mustSession(t *testing.T, st *store.Store, userID, cookie string, lastSeen time.Time) *store.LoginSession {
	t.Helper()
	ls := &store.LoginSession{UserID: userID, AuthTime: lastSeen, LastSeenAt: lastSeen, ExpiresAt: lastSeen.Add(time.Hour),
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0", Address: "192.0.2.7"}
	if err := st.CreateLoginSession(ctxT(t), cookie, ls); err != nil {
		t.Fatal(err)
	}
	return ls
}

func testListAndEndLoginSessions(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "acc1")
	mustUser(t, st, "acc1-other")
	now := time.Now().UTC()
	older := mustSession(t, st, "acc1", "c-older", now.Add(-10*time.Minute))
	newer := mustSession(t, st, "acc1", "c-newer", now)
	mustSession(t, st, "acc1", "c-idle", now.Add(-3*time.Hour))
	theirs := mustSession(t, st, "acc1-other", "c-theirs", now)
	got, err := st.ListLoginSessions(ctx, "acc1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != newer.ID || got[1].ID != older.ID {
		t.Fatalf("sessions = %+v, want the two live ones, most recently seen first", got)
	}
	if got[0].UserAgent == "" || got[0].Address != "192.0.2.7" || got[0].CreatedAt.IsZero() || got[0].SID == "" {
		t.Errorf("session details not kept: %+v", got[0])
	}
	if err := st.EndUserLoginSession(ctx, "acc1", theirs.SID, now.Add(time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ending another user's session: %v, want ErrNotFound", err)
	}
	if _, err := st.TouchLoginSession(ctx, "c-theirs", time.Hour); err != nil {
		t.Errorf("the other user's session was ended: %v", err)
	}
	if err := st.EndUserLoginSession(ctx, "acc1", older.SID, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.TouchLoginSession(ctx, "c-older", time.Hour); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ended session still live: %v", err)
	}
}

func testEndOtherLoginSessions(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "acc2")
	c := mustClient(t, st, "acc2-client")
	now := time.Now().UTC()
	keep := mustSession(t, st, "acc2", "c-keep", now)
	other := mustSession(t, st, "acc2", "c-other", now)
	for sess, id := range map[*store.LoginSession]string{keep: "g-keep", other: "g-other"} {
		r := userGrant(c, id, "acc2", sess.ID)
		if err := st.CreateAuthorizeCodeSession(ctx, "code-"+id, r); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateRefreshTokenSession(ctx, "rt-"+id, "", r); err != nil {
			t.Fatal(err)
		}
	}
	ended, err := st.EndOtherLoginSessions(ctx, "acc2", keep.ID, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ended, []string{other.SID}) {
		t.Errorf("ended = %v, want [%s]", ended, other.SID)
	}
	if _, err := st.GetRefreshTokenSession(ctx, "rt-g-other", nil); !errors.Is(err, fosite.ErrInactiveToken) {
		t.Errorf("the other session's grant: %v", err)
	}
	if _, err := st.GetRefreshTokenSession(ctx, "rt-g-keep", nil); err != nil {
		t.Errorf("the kept session's grant: %v", err)
	}
	if _, err := st.TouchLoginSession(ctx, "c-keep", time.Hour); err != nil {
		t.Errorf("the kept session ended: %v", err)
	}
}

func testAuthorizedApps(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "acc3")
	mustUser(t, st, "acc3-other")
	consented := mustClient(t, st, "acc3-consented")
	trusted := mustClient(t, st, "acc3-trusted")
	now := time.Now().UTC()
	ls := mustSession(t, st, "acc3", "c-acc3", now)
	if err := st.AddConsent(ctx, "acc3", consented.ID, []string{"read", "write"}); err != nil {
		t.Fatal(err)
	}
	grants := map[string]*fosite.Request{
		"g3-consented": userGrant(consented, "g3-consented", "acc3", ls.ID),
		"g3-trusted":   userGrant(trusted, "g3-trusted", "acc3", ""),
		"g3-theirs":    userGrant(consented, "g3-theirs", "acc3-other", ""),
	}
	for id, r := range grants {
		r.GrantedScope = fosite.Arguments{"read", "offline_access"}
		if err := st.CreateRefreshTokenSession(ctx, "rt-"+id, "", r); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateAccessTokenSession(ctx, "at-"+id, r); err != nil {
			t.Fatal(err)
		}
	}
	// A grant known only by its link to the login session (JWT access
	// tokens have no rows, and this one has no refresh token).
	if err := st.CreateAuthorizeCodeSession(ctx, "code-g3-jwt", userGrant(consented, "g3-jwt", "acc3", ls.ID)); err != nil {
		t.Fatal(err)
	}
	apps, err := st.ListAuthorizedApps(ctx, "acc3")
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != 2 {
		t.Fatalf("apps = %+v, want the consented and the trusted client", apps)
	}
	byID := map[string]store.AuthorizedApp{}
	for _, a := range apps {
		byID[a.ClientID] = a
	}
	if a := byID[consented.ID]; !slices.Equal(a.Scopes, []string{"read", "write"}) || a.Since.IsZero() || a.ClientName != consented.Name {
		t.Errorf("consented app = %+v", a)
	}
	if a := byID[trusted.ID]; !slices.Equal(a.Scopes, []string{"offline_access", "read"}) {
		t.Errorf("trusted app = %+v", a)
	}

	if err := st.RevokeApp(ctx, "acc3", consented.ID, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetRefreshTokenSession(ctx, "rt-g3-consented", nil); !errors.Is(err, fosite.ErrInactiveToken) {
		t.Errorf("refresh token of the revoked app: %v", err)
	}
	if _, err := st.GetAccessTokenSession(ctx, "at-g3-consented", nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("access token of the revoked app: %v", err)
	}
	for _, g := range []string{"g3-consented", "g3-jwt"} {
		if revoked, _ := st.IsRevoked(ctx, "jti", g, "acc3", now.Add(time.Minute)); !revoked {
			t.Errorf("JWTs of %s are not on the deny-list", g)
		}
	}
	if _, err := st.GetRefreshTokenSession(ctx, "rt-g3-theirs", nil); err != nil {
		t.Errorf("another user's grant to the same app was revoked: %v", err)
	}
	if _, err := st.GetRefreshTokenSession(ctx, "rt-g3-trusted", nil); err != nil {
		t.Errorf("another app's grant was revoked: %v", err)
	}
	apps, _ = st.ListAuthorizedApps(ctx, "acc3")
	if len(apps) != 1 || apps[0].ClientID != trusted.ID {
		t.Errorf("after revocation apps = %+v", apps)
	}
	// Again is no error.
	if err := st.RevokeApp(ctx, "acc3", consented.ID, now.Add(time.Hour)); err != nil {
		t.Errorf("revoking again: %v", err)
	}
}

func newEmailToken(t *testing.T, st *store.Store, token, userID, purpose string, ttl time.Duration) error {
	t.Helper()
	return st.CreateEmailToken(ctxT(t), token, &store.EmailToken{UserID: userID, Purpose: purpose, Email: userID + "@example.com",
		ExpiresAt: st.Now().Add(ttl)}, 10, time.Hour)
}

func testEmailTokenSingleUse(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "acc4")
	if err := newEmailToken(t, st, "tok-live", "acc4", store.EmailTokenReset, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := newEmailToken(t, st, "tok-expired", "acc4", store.EmailTokenReset, -time.Second); err != nil {
		t.Fatal(err)
	}
	if ids, _ := st.RawColumn(ctx, "email_tokens", "id"); slices.Contains(ids, "tok-live") {
		t.Error("the token is stored as is")
	}
	if _, err := st.RedeemEmailToken(ctx, "tok-live", store.EmailTokenVerify); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("redeemed for another purpose: %v", err)
	}
	if err := st.PeekEmailToken(ctx, "tok-live", store.EmailTokenReset); err != nil {
		t.Errorf("peek a live link: %v", err)
	}
	et, err := st.RedeemEmailToken(ctx, "tok-live", store.EmailTokenReset)
	if err != nil || et.UserID != "acc4" || et.Email != "acc4@example.com" || et.UsedAt == nil {
		t.Fatalf("redeem: %+v %v", et, err)
	}
	for _, tok := range []string{"tok-live", "tok-expired", "tok-unknown"} {
		if _, err := st.RedeemEmailToken(ctx, tok, store.EmailTokenReset); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("redeem %s: %v, want ErrNotFound", tok, err)
		}
		if err := st.PeekEmailToken(ctx, tok, store.EmailTokenReset); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("peek %s: %v, want ErrNotFound", tok, err)
		}
	}
	// A redemption rolled back leaves the link usable.
	if err := newEmailToken(t, st, "tok-rollback", "acc4", store.EmailTokenReset, time.Hour); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err = st.InTx(ctx, func(ctx context.Context) error {
		if _, err := st.RedeemEmailToken(ctx, "tok-rollback", store.EmailTokenReset); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if _, err := st.RedeemEmailToken(ctx, "tok-rollback", store.EmailTokenReset); err != nil {
		t.Errorf("after a rollback: %v", err)
	}
}

func testEmailTokenLimit(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "acc5")
	mk := func(tok, purpose string) error {
		return st.CreateEmailToken(ctx, tok, &store.EmailToken{UserID: "acc5", Purpose: purpose, Email: "a@example.com",
			ExpiresAt: st.Now().Add(time.Hour)}, 2, time.Hour)
	}
	for _, tok := range []string{"l1", "l2"} {
		if err := mk(tok, store.EmailTokenReset); err != nil {
			t.Fatal(err)
		}
	}
	if err := mk("l3", store.EmailTokenReset); !errors.Is(err, store.ErrLocked) {
		t.Errorf("third link within the hour: %v, want ErrLocked", err)
	}
	if err := mk("l4", store.EmailTokenVerify); err != nil {
		t.Errorf("the limit is per purpose: %v", err)
	}
}

// Of parallel redemptions of one link exactly one wins.
func testConcurrentEmailTokenRedemption(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "acc6")
	if err := newEmailToken(t, st, "tok-race", "acc6", store.EmailTokenReset, time.Hour); err != nil {
		t.Fatal(err)
	}
	errs := runConcurrently(10, func() error {
		return st.InTx(ctx, func(ctx context.Context) error {
			_, err := st.RedeemEmailToken(ctx, "tok-race", store.EmailTokenReset)
			return err
		})
	})
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, store.ErrNotFound), errors.Is(err, fosite.ErrSerializationFailure):
		default:
			t.Errorf("loser got %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d redemptions won, want exactly 1", wins)
	}
}

func testMarkEmailVerified(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "acc7")
	if err := st.UpdateUser(ctx, "acc7", func(u *store.User) error { u.Email = "New@Example.com"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := st.MarkEmailVerified(ctx, "acc7", "old@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a link to the old address: %v, want ErrNotFound", err)
	}
	if u, _ := st.FindUser(ctx, "acc7"); u.EmailVerified {
		t.Fatal("verified through another address")
	}
	if err := st.MarkEmailVerified(ctx, "acc7", "new@example.com"); err != nil {
		t.Fatal(err)
	}
	if u, _ := st.FindUser(ctx, "acc7"); !u.EmailVerified {
		t.Error("not verified")
	}
}
