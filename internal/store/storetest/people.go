package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/ory/fosite"
)

// peopleTests are the conformance cases for users, login sessions,
// consents, throttling counters and subject-wide revocation.
var peopleTests = []struct {
	name string
	fn   func(t *testing.T, st *store.Store)
}{
	{"LoginSessionTimeouts", testLoginSessionTimeouts},
	{"EndLoginSessionRevokesItsGrants", testEndLoginSession},
	{"ReplaceLoginSessionKeepsGrants", testReplaceLoginSession},
	{"RevokeSubject", testRevokeSubject},
	{"Consent", testConsent},
	{"ConsentToUnknownClientIsMissingReference", testConsentUnknownClient},
	{"ConcurrentConsentsNoneLost", testConcurrentConsents},
	{"ConsentUpdaterErrorChangesNothing", testConsentUpdaterError},
	{"LoginFailures", testLoginFailures},
	{"RefreshGraceBookkeeping", testRefreshGrace},
	{"UserProfileRoundTrip", testUserProfileRoundTrip},
	{"ConcurrentUserUpdatesNoneLost", testConcurrentUserUpdates},
	{"UpdateUnknownUserNotFound", testUpdateUnknownUser},
	{"UserUpdaterErrorChangesNothing", testUserUpdaterError},
}

func mustUser(t *testing.T, st *store.Store, id string) {
	t.Helper()
	if err := st.CreateUser(ctxT(t), &store.User{ID: id, Username: "name-" + id, PasswordHash: "$argon2id$x"}); err != nil {
		t.Fatal(err)
	}
}

func userGrant(c *store.Client, requestID, userID, loginSession string) *fosite.Request {
	r := newRequest(c, requestID, userID)
	r.Session.(*grantsession.Session).LoginSessionID = loginSession
	return r
}

func testLoginSessionTimeouts(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "u1")
	now := time.Now().UTC()
	live := &store.LoginSession{UserID: "u1", AuthTime: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := st.CreateLoginSession(ctx, "cookie-live", live); err != nil {
		t.Fatal(err)
	}
	if live.ID == "cookie-live" {
		t.Fatal("the session is keyed by the cookie value itself")
	}
	idle := &store.LoginSession{UserID: "u1", AuthTime: now, LastSeenAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(time.Hour)}
	expired := &store.LoginSession{UserID: "u1", AuthTime: now, LastSeenAt: now, ExpiresAt: now.Add(-time.Second)}
	for cookie, ls := range map[string]*store.LoginSession{"cookie-idle": idle, "cookie-expired": expired} {
		if err := st.CreateLoginSession(ctx, cookie, ls); err != nil {
			t.Fatal(err)
		}
	}

	if ls, err := st.TouchLoginSession(ctx, "cookie-live", time.Hour); err != nil || ls.UserID != "u1" {
		t.Fatalf("live session: %v %v", ls, err)
	}
	for _, c := range []string{"cookie-idle", "cookie-expired", "cookie-unknown"} {
		if _, err := st.TouchLoginSession(ctx, c, time.Hour); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", c, err)
		}
	}
}

func testEndLoginSession(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "u2")
	c := mustClient(t, st, "c2")
	now := time.Now().UTC()
	ls := &store.LoginSession{UserID: "u2", AuthTime: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := st.CreateLoginSession(ctx, "cookie", ls); err != nil {
		t.Fatal(err)
	}
	mine := []*fosite.Request{userGrant(c, "grant-mine", "u2", ls.ID), userGrant(c, "grant-mine2", "u2", ls.ID)}
	other := userGrant(c, "grant-other", "u2", "another-session")
	for _, r := range append(slices.Clone(mine), other) {
		// As in the code flow: the code links the grant to the session.
		if err := st.CreateAuthorizeCodeSession(ctx, "code-"+r.ID, r); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateRefreshTokenSession(ctx, "rt-"+r.ID, "", r); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateAccessTokenSession(ctx, "at-"+r.ID, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.EndLoginSession(ctx, ls.ID, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, r := range mine {
		if _, err := st.GetRefreshTokenSession(ctx, "rt-"+r.ID, nil); !errors.Is(err, fosite.ErrInactiveToken) {
			t.Errorf("refresh token of %s, a grant of the ended session: %v", r.ID, err)
		}
		if _, err := st.GetAuthorizeCodeSession(ctx, "code-"+r.ID, nil); !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
			t.Errorf("code of %s: %v", r.ID, err)
		}
		if _, err := st.GetAccessTokenSession(ctx, "at-"+r.ID, nil); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("opaque access token of %s: %v", r.ID, err)
		}
		if revoked, _ := st.IsRevoked(ctx, "jti", r.ID, "u2", now.Add(time.Hour)); !revoked {
			t.Errorf("the JWT access tokens of %s are not revoked", r.ID)
		}
	}
	if _, err := st.GetRefreshTokenSession(ctx, "rt-grant-other", nil); err != nil {
		t.Errorf("a grant of another session was revoked: %v", err)
	}
	if _, err := st.GetAccessTokenSession(ctx, "at-grant-other", nil); err != nil {
		t.Errorf("an access token of another session was revoked: %v", err)
	}
	if revoked, _ := st.IsRevoked(ctx, "jti", "grant-other", "u2", now.Add(time.Hour)); revoked {
		t.Error("a grant of another session is on the deny-list")
	}
	if _, err := st.TouchLoginSession(ctx, "cookie", time.Hour); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ended session still found: %v", err)
	}
}

