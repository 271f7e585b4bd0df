package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/latchkey/latchkey/internal/backchannel"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/oauth"
	"github.com/latchkey/latchkey/internal/server"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// rpServer is a relying party's back-channel logout endpoint: it records
// every logout token and answers status (200 unless set).
type rpServer struct {
	*httptest.Server
	mu     sync.Mutex
	tokens []string
	status atomic.Int32
	// block, when set, holds each request until it is closed or the
	// sender gives up.
	block chan struct{}
}

func newRP(t *testing.T) *rpServer {
	rp := &rpServer{}
	rp.status.Store(http.StatusOK)
	rp.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b := rp.block; b != nil {
			select {
			case <-b:
			case <-r.Context().Done():
				return
			}
		}
		if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		status := int(rp.status.Load())
		if status == http.StatusOK {
			rp.mu.Lock()
			rp.tokens = append(rp.tokens, r.PostFormValue("logout_token"))
			rp.mu.Unlock()
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
	}))
	t.Cleanup(rp.Close)
	return rp
}

func (rp *rpServer) received() []string {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return append([]string(nil), rp.tokens...)
}

// oidcApp registers a trusted public client (no consent page) whose
// back-channel logout endpoint is rp (none when rp is nil), and which may
// be sent back to https://NAME.example/bye.
func (h *harness) oidcApp(name string, rp *rpServer) spa {
	redirect := "https://" + name + ".example/cb"
	md := map[string]any{
		"client_name": name, "token_endpoint_auth_method": "none", "trusted": true,
		"grant_types": []string{"authorization_code", "refresh_token"}, "redirect_uris": []string{redirect},
		"scope": "openid offline_access", "post_logout_redirect_uris": []string{"https://" + name + ".example/bye"},
	}
	if rp != nil {
		md["backchannel_logout_uri"] = rp.URL + "/bcl"
	}
	c := h.client(md)
	return spa{testClient: c, conf: oauth2.Config{
		ClientID: c.id, RedirectURL: redirect, Scopes: []string{"openid", "offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: h.public.URL + "/oauth2/authorize", TokenURL: h.public.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams},
	}}
}

// signInTo runs br through app's code flow and returns the refresh token.
func signInTo(t *testing.T, h *harness, br *browser, app spa, user, pass string) string {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	code := issueCode(t, br, app.conf, verifier, user, pass)
	tok, err := app.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("exchange: %v %v", tok, err)
	}
	return tok.RefreshToken
}

// refreshes reports whether a refresh token still works.
func refreshes(h *harness, app spa, rt string) bool {
	resp, _ := h.form("/oauth2/token", "", "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {app.id}})
	return resp.StatusCode == http.StatusOK
}

// session is the login session of br's browser.
func (b *browser) session() *store.LoginSession {
	b.t.Helper()
	u, _ := url.Parse(b.h.public.URL)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == "latchkey_session" {
			ls, err := b.h.store.TouchLoginSession(context.Background(), c.Value, time.Hour)
			if err != nil {
				b.t.Fatalf("login session: %v", err)
			}
			return ls
		}
	}
	b.t.Fatal("the browser is not signed in")
	return nil
}

// idToken signs an ID token as the server does, with its current key.
func (h *harness) idToken(sub, aud, sid string) string {
	h.t.Helper()
	k, err := h.srv.Keys().Current()
	if err != nil {
		h.t.Fatal(err)
	}
	now := h.now()
	claims := map[string]any{"iss": h.cfg.Issuer, "sub": sub, "aud": aud, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	if sid != "" {
		claims["sid"] = sid
	}
	payload, _ := json.Marshal(claims)
	raw, err := k.Sign(keys.TypIDToken, payload)
	if err != nil {
		h.t.Fatal(err)
	}
	return raw
}

// settle lets every delivery the logout started finish, then delivers
// whatever is due: what a relying party has received by then is all it
// will get.
func (h *harness) settle() {
	h.t.Helper()
	d := h.srv.Backchannel()
	d.Wait()
	if _, err := d.Pass(context.Background()); err != nil {
		h.t.Fatal(err)
	}
}

// logoutClaims verifies a logout token against the published JWKS and
// returns its claims (Back-Channel Logout 1.0 §2.4, §2.6).
func (h *harness) logoutClaims(raw, clientID string) map[string]any {
	h.t.Helper()
	t := h.t
	tok, err := jwt.ParseSigned(raw, keys.Algorithms)
	if err != nil {
		t.Fatalf("logout token: %v", err)
	}
	hdr := tok.Headers[0]
	if typ := hdr.ExtraHeaders[jose.HeaderType]; typ != "logout+jwt" {
		t.Errorf("typ = %v, want logout+jwt", typ)
	}
	resp, err := http.Get(h.public.URL + oauth.PathJWKS)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	ks := set.Key(hdr.KeyID)
	if len(ks) != 1 {
		t.Fatalf("kid %q not in the JWKS", hdr.KeyID)
	}
	var std jwt.Claims
	var all map[string]any
	if err := tok.Claims(ks[0].Key, &std, &all); err != nil {
		t.Fatalf("logout token signature: %v", err)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: h.cfg.Issuer, AnyAudience: jwt.Audience{clientID}, Time: h.now()}, time.Minute); err != nil {
		t.Errorf("logout token claims: %v", err)
	}
	if std.ID == "" || std.IssuedAt == nil || std.Expiry == nil || !std.Expiry.Time().After(std.IssuedAt.Time()) {
		t.Errorf("jti/iat/exp: %+v", std)
	}
	if _, ok := all["nonce"]; ok {
		t.Error("a logout token must not carry a nonce (§2.4)")
	}
	events, _ := all["events"].(map[string]any)
	if _, ok := events[backchannel.EventLogout]; !ok || len(events) != 1 {
		t.Errorf("events = %v", all["events"])
	}
	return all
}

