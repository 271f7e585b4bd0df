package server_test

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"database/sql"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// verifyIDToken checks an ID token as a relying party does: signature
// against the JWKS fetched over HTTP, typ, iss, aud, exp and iat; it
// returns the claims.
func (h *harness) verifyIDToken(t *testing.T, raw, clientID string) map[string]any {
	t.Helper()
	if raw == "" {
		t.Fatal("no id_token")
	}
	std, claims := h.verifyJWT(t, raw, keys.TypIDToken)
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: h.cfg.Issuer, AnyAudience: jwt.Audience{clientID}, Time: h.now()}, 0); err != nil {
		t.Errorf("id_token claims: %v (%v)", err, claims)
	}
	if std.Expiry == nil || std.IssuedAt == nil || std.Expiry.Time().Sub(std.IssuedAt.Time()) != h.cfg.AccessTokenTTL {
		t.Errorf("exp - iat is not the access token TTL: %v", claims)
	}
	if d := h.now().Sub(std.IssuedAt.Time()); d < -2*time.Second || d > 5*time.Second {
		t.Errorf("iat %v is not now (%v)", std.IssuedAt.Time(), h.now())
	}
	if aud, ok := claims["aud"].(string); !ok || aud != clientID {
		t.Errorf("aud = %v, want the client id as a string", claims["aud"])
	}
	if _, ok := claims["azp"]; ok {
		t.Errorf("azp with a single audience: %v", claims)
	}
	return claims
}

// wantAtHash checks at_hash against the access token it was issued with.
func wantAtHash(t *testing.T, claims map[string]any, accessToken string, alg string) {
	t.Helper()
	var sum []byte
	if alg == "EdDSA" {
		s := sha512.Sum512([]byte(accessToken))
		sum = s[:]
	} else {
		s := sha256.Sum256([]byte(accessToken))
		sum = s[:]
	}
	if want := base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2]); claims["at_hash"] != want {
		t.Errorf("at_hash = %v, want %s", claims["at_hash"], want)
	}
}

