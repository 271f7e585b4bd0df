package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/ory/fosite"
)

// RunConformance is the storage contract, run against every backend. A new
// backend passes it or is not a Latchkey store.
func RunConformance(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st *store.Store)
	}{
		{"MigrationsApplied", testMigrationsApplied},
		{"ClientCRUD", testClientCRUD},
		{"ConcurrentClientUpdatesNoneLost", testConcurrentClientUpdates},
		{"RequestRoundTrip", testRequestRoundTrip},
		{"NilSessionPrototype", testNilSessionPrototype},
		{"SensitiveFormNotStored", testSensitiveFormNotStored},
		{"AuthorizeCodeSingleUse", testAuthorizeCodeSingleUse},
		{"RefreshRotation", testRefreshRotation},
		{"FositeRotateRefreshToken", testFositeRotateRefreshToken},
		{"RevokeGrant", testRevokeGrant},
		{"PKCE", testPKCE},
		{"DeleteTokens", testDeleteTokens},
		{"DeleteClientCascades", testDeleteClientCascades},
		{"TransactionCommitRollback", testTransactionCommitRollback},
		{"NestedTransaction", testNestedTransaction},
		{"EveryMethodInsideTransaction", testEveryMethodInsideTransaction},
		{"ConcurrentRotationOneWinner", testConcurrentRotation},
		{"ConcurrentCodeRedemptionOneWinner", testConcurrentCodeRedemption},
		{"ClientAssertionJTI", testClientAssertionJTI},
		{"DPoPProofOnce", testDPoPProofOnce},
		{"UserByName", testUserByName},
	}
	tests = append(tests, peopleTests...)
	tests = append(tests, grantLockTests...)
	tests = append(tests, janitorTests...)
	tests = append(tests, logoutTests...)
	tests = append(tests, pushedTests...)
	tests = append(tests, deviceTests...)
	tests = append(tests, factorTests...)
	tests = append(tests, passkeyTests...)
	tests = append(tests, scopeTests...)
	tests = append(tests, accountTests...)
	tests = append(tests, auditTests...)
	tests = append(tests, corsTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, New(t, b))
		})
	}
	for _, tc := range append(append(append(append(append(append(append(backendTests, logoutBackendTests...), pushedBackendTests...), deviceBackendTests...), factorBackendTests...), keysBackendTests...), passkeyBackendTests...), denyListBackendTests...) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, b)
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustClient(t *testing.T, st *store.Store, id string) *store.Client {
	t.Helper()
	c := &store.Client{
		ID: id, Name: "client " + id, SecretHash: []byte("hash-" + id),
		RedirectURIs: []string{"https://app.example/cb"}, GrantTypes: []string{"authorization_code", "refresh_token", "client_credentials"},
		ResponseTypes: []string{"code"}, Scopes: []string{"openid", "offline_access", "read"}, Audience: []string{"https://api.example"},
		TokenEndpointAuthMethod: "client_secret_basic",
	}
	if err := st.CreateClient(ctxT(t), c); err != nil {
		t.Fatalf("create client: %v", err)
	}
	return c
}

// newRequest is a fully populated grant: every field must survive storage.
func newRequest(c *store.Client, requestID, subject string) *fosite.Request {
	r := fosite.NewRequest()
	r.ID = requestID
	r.RequestedAt = time.Now().UTC().Truncate(time.Second)
	r.Client = c
	r.RequestedScope = fosite.Arguments{"openid", "offline_access", "read"}
	r.GrantedScope = fosite.Arguments{"openid", "offline_access"}
	r.RequestedAudience = fosite.Arguments{"https://api.example"}
	r.GrantedAudience = fosite.Arguments{"https://api.example"}
	r.Form = url.Values{"grant_type": {"authorization_code"}, "redirect_uri": {"https://app.example/cb"}}
	s := grantsession.New(subject)
	s.Username = "alice"
	s.SetExpiresAt(fosite.AccessToken, time.Now().UTC().Add(15*time.Minute).Truncate(time.Second))
	s.SetExpiresAt(fosite.RefreshToken, time.Now().UTC().Add(720*time.Hour).Truncate(time.Second))
	s.SetExpiresAt(fosite.AuthorizeCode, time.Now().UTC().Add(time.Minute).Truncate(time.Second))
	r.Session = s
	return r
}