func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// TestEndSessionWithHint: RP-Initiated Logout with the session's ID token
// ends the session at once (no confirmation), redirects with state, revokes
// the session's grants and sends one verified logout token to each client
// of that session that registered a back-channel URI, and nothing to a
// client of another session.
func TestEndSessionWithHint(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		alice := h.user("alice", "alice-password-1")
		h.user("bob", "bob-password-1")
		rpA, rpB := newRP(t), newRP(t)
		appA, appB, appC := h.oidcApp("a", rpA), h.oidcApp("b", rpB), h.oidcApp("c", nil)

		br := h.browser("https://")
		rtA := signInTo(t, h, br, appA, "alice", "alice-password-1")
		rtB := signInTo(t, h, br, appB, "alice", "alice-password-1")
		rtC := signInTo(t, h, br, appC, "alice", "alice-password-1")
		sid := br.session().SID
		other := h.browser("https://")
		rtBob := signInTo(t, h, other, appA, "bob", "bob-password-1")

		q := url.Values{"id_token_hint": {h.idToken(alice, appA.id, sid)}, "post_logout_redirect_uri": {"https://a.example/bye"}, "state": {"st-1"}}
		resp, _ := br.get(h.public.URL + oauth.PathEndSession + "?" + q.Encode())
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "https://a.example/bye?state=st-1" {
			t.Fatalf("end session: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		h.settle()
		for name, rt := range map[string]string{"a": rtA, "b": rtB, "c": rtC} {
			if refreshes(h, map[string]spa{"a": appA, "b": appB, "c": appC}[name], rt) {
				t.Errorf("app %s: the refresh token outlived the logout", name)
			}
		}
		if !refreshes(h, appA, rtBob) {
			t.Error("another person's session was ended too")
		}
		for _, tc := range []struct {
			rp  *rpServer
			app spa
		}{{rpA, appA}, {rpB, appB}} {
			got := tc.rp.received()
			if len(got) != 1 {
				t.Fatalf("%s received %d logout tokens, want 1", tc.app.id, len(got))
			}
			c := h.logoutClaims(got[0], tc.app.id)
			if c["sub"] != alice || c["sid"] != sid {
				t.Errorf("%s: sub %v sid %v, want %s %s", tc.app.id, c["sub"], c["sid"], alice, sid)
			}
		}
		if rows, _ := h.store.LogoutDeliveries(context.Background(), ""); len(rows) != 0 {
			t.Errorf("deliveries left: %+v", rows)
		}
		// Signed out: the browser is asked to sign in again.
		_, page := br.get(appA.conf.AuthCodeURL("state-again", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if !strings.Contains(page, `name="password"`) {
			t.Error("still signed in after end_session")
		}
		// Nobody signed in now: the same request only redirects.
		resp, _ = br.get(h.public.URL + oauth.PathEndSession + "?" + q.Encode())
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "https://a.example/bye?state=st-1" {
			t.Fatalf("end session when signed out: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
}

// TestEndSessionConfirms: without a hint, or with a stale one (another
// session of the same person, or another person), the person confirms
// first; nothing ends until the form comes back. POST works as GET.
func TestEndSessionConfirms(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		carol := h.user("carol", "carol-password-1")
		rp := newRP(t)
		app := h.oidcApp("a", rp)
		br := h.browser("https://")
		rt := signInTo(t, h, br, app, "carol", "carol-password-1")
		for name, q := range map[string]url.Values{
			"no hint":     {"client_id": {app.id}, "post_logout_redirect_uri": {"https://a.example/bye"}, "state": {"st-2"}},
			"stale sid":   {"id_token_hint": {h.idToken(carol, app.id, "an-older-session")}, "post_logout_redirect_uri": {"https://a.example/bye"}, "state": {"st-2"}},
			"another sub": {"id_token_hint": {h.idToken("user-someone", app.id, br.session().SID)}, "state": {"st-2"}},
		} {
			resp, page := br.post(oauth.PathEndSession, q)
			if resp.StatusCode != http.StatusOK || !strings.Contains(page, `action="/logout"`) || !strings.Contains(page, "carol") {
				t.Fatalf("%s: want the confirmation page, got %d\n%s", name, resp.StatusCode, page)
			}
			if !refreshes(h, app, rt) {
				t.Fatalf("%s: the session ended before the person confirmed", name)
			}
			rt = refreshToken(t, h, app, rt)
		}
		_, page := br.get(h.public.URL + oauth.PathEndSession + "?" + url.Values{"client_id": {app.id}, "post_logout_redirect_uri": {"https://a.example/bye"}, "state": {"st-3"}}.Encode())
		form := url.Values{"csrf_token": {field(t, csrfRe, page)}, "client_id": {field(t, hiddenRe("client_id"), page)},
			"post_logout_redirect_uri": {field(t, hiddenRe("post_logout_redirect_uri"), page)}, "state": {field(t, hiddenRe("state"), page)}}
		// A page of another site cannot sign people out: no CSRF token.
		if resp, _ := br.post("/logout", url.Values{"client_id": form["client_id"]}); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("logout without a CSRF token: %d", resp.StatusCode)
		}
		resp, _ := br.post("/logout", form)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "https://a.example/bye?state=st-3" {
			t.Fatalf("confirmed logout: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		h.settle()
		if refreshes(h, app, rt) {
			t.Error("the refresh token outlived the confirmed logout")
		}
		if got := rp.received(); len(got) != 1 {
			t.Errorf("the relying party received %d logout tokens, want 1", len(got))
		}
	})
}

// refreshToken refreshes and returns the new refresh token.
func refreshToken(t *testing.T, h *harness, app spa, rt string) string {
	t.Helper()
	resp, m := h.form("/oauth2/token", "", "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {app.id}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh: %d %v", resp.StatusCode, m)
	}
	return m["refresh_token"].(string)
}

// TestEndSessionRefusals: each bad request is a 400 page, never a redirect,
// and ends nothing.
func TestEndSessionRefusals(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		dan := h.user("dan", "dan-password-1")
		rp := newRP(t)
		app, other := h.oidcApp("a", rp), h.oidcApp("b", nil)
		br := h.browser("https://")
		rt := signInTo(t, h, br, app, "dan", "dan-password-1")
		sid := br.session().SID

		foreign, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: foreign}, (&jose.SignerOptions{}).WithType("JWT"))
		notOurs, _ := jwt.Signed(signer).Claims(map[string]any{"iss": h.cfg.Issuer, "sub": dan, "aud": app.id, "sid": sid, "exp": h.now().Add(time.Hour).Unix()}).Serialize()
		hint := h.idToken(dan, app.id, sid)

		for name, q := range map[string]url.Values{
			"unregistered address":         {"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://evil.example/"}},
			"another client's address":     {"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://b.example/bye"}},
			"hint not ours":                {"id_token_hint": {notOurs}, "post_logout_redirect_uri": {"https://a.example/bye"}},
			"hint that is no JWT":          {"id_token_hint": {"garbage"}},
			"client_id not the hint's aud": {"id_token_hint": {hint}, "client_id": {other.id}, "post_logout_redirect_uri": {"https://b.example/bye"}},
			"address without a client":     {"post_logout_redirect_uri": {"https://a.example/bye"}},
			"unknown client":               {"client_id": {"nobody"}, "post_logout_redirect_uri": {"https://a.example/bye"}},
		} {
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				var resp *http.Response
				var page string
				if method == http.MethodGet {
					resp, page = br.get(h.public.URL + oauth.PathEndSession + "?" + q.Encode())
				} else {
					resp, page = br.post(oauth.PathEndSession, q)
				}
				if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || strings.Contains(page, "<form") {
					t.Errorf("%s (%s): %d %q, want a 400 page", name, method, resp.StatusCode, resp.Header.Get("Location"))
				}
			}
		}
		if !refreshes(h, app, rt) {
			t.Fatal("a refused end_session request ended the session")
		}
		h.settle()
		if got := rp.received(); len(got) != 0 {
			t.Errorf("a refused request sent %d logout tokens", len(got))
		}
	})
}