// person is a user with a full profile.
func (h *harness) person(username, password string) string {
	h.t.Helper()
	id := h.user(username, password)
	err := h.store.UpdateUser(context.Background(), id, func(u *store.User) error {
		u.Email, u.EmailVerified = username+"@example.com", true
		u.Name, u.GivenName, u.FamilyName = "Ida "+username, "Ida", username
		u.Picture, u.Locale = "https://img.example/"+username+".png", "de-CH"
		u.Groups = []string{"staff", "ops"}
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return id
}

// oidcPasswordClient is a trusted password client allowed every built-in
// scope, signing ID tokens with alg ("" is the configured one).
func oidcPasswordClient(h *harness, alg string) testClient {
	if alg == "" {
		alg = h.cfg.SigningAlg
	}
	return h.client(map[string]any{
		"grant_types": []string{"password", "refresh_token"}, "trusted": true,
		"scope": "read openid profile email groups offline_access", "id_token_signed_response_alg": alg,
	})
}

// sessionSID is the sid of the browser's login session, read from the
// store by its cookie.
func sessionSID(t *testing.T, h *harness, br *browser) string {
	t.Helper()
	u, _ := url.Parse(h.public.URL)
	for _, c := range br.client.Jar.Cookies(u) {
		if ls, err := h.store.TouchLoginSession(context.Background(), c.Value, time.Hour); err == nil {
			return ls.SID
		}
	}
	t.Fatal("the browser has no login session")
	return ""
}

// codeFlow signs br in (when needed) and exchanges a code for app.
func codeFlow(t *testing.T, h *harness, br *browser, app spa, opts ...oauth2.AuthCodeOption) *oauth2.Token {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	resp, page := br.get(app.conf.AuthCodeURL("state-oidc01", append(opts, oauth2.S256ChallengeOption(verifier))...))
	if resp.StatusCode == http.StatusOK {
		resp, _ = br.login(page, "ida", "ida-password-1")
	}
	code := callback(t, resp, app.conf.RedirectURL).Get("code")
	tok, err := app.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func idTokenOf(tok *oauth2.Token) string {
	s, _ := tok.Extra("id_token").(string)
	return s
}

func TestIDTokenCodeFlowAndRefresh(t *testing.T) {
	formats(t, func(t *testing.T, b storetest.Backend, format string) {
		h := newHarness(t, b, func(c *config.Config) { c.AccessTokenFormat = format })
		userID := h.person("ida", "ida-password-1")
		app := h.spa("https://app.example/cb", true, "openid profile email offline_access")
		other := h.spa("https://other.example/cb", true, "openid")
		br := h.browser("https://")

		tok := codeFlow(t, h, br, app, oauth2.SetAuthURLParam("nonce", "n-0S6_WzA2Mj"))
		first := h.verifyIDToken(t, idTokenOf(tok), app.id)
		sid := sessionSID(t, h, br)
		if first["sub"] != userID || first["nonce"] != "n-0S6_WzA2Mj" || first["sid"] != sid || sid == "" {
			t.Errorf("id_token %v; want sub %s, the nonce, sid %s", first, userID, sid)
		}
		if amr, _ := first["amr"].([]any); len(amr) != 1 || amr[0] != "pwd" {
			t.Errorf("amr = %v", first["amr"])
		}
		authTime, _ := first["auth_time"].(float64)
		if authTime == 0 || authTime > first["iat"].(float64) {
			t.Errorf("auth_time %v, iat %v", first["auth_time"], first["iat"])
		}
		wantAtHash(t, first, tok.AccessToken, h.cfg.SigningAlg)
		if first["email"] != "ida@example.com" || first["preferred_username"] != "ida" || first["groups"] != nil {
			t.Errorf("claims of profile email (not groups): %v", first)
		}

		// A second application on the same browser session: the same sid,
		// no nonce since none was sent.
		tok2 := codeFlow(t, h, br, other)
		second := h.verifyIDToken(t, idTokenOf(tok2), other.id)
		if second["sid"] != sid || second["sub"] != userID {
			t.Errorf("second client's id_token %v, want sid %s", second, sid)
		}
		if _, ok := second["nonce"]; ok {
			t.Errorf("nonce without one sent: %v", second)
		}
		if second["email"] != nil || second["name"] != nil {
			t.Errorf("profile claims with scope openid only: %v", second)
		}

		// Refresh: a new ID token for the same sign-in, without the nonce.
		h.clock.advance(time.Minute)
		resp, m := refresh(h, app.testClient, tok.RefreshToken)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("refresh: %d %v", resp.StatusCode, m)
		}
		raw, _ := m["id_token"].(string)
		ref := h.verifyIDToken(t, raw, app.id)
		for _, c := range []string{"sub", "auth_time", "sid", "email"} {
			if ref[c] != first[c] {
				t.Errorf("refreshed %s = %v, first %v", c, ref[c], first[c])
			}
		}
		if _, ok := ref["nonce"]; ok {
			t.Errorf("refreshed id_token carries a nonce: %v", ref)
		}
		if ref["iat"].(float64) <= first["iat"].(float64) {
			t.Errorf("refreshed iat %v not after %v", ref["iat"], first["iat"])
		}
		wantAtHash(t, ref, m["access_token"].(string), h.cfg.SigningAlg)

		// The grace-period repeat of the same refresh token gets the same
		// successor, and an ID token too.
		resp, again := refresh(h, app.testClient, tok.RefreshToken)
		if resp.StatusCode != http.StatusOK || again["refresh_token"] != m["refresh_token"] {
			t.Fatalf("grace repeat: %d %v", resp.StatusCode, again)
		}
		raw, _ = again["id_token"].(string)
		rep := h.verifyIDToken(t, raw, app.id)
		if rep["sid"] != sid || rep["auth_time"] != first["auth_time"] {
			t.Errorf("grace repeat id_token %v", rep)
		}
		wantAtHash(t, rep, again["access_token"].(string), h.cfg.SigningAlg)
	})
}

func TestIDTokenPasswordGrant(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		userID := h.person("ida", "ida-password-1")
		c := oidcPasswordClient(h, "")
		login := func(scope string) map[string]any {
			return h.token(c, url.Values{"grant_type": {"password"}, "username": {"ida"}, "password": {"ida-password-1"}, "scope": {scope}})
		}
		m := login("openid offline_access")
		claims := h.verifyIDToken(t, m["id_token"].(string), c.id)
		if claims["sub"] != userID || claims["sid"] != nil || claims["nonce"] != nil {
			t.Errorf("password grant id_token: %v", claims)
		}
		if amr, _ := claims["amr"].([]any); len(amr) != 1 || amr[0] != "pwd" {
			t.Errorf("amr = %v", claims["amr"])
		}
		// auth_time is when the password was checked, iat when the token
		// was signed a moment later: the same second, or the one before when
		// a second boundary fell between them (the clock is real time moved
		// by an offset).
		if at, iat := claims["auth_time"].(float64), claims["iat"].(float64); iat-at < 0 || iat-at > 1 {
			t.Errorf("auth_time %v, want now (iat %v)", claims["auth_time"], claims["iat"])
		}
		wantAtHash(t, claims, m["access_token"].(string), h.cfg.SigningAlg)

		// The refresh of a password grant keeps auth_time.
		h.clock.advance(2 * time.Second)
		resp, r := refresh(h, c, m["refresh_token"].(string))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("refresh: %d %v", resp.StatusCode, r)
		}
		if rc := h.verifyIDToken(t, r["id_token"].(string), c.id); rc["auth_time"] != claims["auth_time"] || rc["sid"] != nil {
			t.Errorf("refreshed %v, first %v", rc, claims)
		}

		// Without openid there is no ID token, on either grant.
		m = login("read offline_access")
		if _, ok := m["id_token"]; ok {
			t.Errorf("id_token without openid: %v", m)
		}
		if _, r = refresh(h, c, m["refresh_token"].(string)); r["id_token"] != nil {
			t.Errorf("refreshed id_token without openid: %v", r)
		}
	})
}