func testReplaceLoginSession(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "u3")
	c := mustClient(t, st, "c3")
	now := time.Now().UTC()
	old := &store.LoginSession{UserID: "u3", AuthTime: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := st.CreateLoginSession(ctx, "old-cookie", old); err != nil {
		t.Fatal(err)
	}
	// The code and the first refresh token have expired by the time the
	// janitor runs; the grant itself lives on in rt-2.
	grant := userGrant(c, "grant", "u3", old.ID)
	grant.Session.SetExpiresAt(fosite.AuthorizeCode, now.Add(-time.Hour))
	grant.Session.SetExpiresAt(fosite.RefreshToken, now.Add(-time.Second))
	if err := st.CreateAuthorizeCodeSession(ctx, "code", grant); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateRefreshTokenSession(ctx, "rt", "", grant); err != nil {
		t.Fatal(err)
	}
	fresh := &store.LoginSession{UserID: "u3", AuthTime: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := st.ReplaceLoginSession(ctx, old.ID, "new-cookie", fresh); err != nil {
		t.Fatal(err)
	}
	if _, err := st.TouchLoginSession(ctx, "old-cookie", time.Hour); !errors.Is(err, store.ErrNotFound) {
		t.Error("the old cookie still works")
	}
	// Rotation after the re-login: the successor is written from the
	// stored session, which still names the old login session. Then the
	// rows that named the new one go (the janitor purges old codes and
	// rotated tokens). Logout must still find the grant.
	grant.Session.SetExpiresAt(fosite.RefreshToken, now.Add(time.Hour))
	if err := st.RotateRefreshTokenOnce(ctx, store.Rotation{OldSignature: "rt", NewSignature: "rt-2", Request: grant, GrantedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DeleteExpiredBatch(ctx, store.Retention{GrantLifetime: 2 * time.Hour}, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetAuthorizeCodeSession(ctx, "code", nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("the janitor kept the expired code: %v", err)
	}
	if err := st.EndLoginSession(ctx, fresh.ID, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetRefreshTokenSession(ctx, "rt-2", nil); !errors.Is(err, fosite.ErrInactiveToken) {
		t.Errorf("logout after re-login and rotation left the grant alive: %v", err)
	}
	if ids, err := st.GrantsOfLoginSession(ctx, fresh.ID); err != nil || len(ids) != 0 {
		t.Errorf("grants of an ended session: %v %v, want none", ids, err)
	}
}

func testRevokeSubject(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "u4")
	mustUser(t, st, "u5")
	c := mustClient(t, st, "c4")
	now := time.Now().UTC()
	for _, u := range []string{"u4", "u5"} {
		r := userGrant(c, "grant-"+u, u, "")
		if err := st.CreateAccessTokenSession(ctx, "at-"+u, r); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateRefreshTokenSession(ctx, "rt-"+u, "at-"+u, r); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateLoginSession(ctx, "cookie-"+u, &store.LoginSession{UserID: u, AuthTime: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.RevokeSubject(ctx, "u4", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetRefreshTokenSession(ctx, "rt-u4", nil); !errors.Is(err, fosite.ErrInactiveToken) {
		t.Errorf("refresh token of the revoked user: %v", err)
	}
	if _, err := st.GetAccessTokenSession(ctx, "at-u4", nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Errorf("access token of the revoked user: %v", err)
	}
	if _, err := st.TouchLoginSession(ctx, "cookie-u4", time.Hour); !errors.Is(err, store.ErrNotFound) {
		t.Error("login session of the revoked user survived")
	}
	if revoked, _ := st.IsRevoked(ctx, "j", "g", "u4", now.Add(-time.Minute)); !revoked {
		t.Error("a JWT issued before the revocation is not revoked")
	}
	if revoked, _ := st.IsRevoked(ctx, "j", "g", "u4", now.Add(time.Minute)); revoked {
		t.Error("a JWT issued after the revocation is revoked")
	}
	if _, err := st.GetRefreshTokenSession(ctx, "rt-u5", nil); err != nil {
		t.Errorf("another user's grant was revoked: %v", err)
	}
	if _, err := st.TouchLoginSession(ctx, "cookie-u5", time.Hour); err != nil {
		t.Errorf("another user's session was ended: %v", err)
	}
}

func testConsent(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "u6")
	mustClient(t, st, "c6")
	if s, err := st.ConsentedScopes(ctx, "u6", "c6"); err != nil || len(s) != 0 {
		t.Fatalf("no consent yet: %v %v", s, err)
	}
	for _, scopes := range [][]string{{"read", "openid"}, {"write", "read"}} {
		if err := st.AddConsent(ctx, "u6", "c6", scopes); err != nil {
			t.Fatal(err)
		}
	}
	if s, err := st.ConsentedScopes(ctx, "u6", "c6"); err != nil || !slices.Equal(s, []string{"openid", "read", "write"}) {
		t.Fatalf("consented scopes %v %v", s, err)
	}
}

// Consents given at once (two tabs, two instances) all count: each
// AddConsent reads and writes under the row's lock.
func testConcurrentConsents(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "u-cc")
	mustClient(t, st, "c-cc")
	const n = 8
	var next atomic.Int64
	for i, err := range runConcurrently(n, func() error {
		return st.AddConsent(ctx, "u-cc", "c-cc", []string{fmt.Sprintf("scope-%d", next.Add(1))})
	}) {
		if err != nil {
			t.Errorf("consent %d: %v", i, err)
		}
	}
	got, err := st.ConsentedScopes(ctx, "u-cc", "c-cc")
	if err != nil || len(got) != n {
		t.Fatalf("after %d concurrent consents the user consented to %v (%v): some were lost", n, got, err)
	}
}

// An updater that fails leaves no trace, not even the empty row the
// updater locks.
func testConsentUpdaterError(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "u-ce")
	mustClient(t, st, "c-ce")
	refused := errors.New("refused")
	if err := st.UpdateConsent(ctx, "u-ce", "c-ce", func(*store.Consent) error { return refused }); !errors.Is(err, refused) {
		t.Fatalf("UpdateConsent: %v, want the updater's error", err)
	}
	if _, err := st.FindConsent(ctx, "u-ce", "c-ce"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a failed update left a consent: %v", err)
	}
}

// testConsentUnknownClient: a consent naming a client that does not exist
// (deleted while its consent page was open) fails with the sentinel the
// callers test, whatever the driver's words.
func testConsentUnknownClient(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "u7")
	err := st.AddConsent(ctx, "u7", "no-such-client", []string{"read"})
	if !errors.Is(err, store.ErrMissingReference) {
		t.Fatalf("AddConsent for an unknown client: %v, want ErrMissingReference", err)
	}
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("AddConsent for an unknown client: %v also matches another sentinel", err)
	}
}

func testLoginFailures(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	lockAt3 := func(n int) time.Duration {
		if n >= 3 {
			return time.Minute
		}
		return 0
	}
	user := func(name string) store.AttemptKey { return store.AttemptKey{Key: "user:" + name, Lock: lockAt3} }
	ip := store.AttemptKey{Key: "ip:1.2.3.4", Lock: func(int) time.Duration { return 0 }}

	// Ten concurrent attempts at a limit of 3: three are counted, the third
	// locks, the other seven are refused and counted nowhere.
	errs := runConcurrently(10, func() error {
		_, err := st.ReserveLoginAttempt(ctx, time.Hour, user("bob"), ip)
		return err
	})
	granted := 0
	for _, err := range errs {
		switch {
		case err == nil:
			granted++
		case !errors.Is(err, store.ErrLocked):
			t.Fatal(err)
		}
	}
	recs, err := st.LoginFailures(ctx, time.Hour, "user:bob", "ip:1.2.3.4")
	if err != nil || granted != 3 || len(recs) != 2 {
		t.Fatalf("granted %d of 10 at a limit of 3; records %+v %v", granted, recs, err)
	}
	for _, r := range recs {
		if r.Failures != 3 || (r.Key == "user:bob") != (r.LockedUntil != nil) {
			t.Fatalf("record %+v: want 3 attempts, and a lock on the username only", r)
		}
	}
	// A refusal by the second key counts nothing against the first.
	if _, err := st.ReserveLoginAttempt(ctx, time.Hour, ip, user("bob")); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("locked username: %v", err)
	}
	if recs, _ := st.LoginFailures(ctx, time.Hour, "ip:1.2.3.4"); recs[0].Failures != 3 {
		t.Fatalf("a refused attempt was counted against the IP: %+v", recs)
	}
	// Release takes one back and lifts a lock it falls below.
	if err := st.ReleaseLoginAttempt(ctx, "user:bob", 3); err != nil {
		t.Fatal(err)
	}
	if recs, _ := st.LoginFailures(ctx, time.Hour, "user:bob"); recs[0].Failures != 2 || recs[0].LockedUntil != nil {
		t.Fatalf("released: %+v", recs)
	}
	if err := st.ClearLoginFailures(ctx, "user:bob"); err != nil {
		t.Fatal(err)
	}
	if recs, _ := st.LoginFailures(ctx, time.Hour, "user:bob"); len(recs) != 0 {
		t.Fatalf("cleared failures: %+v", recs)
	}
	// Outside the window the count starts over.
	for range 2 {
		n, err := st.ReserveLoginAttempt(ctx, -time.Second, user("eve"))
		if err != nil || n[0] != 1 {
			t.Fatalf("attempts outside the window: %v %v, want 1", n, err)
		}
	}
}

func testRefreshGrace(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	c := mustClient(t, st, "c7")
	if err := st.CreateRefreshTokenSession(ctx, "rt", "", newRequest(c, "grant", "u")); err != nil {
		t.Fatal(err)
	}
	if err := st.RotateRefreshTokenOnce(ctx, rotation(c, "rt", "grant", "u", time.Now().UTC(), false)); err != nil {
		t.Fatal(err)
	}
	again := rotation(c, "rt", "grant", "u", time.Now().UTC(), false)
	again.Sealed, again.NewSignature = []byte("other"), "rt-other"
	if err := st.RotateRefreshTokenOnce(ctx, again); !errors.Is(err, fosite.ErrSerializationFailure) {
		t.Fatalf("second rotation: %v", err)
	}
	rec, err := st.FindRefreshToken(ctx, "rt", nil)
	if err != nil || rec.Active || rec.RotatedAt == nil || string(rec.Successor) != "sealed" || rec.Request.GetID() != "grant" {
		t.Fatalf("rotated record %+v %v", rec, err)
	}
	for i := range 3 {
		ok, err := st.ClaimGraceUse(ctx, "rt", 3)
		if err != nil || !ok {
			t.Fatalf("grace use %d: %v %v", i, ok, err)
		}
	}
	if ok, _ := st.ClaimGraceUse(ctx, "rt", 3); ok {
		t.Fatal("grace uses are not bounded")
	}
}

// testUserProfileRoundTrip stores every profile field, reads it back by ID,
// by name and in the list, changes every field through UpdateUser and
// clears them again: each column is written and read, zero values included.
func testUserProfileRoundTrip(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	want := store.User{
		ID: "u-profile", Username: "zoë", PasswordHash: "$argon2id$x",
		Email: "zoe@example.com", EmailVerified: true, Name: "Zoë Ålund", GivenName: "Zoë", FamilyName: "Ålund",
		Picture: "https://img.example/zoe.png", Locale: "sv-SE", Groups: []string{"admins", "Ops team", "ünïcode"},
	}
	created := want
	if err := st.CreateUser(ctx, &created); err != nil {
		t.Fatal(err)
	}
	same := func(what string, got *store.User, want store.User) {
		t.Helper()
		if got.ID != want.ID || got.Username != want.Username || got.PasswordHash != want.PasswordHash ||
			got.Email != want.Email || got.EmailVerified != want.EmailVerified || got.Name != want.Name ||
			got.GivenName != want.GivenName || got.FamilyName != want.FamilyName || got.Picture != want.Picture ||
			got.Locale != want.Locale || !slices.Equal(got.Groups, want.Groups) || got.Groups == nil {
			t.Fatalf("%s:\n got %+v\nwant %+v", what, *got, want)
		}
	}
	byID, err := st.FindUser(ctx, want.ID)
	if err != nil {
		t.Fatal(err)
	}
	same("FindUser", byID, want)
	byName, err := st.FindUserByName(ctx, want.Username)
	if err != nil {
		t.Fatal(err)
	}
	same("FindUserByName", byName, want)
	list, err := st.ListUsers(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("ListUsers: %d users, %v", len(list), err)
	}
	same("ListUsers", list[0], want)

	changed := store.User{
		ID: want.ID, Username: "zoe", PasswordHash: want.PasswordHash,
		Email: "z@example.org", EmailVerified: false, Name: "Z", GivenName: "Z", FamilyName: "A",
		Picture: "http://127.0.0.1:9/z.png", Locale: "en", Groups: []string{"one"},
	}
	if err := st.UpdateUser(ctx, want.ID, func(u *store.User) error {
		same("what the updater sees", u, want)
		created := u.CreatedAt
		*u = changed
		u.CreatedAt = created
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := st.FindUser(ctx, want.ID)
	if err != nil {
		t.Fatal(err)
	}
	same("after UpdateUser", got, changed)
	if !got.CreatedAt.Equal(byID.CreatedAt) {
		t.Errorf("UpdateUser moved created_at from %v to %v", byID.CreatedAt, got.CreatedAt)
	}

	cleared := store.User{ID: want.ID, Username: "zoe", PasswordHash: want.PasswordHash, Groups: []string{}}
	if err := st.UpdateUser(ctx, want.ID, func(u *store.User) error {
		u.Email, u.EmailVerified, u.Name, u.GivenName, u.FamilyName, u.Picture, u.Locale, u.Groups = "", false, "", "", "", "", "", nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, err = st.FindUser(ctx, want.ID); err != nil {
		t.Fatal(err)
	}
	same("after clearing", got, cleared)

	// A rename onto a taken username is refused, as a create is.
	mustUser(t, st, "other")
	if err := st.UpdateUser(ctx, want.ID, func(u *store.User) error { u.Username = "name-other"; return nil }); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("rename onto a taken username: %v, want ErrAlreadyExists", err)
	}
}

// testConcurrentUserUpdates runs many read-modify-write updates of one user
// at once, each adding its own group: a lost update would leave some out.
func testConcurrentUserUpdates(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "contended")
	const workers, each = 8, 5
	errs := runConcurrently(workers, func() error {
		for range each {
			err := st.UpdateUser(ctx, "contended", func(u *store.User) error {
				u.Groups = append(u.Groups, fmt.Sprintf("g%d", len(u.Groups)))
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	for _, err := range errs {
		if err != nil {
			t.Fatalf("UpdateUser: %v", err)
		}
	}
	u, err := st.FindUser(ctx, "contended")
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Groups) != workers*each {
		t.Fatalf("%d groups after %d concurrent updates: updates were lost", len(u.Groups), workers*each)
	}
	for i, g := range u.Groups {
		if g != fmt.Sprintf("g%d", i) {
			t.Fatalf("group %d is %q: two updaters saw the same row", i, g)
		}
	}
}

func testUpdateUnknownUser(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	for _, id := range []string{"nobody", "", "\xff"} {
		called := false
		err := st.UpdateUser(ctx, id, func(*store.User) error { called = true; return nil })
		if !errors.Is(err, store.ErrNotFound) || called {
			t.Errorf("UpdateUser(%q) = %v (updater called: %v), want ErrNotFound without a call", id, err, called)
		}
	}
}

// testUserUpdaterError: an updater's error is returned as is and nothing it
// changed is saved.
func testUserUpdaterError(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "kept")
	refused := errors.New("refused")
	err := st.UpdateUser(ctx, "kept", func(u *store.User) error {
		u.Email, u.Groups = "x@example.com", []string{"x"}
		return refused
	})
	if err != refused { //nolint:errorlint // returned as is, unwrapped
		t.Fatalf("UpdateUser = %v, want the updater's own error", err)
	}
	u, err := st.FindUser(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != "" || len(u.Groups) != 0 {
		t.Fatalf("a failed update was saved: %+v", u)
	}
}