// TestBackchannelRetry: a relying party that is down gets its token later:
// the failure is rescheduled with backoff (injected clock, no sleeping) and
// the next pass after it delivers. The outcomes are counted.
func TestBackchannelRetry(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		erin := h.user("erin", "erin-password-1")
		rp := newRP(t)
		app := h.oidcApp("a", rp)
		br := h.browser("https://")
		signInTo(t, h, br, app, "erin", "erin-password-1")
		sid := br.session().SID
		rp.status.Store(http.StatusServiceUnavailable)

		resp, _ := br.get(h.public.URL + oauth.PathEndSession + "?" + url.Values{"id_token_hint": {h.idToken(erin, app.id, sid)}}.Encode())
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("end session without an address: %d, want the signed-out page", resp.StatusCode)
		}
		h.settle()
		rows, _ := h.store.LogoutDeliveries(context.Background(), sid)
		if len(rows) != 1 || rows[0].Attempts != 1 || !rows[0].NextAttemptAt.After(h.now()) || !strings.Contains(rows[0].LastError, "503") {
			t.Fatalf("after a failure: %+v", rows)
		}
		rp.status.Store(http.StatusOK)
		if n, _ := h.srv.Backchannel().Pass(context.Background()); n != 0 || len(rp.received()) != 0 {
			t.Fatalf("retried before its time: %d", n)
		}
		h.clock.advance(11 * time.Second)
		if n, err := h.srv.Backchannel().Pass(context.Background()); n != 1 || err != nil {
			t.Fatalf("retry pass: %d %v", n, err)
		}
		got := rp.received()
		if len(got) != 1 || h.logoutClaims(got[0], app.id)["sid"] != sid {
			t.Fatalf("delivered on retry: %d tokens", len(got))
		}
		if rows, _ := h.store.LogoutDeliveries(context.Background(), sid); len(rows) != 0 {
			t.Errorf("a delivered row stayed: %+v", rows)
		}
		metrics := h.adminText("/metrics")
		for _, want := range []string{`latchkey_backchannel_logout_deliveries_total{outcome="retry"} 1`, `latchkey_backchannel_logout_deliveries_total{outcome="delivered"} 1`} {
			if !strings.Contains(metrics, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}

// adminText GETs an admin path with the admin token.
func (h *harness) adminText(path string) string {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.admin.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestBackchannelSlowRP: the wait of one POST is bounded by configuration
// (5 s by default, the logout page's wait by a second), and a relying
// party slower than that still gets its token on a later attempt.
func TestBackchannelSlowRP(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		def := newHarness(t, b)
		if got := def.srv.Backchannel().Timeout(); got != 5*time.Second {
			t.Errorf("default per-request timeout = %v, want 5s", got)
		}
		if oauth.DefaultLogoutWait != time.Second {
			t.Errorf("the logout page waits %v, want 1s", oauth.DefaultLogoutWait)
		}
		h := newHarnessWith(t, b, store.Options{}, []server.Option{server.WithBackchannel(func(o *backchannel.Options) { o.Timeout = 50 * time.Millisecond })})
		fay := h.user("fay", "fay-password-1")
		rp := newRP(t)
		rp.block = make(chan struct{})
		var release sync.Once
		unblock := func() { release.Do(func() { close(rp.block) }) }
		// Before rp.Close (cleanups run last first), which waits for the
		// handlers: a failing test must not hang.
		t.Cleanup(unblock)
		app := h.oidcApp("a", rp)
		br := h.browser("https://")
		signInTo(t, h, br, app, "fay", "fay-password-1")
		sid := br.session().SID
		resp, _ := br.get(h.public.URL + oauth.PathEndSession + "?" + url.Values{"id_token_hint": {h.idToken(fay, app.id, sid)}, "post_logout_redirect_uri": {"https://a.example/bye"}}.Encode())
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("end session: %d", resp.StatusCode)
		}
		h.settle()
		rows, _ := h.store.LogoutDeliveries(context.Background(), sid)
		if len(rows) != 1 || rows[0].Attempts != 1 || rows[0].LastError == "" {
			t.Fatalf("a timed-out send: %+v", rows)
		}
		unblock()
		h.clock.advance(time.Minute)
		h.settle()
		// The first POST may still have reached it, late: a duplicate is
		// harmless to a relying party (logout is idempotent).
		got := rp.received()
		if len(got) == 0 {
			t.Fatal("the slow relying party never got its token")
		}
		for _, tok := range got {
			if h.logoutClaims(tok, app.id)["sid"] != sid {
				t.Error("a token for another session")
			}
		}
		if rows, _ := h.store.LogoutDeliveries(context.Background(), sid); len(rows) != 0 {
			t.Errorf("a delivered row stayed: %+v", rows)
		}
	})
}