// Each scope releases its claims and no other scope's.
func TestIDTokenClaimsPerScope(t *testing.T) {
	h := newHarness(t, storetest.Backends()[0])
	h.person("ida", "ida-password-1")
	c := oidcPasswordClient(h, "")
	profile := []string{"name", "given_name", "family_name", "preferred_username", "picture", "locale", "updated_at"}
	email := []string{"email", "email_verified"}
	groups := []string{"groups"}
	for _, tc := range []struct {
		scope string
		want  [][]string
	}{
		{"openid", nil},
		{"openid profile", [][]string{profile}},
		{"openid email", [][]string{email}},
		{"openid groups", [][]string{groups}},
		{"openid profile email groups", [][]string{profile, email, groups}},
		// Order means nothing (oidcc-ensure-other-scope-order-succeeds).
		{"email openid", [][]string{email}},
	} {
		t.Run(tc.scope, func(t *testing.T) {
			m := h.token(c, url.Values{"grant_type": {"password"}, "username": {"ida"}, "password": {"ida-password-1"}, "scope": {tc.scope}})
			claims := h.verifyIDToken(t, m["id_token"].(string), c.id)
			for _, set := range [][]string{profile, email, groups} {
				want := slices.ContainsFunc(tc.want, func(s []string) bool { return slices.Equal(s, set) })
				for _, name := range set {
					if _, got := claims[name]; got != want {
						t.Errorf("claim %s present %v, want %v: %v", name, got, want, claims)
					}
				}
			}
			if tc.scope == "openid profile email groups" {
				if claims["email_verified"] != true || claims["locale"] != "de-CH" || claims["name"] != "Ida ida" {
					t.Errorf("claim values: %v", claims)
				}
				if g, _ := claims["groups"].([]any); len(g) != 2 || g[0] != "staff" {
					t.Errorf("groups = %v", claims["groups"])
				}
			}
		})
	}

	// Empty values are left out, email_verified with the email.
	h.user("bare", "bare-password-1")
	m := h.token(c, url.Values{"grant_type": {"password"}, "username": {"bare"}, "password": {"bare-password-1"}, "scope": {"openid profile email groups"}})
	claims := h.verifyIDToken(t, m["id_token"].(string), c.id)
	for _, name := range []string{"name", "given_name", "family_name", "picture", "locale", "email", "email_verified", "groups"} {
		if _, ok := claims[name]; ok {
			t.Errorf("empty %s present: %v", name, claims)
		}
	}
	if claims["preferred_username"] != "bare" {
		t.Errorf("preferred_username = %v", claims["preferred_username"])
	}
}