func testMigrationsApplied(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	pending, err := st.Pending(ctx)
	if err != nil || pending {
		t.Fatalf("Pending = %v, %v; want false after Migrate", pending, err)
	}
	status, err := st.Status(ctx)
	if err != nil || len(status) == 0 {
		t.Fatalf("Status = %v, %v", status, err)
	}
	for _, m := range status {
		if !m.Applied {
			t.Errorf("migration %d %s not applied", m.Version, m.Name)
		}
	}
	again, err := st.Migrate(ctx)
	if err != nil || len(again) != 0 {
		t.Fatalf("second Migrate applied %v, %v; want nothing", again, err)
	}
	if err := st.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testClientCRUD(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	c := mustClient(t, st, "crud")
	if err := st.CreateClient(ctx, &store.Client{ID: "crud", TokenEndpointAuthMethod: "none"}); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate create: %v, want ErrAlreadyExists", err)
	}
	got, err := st.FindClient(ctx, "crud")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != c.Name || string(got.SecretHash) != string(c.SecretHash) || !slices.Equal(got.RedirectURIs, c.RedirectURIs) ||
		!slices.Equal(got.GrantTypes, c.GrantTypes) || !slices.Equal(got.Scopes, c.Scopes) || !slices.Equal(got.Audience, c.Audience) {
		t.Fatalf("round trip: got %+v want %+v", got, c)
	}
	fc, err := st.GetClient(ctx, "crud")
	if err != nil || fc.GetID() != "crud" || fc.IsPublic() {
		t.Fatalf("GetClient = %v, %v", fc, err)
	}
	if err := st.UpdateClient(ctx, "crud", func(c *store.Client) error {
		c.Name, c.Trusted, c.Scopes = "renamed", true, []string{"read"}
		c.ID, c.CreatedAt = "changed", time.Time{} // ignored: never written
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	again, _ := st.FindClient(ctx, "crud")
	if again.Name != "renamed" || !again.Trusted || !slices.Equal(again.Scopes, []string{"read"}) || again.CreatedAt.IsZero() ||
		string(again.SecretHash) != string(c.SecretHash) || !slices.Equal(again.RedirectURIs, c.RedirectURIs) {
		t.Fatalf("update not stored: %+v", again)
	}
	// Zero values are written too: an updater that clears a field clears it.
	if err := st.UpdateClient(ctx, "crud", func(c *store.Client) error { c.Trusted, c.Audience = false, nil; return nil }); err != nil {
		t.Fatal(err)
	}
	if again, _ = st.FindClient(ctx, "crud"); again.Trusted || len(again.Audience) != 0 {
		t.Fatalf("zero values not stored: %+v", again)
	}
	// An updater's error aborts the update and comes back as is.
	errVeto := errors.New("veto")
	if err := st.UpdateClient(ctx, "crud", func(c *store.Client) error { c.Name = "vetoed"; return errVeto }); !errors.Is(err, errVeto) {
		t.Fatalf("UpdateClient with a failing updater = %v, want errVeto", err)
	}
	if again, _ = st.FindClient(ctx, "crud"); again.Name != "renamed" {
		t.Fatalf("a refused update was stored: %+v", again)
	}
	if err := st.UpdateClient(ctx, "crud", func(c *store.Client) error { c.SecretHash = []byte("new"); return nil }); err != nil {
		t.Fatal(err)
	}
	if again, _ = st.FindClient(ctx, "crud"); string(again.SecretHash) != "new" {
		t.Fatalf("secret hash = %q", again.SecretHash)
	}
	// OpenID Connect metadata (issue 14) is written by create and update,
	// and cleared by an update that clears it.
	if err := st.UpdateClient(ctx, "crud", func(c *store.Client) error {
		c.IDTokenSignedResponseAlg, c.BackchannelLogoutURI, c.BackchannelLogoutSessionRequired = "EdDSA", "https://app.example/bcl?x=1", true
		c.PostLogoutRedirectURIs = []string{"https://app.example/bye"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if again, _ = st.FindClient(ctx, "crud"); again.IDTokenSignedResponseAlg != "EdDSA" || again.BackchannelLogoutURI != "https://app.example/bcl?x=1" ||
		!again.BackchannelLogoutSessionRequired || !slices.Equal(again.PostLogoutRedirectURIs, []string{"https://app.example/bye"}) {
		t.Fatalf("OpenID Connect metadata not stored: %+v", again)
	}
	if err := st.UpdateClient(ctx, "crud", func(c *store.Client) error {
		c.BackchannelLogoutURI, c.BackchannelLogoutSessionRequired, c.PostLogoutRedirectURIs = "", false, nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if again, _ = st.FindClient(ctx, "crud"); again.BackchannelLogoutURI != "" || again.BackchannelLogoutSessionRequired ||
		len(again.PostLogoutRedirectURIs) != 0 || again.IDTokenSignedResponseAlg != "EdDSA" {
		t.Fatalf("OpenID Connect metadata not cleared: %+v", again)
	}
	oidc := &store.Client{ID: "crud-oidc", TokenEndpointAuthMethod: "client_secret_basic", IDTokenSignedResponseAlg: "ES256",
		BackchannelLogoutURI: "https://rp.example/bcl", BackchannelLogoutSessionRequired: true, PostLogoutRedirectURIs: []string{"https://rp.example/bye"},
		DPoPBoundAccessTokens: true}
	if err := st.CreateClient(ctx, oidc); err != nil {
		t.Fatal(err)
	}
	if got, err := st.FindClient(ctx, "crud-oidc"); err != nil || got.IDTokenSignedResponseAlg != "ES256" || got.IDTokenAlg() != "ES256" ||
		got.BackchannelLogoutURI != oidc.BackchannelLogoutURI || !got.BackchannelLogoutSessionRequired || !slices.Equal(got.PostLogoutRedirectURIs, oidc.PostLogoutRedirectURIs) ||
		!got.DPoPBoundAccessTokens {
		t.Fatalf("created OpenID Connect metadata: %+v, %v", got, err)
	}
	// A row written without an algorithm reads as the RS256 default.
	if err := st.UpdateClient(ctx, "crud-oidc", func(c *store.Client) error { c.IDTokenSignedResponseAlg = ""; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.FindClient(ctx, "crud-oidc"); got.IDTokenAlg() != store.DefaultIDTokenAlg {
		t.Fatalf("IDTokenAlg of a row without one = %q", got.IDTokenAlg())
	}
	if err := st.DeleteClient(ctx, "crud-oidc"); err != nil {
		t.Fatal(err)
	}

	list, err := st.ListClients(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("ListClients = %d, %v", len(list), err)
	}
	if err := st.DeleteClient(ctx, "crud"); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"find":   func() error { _, err := st.FindClient(ctx, "crud"); return err }(),
		"get":    func() error { _, err := st.GetClient(ctx, "crud"); return err }(),
		"update": st.UpdateClient(ctx, "crud", func(*store.Client) error { return nil }),
		"delete": st.DeleteClient(ctx, "crud"),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s of deleted client: %v, want ErrNotFound", name, err)
		}
	}
}

// testConcurrentClientUpdates runs many read-modify-write updates of one
// client at once; each adds its own entry. A lost update (two updaters
// reading the same row and the later write discarding the earlier) would
// leave entries missing.
func testConcurrentClientUpdates(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustClient(t, st, "contended")
	const workers, each = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				errs <- st.UpdateClient(ctx, "contended", func(c *store.Client) error {
					c.RedirectURIs = append(c.RedirectURIs, fmt.Sprintf("https://app.example/cb/%d/%d", w, i))
					return nil
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("UpdateClient: %v", err)
		}
	}
	got, err := st.FindClient(ctx, "contended")
	if err != nil {
		t.Fatal(err)
	}
	if want := 1 + workers*each; len(got.RedirectURIs) != want {
		t.Fatalf("%d redirect URIs after %d concurrent updates, want %d: updates were lost", len(got.RedirectURIs), workers*each, want)
	}
}

func assertSameRequest(t *testing.T, got fosite.Requester, want *fosite.Request, kind fosite.TokenType) {
	t.Helper()
	if got.GetID() != want.ID {
		t.Errorf("ID = %q want %q", got.GetID(), want.ID)
	}
	if !got.GetRequestedAt().Equal(want.RequestedAt) {
		t.Errorf("RequestedAt = %v want %v", got.GetRequestedAt(), want.RequestedAt)
	}
	if got.GetClient().GetID() != want.Client.GetID() {
		t.Errorf("client = %q", got.GetClient().GetID())
	}
	for name, pair := range map[string][2]fosite.Arguments{
		"requested scope":    {got.GetRequestedScopes(), want.RequestedScope},
		"granted scope":      {got.GetGrantedScopes(), want.GrantedScope},
		"requested audience": {got.GetRequestedAudience(), want.RequestedAudience},
		"granted audience":   {got.GetGrantedAudience(), want.GrantedAudience},
	} {
		if !slices.Equal(pair[0], pair[1]) {
			t.Errorf("%s = %v want %v", name, pair[0], pair[1])
		}
	}
	if got.GetRequestForm().Get("redirect_uri") != want.Form.Get("redirect_uri") {
		t.Errorf("form = %v", got.GetRequestForm())
	}
	gs, ws := got.GetSession(), want.Session
	if gs.GetSubject() != ws.GetSubject() || gs.GetUsername() != ws.GetUsername() {
		t.Errorf("session = %+v want %+v", gs, ws)
	}
	// Expiry lives in the session: losing it would make tokens immortal.
	for _, k := range []fosite.TokenType{fosite.AccessToken, fosite.RefreshToken, fosite.AuthorizeCode} {
		if !gs.GetExpiresAt(k).Equal(ws.GetExpiresAt(k)) {
			t.Errorf("%s expiry = %v want %v", k, gs.GetExpiresAt(k), ws.GetExpiresAt(k))
		}
	}
}

func testRequestRoundTrip(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	c := mustClient(t, st, "rt")
	req := newRequest(c, "req-rt", "user-1")
	kinds := []struct {
		name   string
		kind   fosite.TokenType
		create func() error
		get    func() (fosite.Requester, error)
	}{
		{"access", fosite.AccessToken, func() error { return st.CreateAccessTokenSession(ctx, "at", req) },
			func() (fosite.Requester, error) { return st.GetAccessTokenSession(ctx, "at", grantsession.New("")) }},
		{"refresh", fosite.RefreshToken, func() error { return st.CreateRefreshTokenSession(ctx, "rt", "at", req) },
			func() (fosite.Requester, error) { return st.GetRefreshTokenSession(ctx, "rt", grantsession.New("")) }},
		{"code", fosite.AuthorizeCode, func() error { return st.CreateAuthorizeCodeSession(ctx, "code", req) },
			func() (fosite.Requester, error) { return st.GetAuthorizeCodeSession(ctx, "code", grantsession.New("")) }},
		{"pkce", fosite.AuthorizeCode, func() error { return st.CreatePKCERequestSession(ctx, "code", req) },
			func() (fosite.Requester, error) { return st.GetPKCERequestSession(ctx, "code", grantsession.New("")) }},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			if err := k.create(); err != nil {
				t.Fatal(err)
			}
			got, err := k.get()
			if err != nil {
				t.Fatal(err)
			}
			assertSameRequest(t, got, req, k.kind)
		})
	}
	if _, err := st.GetAccessTokenSession(ctx, "unknown", grantsession.New("")); !errors.Is(err, fosite.ErrNotFound) {
		t.Errorf("unknown access token: %v, want ErrNotFound", err)
	}
	if _, err := st.GetRefreshTokenSession(ctx, "at", grantsession.New("")); !errors.Is(err, fosite.ErrNotFound) {
		t.Errorf("an access signature must not find a refresh token: %v", err)
	}
}

// Revocation hands fosite a nil session prototype; the store must still
// decode the session.
func testNilSessionPrototype(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	req := newRequest(mustClient(t, st, "nil"), "req-nil", "user-2")
	if err := st.CreateRefreshTokenSession(ctx, "rt", "", req); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetRefreshTokenSession(ctx, "rt", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetSession().GetSubject() != "user-2" || got.GetSession().GetExpiresAt(fosite.RefreshToken).IsZero() {
		t.Fatalf("session = %+v", got.GetSession())
	}
}

// Credentials and tokens in the request form never reach the database, and
// rows are keyed by a digest of the signature, never the signature itself.
func testSensitiveFormNotStored(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	req := newRequest(mustClient(t, st, "sens"), "req-sens", "user-3")
	req.Form = url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"hunter2"},
		"client_secret": {"s3cret"}, "refresh_token": {"rt-raw"}, "code": {"code-raw"}, "code_verifier": {"verifier"}}
	if err := st.CreateAccessTokenSession(ctx, "sig-sens", req); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetAccessTokenSession(ctx, "sig-sens", grantsession.New(""))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"password", "client_secret", "refresh_token", "code", "code_verifier"} {
		if got.GetRequestForm().Has(k) {
			t.Errorf("form kept %q", k)
		}
	}
	if got.GetRequestForm().Get("username") != "alice" {
		t.Errorf("form lost a harmless field: %v", got.GetRequestForm())
	}
	keys := RawSignatures(t, st, "access_tokens")
	if len(keys) != 1 || keys[0] != secrets.SignatureKey("sig-sens") || keys[0] == "sig-sens" {
		t.Fatalf("stored keys = %v, want only the digest of the signature", keys)
	}
}

func testAuthorizeCodeSingleUse(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	req := newRequest(mustClient(t, st, "code"), "req-code", "user-4")
	if err := st.CreateAuthorizeCodeSession(ctx, "code", req); err != nil {
		t.Fatal(err)
	}
	if err := st.InvalidateAuthorizeCodeSession(ctx, "code"); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetAuthorizeCodeSession(ctx, "code", grantsession.New(""))
	if !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
		t.Fatalf("used code: %v, want ErrInvalidatedAuthorizeCode", err)
	}
	// fosite needs the request to revoke what the first redemption issued.
	if got == nil || got.GetID() != "req-code" {
		t.Fatalf("used code must come with its request, got %v", got)
	}
	if err := st.InvalidateAuthorizeCodeSession(ctx, "code"); !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
		t.Fatalf("second invalidation: %v, want ErrInvalidatedAuthorizeCode", err)
	}
}

// Rotation through the production path, RotateRefreshTokenOnce: the old
// token is retired (and still returns its request), the successor and its
// access token are stored, and a second rotation of the same token loses.
func testRefreshRotation(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	c := mustClient(t, st, "rot")
	req := newRequest(c, "req-rot", "user-5")
	if err := st.CreateAccessTokenSession(ctx, "at1", req); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateRefreshTokenSession(ctx, "rt1", "at1", req); err != nil {
		t.Fatal(err)
	}
	rot := rotation(c, "rt1", "req-rot", "user-5", time.Now().UTC(), true)
	if err := st.RotateRefreshTokenOnce(ctx, rot); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetRefreshTokenSession(ctx, "rt1", grantsession.New(""))
	if !errors.Is(err, fosite.ErrInactiveToken) || got == nil || got.GetID() != "req-rot" {
		t.Fatalf("rotated token: %v, %v; want its request and ErrInactiveToken", got, err)
	}
	rec, err := st.FindRefreshToken(ctx, "rt1", nil)
	if err != nil || rec.RotatedAt == nil || string(rec.Successor) != "sealed" {
		t.Fatalf("rotated record %+v %v: want rotated_at and the sealed successor", rec, err)
	}
	if next, err := st.GetRefreshTokenSession(ctx, rot.NewSignature, grantsession.New("")); err != nil || next.GetID() != "req-rot" {
		t.Fatalf("successor: %v %v", next, err)
	}
	if _, err := st.GetAccessTokenSession(ctx, rot.AccessSignature, grantsession.New("")); err != nil {
		t.Fatalf("the successor's access token: %v", err)
	}
	again := rot
	again.NewSignature, again.AccessSignature = "rt1-other", "rt1-other-at"
	if err := st.RotateRefreshTokenOnce(ctx, again); !errors.Is(err, fosite.ErrSerializationFailure) {
		t.Fatalf("second rotation: %v, want ErrSerializationFailure", err)
	}
	if _, err := st.GetRefreshTokenSession(ctx, again.NewSignature, grantsession.New("")); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("the losing rotation stored its successor: %v", err)
	}
	// The access token issued with the rotated refresh token stays valid.
	if _, err := st.GetAccessTokenSession(ctx, "at1", grantsession.New("")); err != nil {
		t.Fatalf("access token after rotation: %v", err)
	}
}