// TestBackchannelEveryWayASessionEnds: the admin's revoke-tokens, deleting
// the user and another person signing in on the browser each end the
// session and owe its clients a token; and any instance delivers it (here
// a second server on the same database, which did not end the session).
func TestBackchannelEveryWayASessionEnds(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		rp := newRP(t)
		app := h.oidcApp("a", rp)
		h.user("gus", "gus-password-1")
		srv2, err := server.New(context.Background(), h.cfg, h.store, slog.New(slog.DiscardHandler), server.WithClock(h.clock.Now))
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			end  func(br *browser, userID string)
		}{
			{"admin revoke-tokens", func(_ *browser, id string) {
				if resp, m := h.adminJSON(http.MethodPost, "/admin/users/"+id+"/revoke-tokens", nil); resp.StatusCode/100 != 2 {
					t.Fatalf("revoke-tokens: %d %v", resp.StatusCode, m)
				}
			}},
			{"user deleted", func(_ *browser, id string) {
				if resp, m := h.adminJSON(http.MethodDelete, "/admin/users/"+id, nil); resp.StatusCode/100 != 2 {
					t.Fatalf("delete user: %d %v", resp.StatusCode, m)
				}
			}},
			{"another person signs in", func(br *browser, _ string) {
				_, page := br.get(h.public.URL + "/login")
				if resp, _ := br.post("/login", url.Values{"csrf_token": {field(t, csrfRe, page)}, "username": {"gus"}, "password": {"gus-password-1"}}); resp.StatusCode != http.StatusOK {
					t.Fatalf("sign-in of another person: %d", resp.StatusCode)
				}
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				name := strings.ReplaceAll(tc.name, " ", "-")
				id := h.user(name, "password-of-"+name)
				br := h.browser("https://")
				signInTo(t, h, br, app, name, "password-of-"+name)
				sid := br.session().SID
				before := len(rp.received())
				tc.end(br, id)
				if rows, _ := h.store.LogoutDeliveries(context.Background(), sid); len(rows) != 1 {
					t.Fatalf("owed deliveries: %+v, want 1", rows)
				}
				if n, err := srv2.Backchannel().Pass(context.Background()); n != 1 || err != nil {
					t.Fatalf("the other instance's pass: %d %v", n, err)
				}
				got := rp.received()
				if len(got) != before+1 {
					t.Fatalf("received %d tokens, want %d", len(got), before+1)
				}
				if c := h.logoutClaims(got[before], app.id); c["sid"] != sid || c["sub"] != id {
					t.Errorf("sid %v sub %v, want %s %s", c["sid"], c["sub"], sid, id)
				}
			})
		}
	})
}