func TestOpenIDScopeRules(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.person("ida", "ida-password-1")

		// client_credentials has no person: openid is refused, even for a
		// client that registered it.
		svc := h.serviceClient("read openid")
		resp, m := h.form("/oauth2/token", svc.id, svc.secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"openid"}})
		wantError(t, resp, m, http.StatusBadRequest, "invalid_scope")
		resp, m = h.form("/oauth2/token", svc.id, svc.secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"read openid"}})
		wantError(t, resp, m, http.StatusBadRequest, "invalid_scope")

		// address and phone are standard scopes Latchkey does not serve:
		// ignored, never granted, whether registered or not.
		m = h.token(svc, url.Values{"grant_type": {"client_credentials"}, "scope": {"address read phone"}})
		if m["scope"] != "read" || m["id_token"] != nil {
			t.Errorf("client_credentials with address phone: %v", m)
		}
		c := h.client(map[string]any{
			"grant_types": []string{"password"}, "trusted": true, "scope": "openid address",
			"id_token_signed_response_alg": h.cfg.SigningAlg,
		})
		m = h.token(c, url.Values{"grant_type": {"password"}, "username": {"ida"}, "password": {"ida-password-1"}, "scope": {"openid address phone"}})
		if m["scope"] != "openid" || m["id_token"] == nil {
			t.Errorf("password with address phone: %v", m)
		}
		m = h.token(c, url.Values{"grant_type": {"password"}, "username": {"ida"}, "password": {"ida-password-1"}, "scope": {"phone"}})
		if m["scope"] != nil && m["scope"] != "" {
			t.Errorf("only unserved scopes granted %v", m["scope"])
		}

		// The built-in scopes are the client's only when registered.
		for _, s := range []string{"profile", "email", "groups", "offline_access"} {
			resp, m = h.form("/oauth2/token", c.id, c.secret, url.Values{"grant_type": {"password"}, "username": {"ida"}, "password": {"ida-password-1"}, "scope": {"openid " + s}})
			wantError(t, resp, m, http.StatusBadRequest, "invalid_scope")
		}
		app := h.spa("https://app.example/cb", true, "openid")
		verifier := oauth2.GenerateVerifier()
		app.conf.Scopes = []string{"openid", "profile"}
		resp, _ = h.browser(app.conf.RedirectURL).get(app.conf.AuthCodeURL("state-scope1", oauth2.S256ChallengeOption(verifier)))
		if q := callback(t, resp, app.conf.RedirectURL); q.Get("error") != "invalid_scope" {
			t.Errorf("authorization with an unregistered scope: %v", q)
		}
	})
}

// A user deleted between the authorization and the code exchange gets no
// token: the deletion revokes the code (the admin API), and a user row
// gone without that (a database edit) fails the claims read.
func TestIDTokenUserDeleted(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		app := h.spa("https://app.example/cb", true, "openid profile")
		for _, how := range []string{"admin", "row"} {
			t.Run(how, func(t *testing.T) {
				userID := h.person("ida-"+how, "ida-password-1")
				br := h.browser(app.conf.RedirectURL)
				verifier := oauth2.GenerateVerifier()
				_, page := br.get(app.conf.AuthCodeURL("state-deleted", oauth2.S256ChallengeOption(verifier)))
				resp, _ := br.login(page, "ida-"+how, "ida-password-1")
				code := callback(t, resp, app.conf.RedirectURL).Get("code")
				if how == "admin" {
					if resp, m := h.adminJSON(http.MethodDelete, "/admin/users/"+userID, nil); resp.StatusCode/100 != 2 {
						t.Fatalf("delete user: %d %v", resp.StatusCode, m)
					}
				} else {
					deleteUserRow(t, h.cfg.DatabaseURL, userID)
				}
				resp, m := h.form("/oauth2/token", app.id, "", url.Values{
					"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {app.conf.RedirectURL},
					"client_id": {app.id}, "code_verifier": {verifier},
				})
				wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")
				if m["access_token"] != nil || m["id_token"] != nil {
					t.Errorf("tokens for a deleted user: %v", m)
				}
			})
		}
	})
}