// RotateRefreshToken is fosite's interface method, which Latchkey's refresh
// handler does not call; it must still be single use.
func testFositeRotateRefreshToken(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	req := newRequest(mustClient(t, st, "frot"), "req-frot", "user-5")
	if err := st.CreateRefreshTokenSession(ctx, "rt1", "", req); err != nil {
		t.Fatal(err)
	}
	if err := st.RotateRefreshToken(ctx, "req-frot", "rt1"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetRefreshTokenSession(ctx, "rt1", grantsession.New("")); !errors.Is(err, fosite.ErrInactiveToken) {
		t.Fatalf("rotated token: %v, want ErrInactiveToken", err)
	}
	if err := st.RotateRefreshToken(ctx, "req-frot", "rt1"); !errors.Is(err, fosite.ErrSerializationFailure) {
		t.Fatalf("second rotation: %v, want ErrSerializationFailure", err)
	}
}

func testRevokeGrant(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	c := mustClient(t, st, "rev")
	grant, other := newRequest(c, "req-a", "user-6"), newRequest(c, "req-b", "user-6")
	for _, sig := range []string{"a1", "a2"} {
		if err := st.CreateAccessTokenSession(ctx, "at-"+sig, grant); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateRefreshTokenSession(ctx, "rt-"+sig, "at-"+sig, grant); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CreateAccessTokenSession(ctx, "at-b", other); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateRefreshTokenSession(ctx, "rt-b", "at-b", other); err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeRefreshToken(ctx, "req-a"); err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeAccessToken(ctx, "req-a"); err != nil {
		t.Fatal(err)
	}
	for _, sig := range []string{"a1", "a2"} {
		if _, err := st.GetAccessTokenSession(ctx, "at-"+sig, grantsession.New("")); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("revoked access token %s: %v", sig, err)
		}
		if _, err := st.GetRefreshTokenSession(ctx, "rt-"+sig, grantsession.New("")); !errors.Is(err, fosite.ErrInactiveToken) {
			t.Errorf("revoked refresh token %s: %v, want ErrInactiveToken", sig, err)
		}
	}
	if _, err := st.GetAccessTokenSession(ctx, "at-b", grantsession.New("")); err != nil {
		t.Errorf("another grant's access token was revoked: %v", err)
	}
	if _, err := st.GetRefreshTokenSession(ctx, "rt-b", grantsession.New("")); err != nil {
		t.Errorf("another grant's refresh token was revoked: %v", err)
	}
	// Revoking what is gone succeeds (RFC 7009 §2.2).
	if err := st.RevokeRefreshToken(ctx, "req-none"); err != nil {
		t.Errorf("revoke unknown grant: %v", err)
	}
	if err := st.RevokeAccessToken(ctx, "req-none"); err != nil {
		t.Errorf("revoke unknown grant: %v", err)
	}
}

func testPKCE(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	req := newRequest(mustClient(t, st, "pkce"), "req-pkce", "user-7")
	req.Form.Set("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
	req.Form.Set("code_challenge_method", "S256")
	if err := st.CreatePKCERequestSession(ctx, "code-sig", req); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetPKCERequestSession(ctx, "code-sig", grantsession.New(""))
	if err != nil || got.GetRequestForm().Get("code_challenge") != req.Form.Get("code_challenge") {
		t.Fatalf("PKCE challenge lost: %v, %v", got, err)
	}
	if err := st.DeletePKCERequestSession(ctx, "code-sig"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetPKCERequestSession(ctx, "code-sig", grantsession.New("")); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("deleted PKCE session: %v", err)
	}
}

func testDeleteTokens(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	req := newRequest(mustClient(t, st, "del"), "req-del", "user-8")
	if err := st.CreateAccessTokenSession(ctx, "at", req); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateRefreshTokenSession(ctx, "rt", "at", req); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteAccessTokenSession(ctx, "at"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteRefreshTokenSession(ctx, "rt"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetAccessTokenSession(ctx, "at", grantsession.New("")); !errors.Is(err, fosite.ErrNotFound) {
		t.Errorf("deleted access token: %v", err)
	}
	if _, err := st.GetRefreshTokenSession(ctx, "rt", grantsession.New("")); !errors.Is(err, fosite.ErrNotFound) {
		t.Errorf("deleted refresh token: %v", err)
	}
}

func testDeleteClientCascades(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	req := newRequest(mustClient(t, st, "cascade"), "req-cascade", "user-9")
	if err := st.CreateAccessTokenSession(ctx, "at", req); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateRefreshTokenSession(ctx, "rt", "at", req); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteClient(ctx, "cascade"); err != nil {
		t.Fatal(err)
	}
	if n := len(RawSignatures(t, st, "access_tokens")) + len(RawSignatures(t, st, "refresh_tokens")); n != 0 {
		t.Fatalf("%d token rows outlived their client", n)
	}
}

func testTransactionCommitRollback(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	req := newRequest(mustClient(t, st, "tx"), "req-tx", "user-10")

	txCtx, err := st.BeginTX(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAccessTokenSession(txCtx, "rolled-back", req); err != nil {
		t.Fatal(err)
	}
	if err := st.Rollback(txCtx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetAccessTokenSession(ctx, "rolled-back", grantsession.New("")); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("rolled back row is visible: %v", err)
	}

	txCtx, err = st.BeginTX(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAccessTokenSession(txCtx, "committed", req); err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(txCtx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetAccessTokenSession(ctx, "committed", grantsession.New("")); err != nil {
		t.Fatalf("committed row: %v", err)
	}
	if err := st.Commit(txCtx); !errors.Is(err, store.ErrNoTransaction) {
		t.Fatalf("double commit: %v", err)
	}
	if err := st.Rollback(ctx); !errors.Is(err, store.ErrNoTransaction) {
		t.Fatalf("rollback without transaction: %v", err)
	}
}

func testNestedTransaction(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	req := newRequest(mustClient(t, st, "nest"), "req-nest", "user-11")
	outer, err := st.BeginTX(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := st.BeginTX(outer)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAccessTokenSession(inner, "nested", req); err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(inner); err != nil {
		t.Fatal(err)
	}
	// The inner commit must not have committed the outer transaction.
	if err := st.Rollback(outer); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetAccessTokenSession(ctx, "nested", grantsession.New("")); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("inner commit escaped the outer rollback: %v", err)
	}

	// A nested rollback dooms the outer transaction.
	outer, _ = st.BeginTX(ctx)
	inner, _ = st.BeginTX(outer)
	if err := st.CreateAccessTokenSession(inner, "doomed", req); err != nil {
		t.Fatal(err)
	}
	_ = st.Rollback(inner)
	if err := st.Commit(outer); err == nil {
		t.Fatal("outer commit after a nested rollback succeeded")
	}
	if _, err := st.GetAccessTokenSession(ctx, "doomed", grantsession.New("")); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("doomed row is visible: %v", err)
	}
}

// On SQLite the pool has one connection: a method that bypassed the
// context's transaction would wait for that connection forever, and the
// deadline turns the hang into a failure. On PostgreSQL the rollback at the
// end shows the writes really were inside the transaction.
func testEveryMethodInsideTransaction(t *testing.T, st *store.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := mustClient(t, st, "inside")
	req := newRequest(c, "req-inside", "user-12")
	tx, err := st.BeginTX(ctx)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		fn   func() error
	}{
		{"GetClient", func() error { _, err := st.GetClient(tx, "inside"); return err }},
		{"CreateAuthorizeCodeSession", func() error { return st.CreateAuthorizeCodeSession(tx, "code", req) }},
		{"GetAuthorizeCodeSession", func() error { _, err := st.GetAuthorizeCodeSession(tx, "code", grantsession.New("")); return err }},
		{"CreatePKCERequestSession", func() error { return st.CreatePKCERequestSession(tx, "code", req) }},
		{"GetPKCERequestSession", func() error { _, err := st.GetPKCERequestSession(tx, "code", grantsession.New("")); return err }},
		{"DeletePKCERequestSession", func() error { return st.DeletePKCERequestSession(tx, "code") }},
		{"InvalidateAuthorizeCodeSession", func() error { return st.InvalidateAuthorizeCodeSession(tx, "code") }},
		{"CreateAccessTokenSession", func() error { return st.CreateAccessTokenSession(tx, "at", req) }},
		{"GetAccessTokenSession", func() error { _, err := st.GetAccessTokenSession(tx, "at", grantsession.New("")); return err }},
		{"CreateRefreshTokenSession", func() error { return st.CreateRefreshTokenSession(tx, "rt", "at", req) }},
		{"GetRefreshTokenSession", func() error { _, err := st.GetRefreshTokenSession(tx, "rt", grantsession.New("")); return err }},
		{"RotateRefreshTokenOnce", func() error {
			return st.RotateRefreshTokenOnce(tx, rotation(c, "rt", "req-inside", "user-12", time.Now().UTC(), true))
		}},
		{"RotateRefreshToken", func() error { return st.RotateRefreshToken(tx, "req-inside", "rt-next") }},
		{"RevokeRefreshToken", func() error { return st.RevokeRefreshToken(tx, "req-inside") }},
		{"RevokeAccessToken", func() error { return st.RevokeAccessToken(tx, "req-inside") }},
		{"DeleteAccessTokenSession", func() error { return st.DeleteAccessTokenSession(tx, "at") }},
		{"DeleteRefreshTokenSession", func() error { return st.DeleteRefreshTokenSession(tx, "rt") }},
		{"ClientAssertionJWTValid", func() error { return st.ClientAssertionJWTValid(tx, "jti") }},
		{"SetClientAssertionJWT", func() error { return st.SetClientAssertionJWT(tx, "jti", time.Now().Add(time.Minute)) }},
		{"FindUserByName", func() error {
			if _, err := st.FindUserByName(tx, "nobody"); !errors.Is(err, store.ErrNotFound) {
				return err
			}
			return nil
		}},
		{"FindUsersByEmail", func() error { _, err := st.FindUsersByEmail(tx, "nobody@example.com", 2); return err }},
		{"UpdateUser", func() error {
			if err := st.UpdateUser(tx, "nobody", func(*store.User) error { return nil }); !errors.Is(err, store.ErrNotFound) {
				return err
			}
			return nil
		}},
		{"CreateAccessTokenSession again", func() error { return st.CreateAccessTokenSession(tx, "kept", req) }},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			t.Fatalf("%s inside a transaction: %v", s.name, err)
		}
	}
	if err := st.Rollback(tx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetAccessTokenSession(ctx, "kept", grantsession.New("")); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("a write escaped the transaction: %v", err)
	}
}

// runConcurrently starts n workers at once and returns their errors.
func runConcurrently(n int, fn func() error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn()
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// Concurrent refreshes of one token: exactly one rotates it; the rest lose
// cleanly with ErrSerializationFailure (never a deadlock, never two winners).
func testConcurrentRotation(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	c := mustClient(t, st, "race")
	req := newRequest(c, "req-race", "user-13")
	if err := st.CreateRefreshTokenSession(ctx, "rt", "", req); err != nil {
		t.Fatal(err)
	}
	var next atomic.Int64
	errs := runConcurrently(10, func() error {
		rot := rotation(c, "rt", "req-race", "user-13", time.Now().UTC(), true)
		n := next.Add(1)
		rot.NewSignature, rot.AccessSignature = fmt.Sprintf("rt-next-%d", n), fmt.Sprintf("at-next-%d", n)
		return st.RotateRefreshTokenOnce(ctx, rot)
	})
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, fosite.ErrSerializationFailure):
		default:
			t.Errorf("loser got %v, want ErrSerializationFailure", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d rotations won, want exactly 1", wins)
	}
}

func testConcurrentCodeRedemption(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	req := newRequest(mustClient(t, st, "coderace"), "req-coderace", "user-14")
	if err := st.CreateAuthorizeCodeSession(ctx, "code", req); err != nil {
		t.Fatal(err)
	}
	errs := runConcurrently(10, func() error {
		return st.InTx(ctx, func(tx context.Context) error { return st.InvalidateAuthorizeCodeSession(tx, "code") })
	})
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, fosite.ErrInvalidatedAuthorizeCode), errors.Is(err, fosite.ErrSerializationFailure):
		default:
			t.Errorf("loser got %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d redemptions won, want exactly 1", wins)
	}
}

func testClientAssertionJTI(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	if err := st.ClientAssertionJWTValid(ctx, "jti-1"); err != nil {
		t.Fatalf("unknown jti: %v", err)
	}
	if err := st.SetClientAssertionJWT(ctx, "jti-1", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := st.ClientAssertionJWTValid(ctx, "jti-1"); !errors.Is(err, fosite.ErrJTIKnown) {
		t.Fatalf("used jti: %v, want ErrJTIKnown", err)
	}
	if err := st.SetClientAssertionJWT(ctx, "jti-1", time.Now().Add(time.Hour)); !errors.Is(err, fosite.ErrJTIKnown) {
		t.Fatalf("reused jti: %v, want ErrJTIKnown", err)
	}
	// An expired jti no longer blocks: its assertion is expired anyway.
	if err := st.SetClientAssertionJWT(ctx, "jti-2", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := st.ClientAssertionJWTValid(ctx, "jti-2"); err != nil {
		t.Fatalf("expired jti: %v", err)
	}
	if err := st.SetClientAssertionJWT(ctx, "jti-2", time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("replacing an expired jti: %v", err)
	}
	errs := runConcurrently(8, func() error { return st.SetClientAssertionJWT(ctx, "jti-3", time.Now().Add(time.Hour)) })
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !errors.Is(err, fosite.ErrJTIKnown) && !errors.Is(err, fosite.ErrSerializationFailure) {
			t.Errorf("concurrent jti: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent uses of one jti accepted, want 1", ok)
	}
}

// testUserByName covers the store's part of a sign-in: it finds the user
// and returns the hash as stored. Checking the password against it is
// login.Authenticator's, tested there.
func testUserByName(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	hash, err := secrets.HashPassword("correct horse", secrets.Argon2Params{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(ctx, &store.User{ID: "u-1", Username: "alice", PasswordHash: hash}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(ctx, &store.User{ID: "u-2", Username: "alice", PasswordHash: hash}); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate username: %v", err)
	}
	u, err := st.FindUserByName(ctx, "alice")
	if err != nil || u.ID != "u-1" || u.PasswordHash != hash {
		t.Fatalf("FindUserByName(alice) = %+v, %v; want u-1 with its hash", u, err)
	}
	for _, tc := range []struct{ name, username string }{
		{"unknown user", "bob"},
		{"empty name", ""},
		{"not valid UTF-8", "\xff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := st.FindUserByName(ctx, tc.username); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("FindUserByName(%q) = %v, want ErrNotFound", tc.username, err)
			}
		})
	}
	testUsersByEmail(t, st)
}

// testUsersByEmail: email is not unique and compared case-insensitively;
// the store returns the matches (up to limit) and login decides.
func testUsersByEmail(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	for _, u := range []store.User{
		{ID: "e-1", Username: "e1", Email: "One@Example.com"},
		{ID: "e-2", Username: "e2", Email: "two@example.com"},
		{ID: "e-3", Username: "e3", Email: "TWO@example.com"},
		{ID: "e-4", Username: "e4", Email: "two@EXAMPLE.com"},
		{ID: "e-5", Username: "e5"},
	} {
		if err := st.CreateUser(ctx, &u); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(email string, limit int) []string {
		t.Helper()
		us, err := st.FindUsersByEmail(ctx, email, limit)
		if err != nil {
			t.Fatalf("FindUsersByEmail(%q): %v", email, err)
		}
		var out []string
		for _, u := range us {
			out = append(out, u.ID)
		}
		return out
	}
	if got := ids("one@example.COM", 2); len(got) != 1 || got[0] != "e-1" {
		t.Errorf("one@example.COM = %v, want [e-1]", got)
	}
	if got := ids("two@example.com", 2); len(got) != 2 || got[0] != "e-2" || got[1] != "e-3" {
		t.Errorf("two@example.com limit 2 = %v, want [e-2 e-3]", got)
	}
	for _, none := range []string{"", "three@example.com", "\xff@x", "%@example.com", "_ne@example.com"} {
		if got := ids(none, 2); len(got) != 0 {
			t.Errorf("%q = %v, want none", none, got)
		}
	}
}