// TestLogoutAddress (moved from internal/login with POST /logout): only an
// unknown client or an address it did not register is the caller's 400. A
// database that cannot be reached is a 503 page with Retry-After, not "that
// application did not register this sign-out address", which would send an
// operator looking in the wrong place.
func TestLogoutAddress(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		for _, tc := range []struct {
			name, clientID, target string
			down                   bool
			want                   int
		}{
			{name: "registered address", clientID: "app", target: "https://a.example/bye", want: http.StatusSeeOther},
			{name: "no address", want: http.StatusOK},
			{name: "unknown client", clientID: "nobody", target: "https://a.example/bye", want: http.StatusBadRequest},
			{name: "unregistered address", clientID: "app", target: "https://evil.example/", want: http.StatusBadRequest},
			{name: "database down", clientID: "app", target: "https://a.example/bye", down: true, want: http.StatusServiceUnavailable},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := newHarness(t, b)
				app := h.oidcApp("a", nil)
				if tc.clientID == "app" {
					tc.clientID = app.id
				}
				br := h.browser("https://")
				_, page := br.get(h.public.URL + "/logout")
				if tc.down {
					_ = h.store.Close()
				}
				resp, _ := br.post("/logout", url.Values{"csrf_token": {field(t, csrfRe, page)}, "client_id": {tc.clientID},
					"post_logout_redirect_uri": {tc.target}, "state": {"s"}})
				if resp.StatusCode != tc.want {
					t.Fatalf("POST /logout: %d, want %d", resp.StatusCode, tc.want)
				}
				if tc.want >= 500 && resp.Header.Get("Retry-After") == "" {
					t.Error("a 503 without Retry-After")
				}
			})
		}
	})
}