// deleteUserRow deletes a user's row alone, through a connection of its
// own, bypassing the revocation the admin API does.
func deleteUserRow(t *testing.T, databaseURL, id string) {
	t.Helper()
	dialect, source, err := config.ParseDatabaseURL(databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	driver, dsn, query := "pgx", source, "DELETE FROM users WHERE id = $1"
	if dialect == config.DialectSQLite {
		driver, dsn, query = "sqlite", "file:"+source+"?_pragma=busy_timeout(10000)", "DELETE FROM users WHERE id = ?"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query, id); err != nil {
		t.Fatalf("delete user row: %v", err)
	}
}

// An RS256 client gets an RS256 ID token. It needs a key per algorithm;
// until the key set has one, the test says so and skips.
func TestIDTokenRS256(t *testing.T) {
	h := newHarness(t, storetest.Backends()[0])
	h.person("ida", "ida-password-1")
	c := oidcPasswordClient(h, "RS256")
	resp, m := h.form("/oauth2/token", c.id, c.secret, url.Values{"grant_type": {"password"}, "username": {"ida"}, "password": {"ida-password-1"}, "scope": {"openid"}})
	if resp.StatusCode == http.StatusInternalServerError && h.cfg.SigningAlg != "RS256" {
		t.Skipf("no RS256 key beside the configured %s: the key set has one key per algorithm only once internal/keys makes it (CurrentFor(RS256) = ErrNoSigningKey)", h.cfg.SigningAlg)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token: %d %v", resp.StatusCode, m)
	}
	raw := m["id_token"].(string)
	parsed, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("not RS256: %v", err)
	}
	if parsed.Headers[0].Algorithm != "RS256" {
		t.Fatalf("alg %s", parsed.Headers[0].Algorithm)
	}
	claims := h.verifyIDToken(t, raw, c.id)
	wantAtHash(t, claims, m["access_token"].(string), "RS256")
}

// An EdDSA client gets an EdDSA ID token with a SHA-512 at_hash. While the
// key set has no EdDSA key beside the configured ES256 one, the answer is
// a server error, never an unsigned or wrongly signed token, and no access
// token is handed out without its ID token.
func TestIDTokenEdDSA(t *testing.T) {
	h := newHarness(t, storetest.Backends()[0], func(c *config.Config) { c.SigningAlg = "ES256" })
	h.person("ida", "ida-password-1")
	c := oidcPasswordClient(h, "EdDSA")
	resp, m := h.form("/oauth2/token", c.id, c.secret, url.Values{"grant_type": {"password"}, "username": {"ida"}, "password": {"ida-password-1"}, "scope": {"openid"}})
	if resp.StatusCode == http.StatusOK {
		claims := h.verifyIDToken(t, m["id_token"].(string), c.id)
		wantAtHash(t, claims, m["access_token"].(string), "EdDSA")
		return
	}
	wantError(t, resp, m, http.StatusInternalServerError, "server_error")
	if m["access_token"] != nil {
		t.Errorf("tokens without their id_token: %v", m)
	}
}

// A failure reading the user for the ID token's claims fails the request
// before anything is issued: no token without its claims, and the refresh
// token is not rotated, so the same one works once the database does.
func TestIDTokenUserReadFails(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.person("ida", "ida-password-1")
		c := oidcPasswordClient(h, "")
		m := h.token(c, url.Values{"grant_type": {"password"}, "username": {"ida"}, "password": {"ida-password-1"}, "scope": {"openid profile offline_access"}})
		rt := m["refresh_token"].(string)

		execSQL(t, h.cfg.DatabaseURL, "ALTER TABLE users RENAME TO users_away")
		resp, r := refresh(h, c, rt)
		if resp.StatusCode < 500 || r["access_token"] != nil || r["id_token"] != nil {
			t.Fatalf("refresh with the users table gone: %d %v, want a 5xx and no token", resp.StatusCode, r)
		}
		execSQL(t, h.cfg.DatabaseURL, "ALTER TABLE users_away RENAME TO users")
		// Past the grace period: had the failed request rotated the token,
		// presenting it again would be reuse.
		h.clock.advance(time.Minute)
		resp, r = refresh(h, c, rt)
		if resp.StatusCode != http.StatusOK || r["id_token"] == nil {
			t.Fatalf("the refresh token after the failure: %d %v", resp.StatusCode, r)
		}
	})
}
