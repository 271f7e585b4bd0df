package cli_test

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/clients/cli"
)

// The whole life of a session against a real Latchkey: sign in through the
// pages with the loopback redirect, print the token, refresh it once it
// has expired (rotation saved), log out (RFC 7009), after which neither
// token is active and lkcli says it is not logged in.
func TestLoginTokenRefreshLogout(t *testing.T) {
	e := start(t)
	tokens := tokensPath(t)
	r := e.app(tokens, &clock{})
	// The "system browser" here is a person following the URL lkcli opens.
	var opened string
	r.app.Getenv = func(k string) string {
		return map[string]string{"LATCHKEY_ISSUER": e.lk.Issuer, "LKCLI_CLIENT_ID": e.clientID}[k]
	}
	r.app.OpenBrowser = func(u string) error {
		opened = u
		go func() {
			status, page := newPerson(t).visit(u)
			if status != http.StatusOK || !strings.Contains(page, "Signed in") {
				t.Errorf("the browser ended on %d %s", status, page)
			}
		}()
		return nil
	}
	if code := wait(t, r.main("login"), r.errOut); code != 0 {
		t.Fatalf("login: exit %d\n%s", code, r.errOut)
	}
	auth, _ := url.Parse(opened)
	q := auth.Query()
	redirect, _ := url.Parse(q.Get("redirect_uri"))
	if q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 || len(q.Get("state")) < 32 ||
		redirect.Hostname() != "127.0.0.1" || redirect.Port() == "" || q.Get("scope") != "openid offline_access" {
		t.Fatalf("authorization request: %s", opened)
	}
	if !strings.Contains(r.errOut.String(), opened) {
		t.Fatalf("lkcli did not print the URL it opened:\n%s", r.errOut)
	}
	// The listener is closed once the login is done.
	if resp, err := http.Get(redirect.String()); err == nil {
		resp.Body.Close()
		t.Fatalf("the loopback listener still answers after the login: %d", resp.StatusCode)
	}

	checkModes(t, tokens)
	first := readSessions(t, tokens)
	if len(first) != 1 || first[0].RefreshToken == "" || first[0].AccessToken == "" || first[0].Issuer != e.lk.Issuer {
		t.Fatalf("sessions after login: %+v", first)
	}

	// A fresh token is printed as it is: no request to the server.
	calls := e.tokenCalls.Load()
	if got := r.mustRun(t, "token"); got != first[0].AccessToken {
		t.Fatalf("token printed %q, want the stored one", got)
	}
	if e.tokenCalls.Load() != calls {
		t.Fatal("lkcli token refreshed a token that had not expired")
	}

	// Inside its last minute it is refreshed, and the rotated refresh token
	// saved. (Latchkey's clock is the real one, so the stored expiry is
	// moved, not lkcli's clock.)
	nearEnd := first[0]
	nearEnd.Expiry = time.Now().Add(30 * time.Second)
	if err := (cli.Store{Path: tokens}).Put(nearEnd); err != nil {
		t.Fatal(err)
	}
	at := r.mustRun(t, "token")
	second := readSessions(t, tokens)
	if e.refreshes.Load() != 1 || at == first[0].AccessToken || at != second[0].AccessToken ||
		second[0].RefreshToken == first[0].RefreshToken || second[0].RefreshToken == "" {
		t.Fatalf("after expiry: %d refreshes, printed %q, stored %+v", e.refreshes.Load(), at, second)
	}
	checkModes(t, tokens)
	if !e.introspect(at) || !e.introspect(second[0].RefreshToken) {
		t.Fatal("the refreshed tokens are not active")
	}
	// The new one is reused until it too nears its end.
	if got := r.mustRun(t, "token"); got != at || e.refreshes.Load() != 1 {
		t.Fatalf("the refreshed token was not reused: %q, %d refreshes", got, e.refreshes.Load())
	}

	r.mustRun(t, "logout")
	if e.introspect(second[0].RefreshToken) || e.introspect(at) {
		t.Fatal("tokens still active after logout")
	}
	if s := readSessions(t, tokens); len(s) != 0 {
		t.Fatalf("logout left %+v", s)
	}
	r.errOut.buf.Reset()
	if code := <-r.main("token"); code == 0 || !strings.Contains(r.errOut.String(), "not logged in") {
		t.Fatalf("token after logout: exit %d, %q", code, r.errOut)
	}
}

func checkModes(t *testing.T, tokens string) {
	t.Helper()
	fi, err := os.Stat(tokens)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("tokens file mode %v, want 0600", fi.Mode().Perm())
	}
	di, _ := os.Stat(filepath.Dir(tokens))
	if di.Mode().Perm() != 0o700 {
		t.Fatalf("tokens directory mode %v, want 0700", di.Mode().Perm())
	}
}

// signIn runs lkcli login with the person following the printed URL.
func (e *env) signIn(t *testing.T, r *run) {
	t.Helper()
	code := r.main("login")
	u := r.errOut.next(t)
	if status, page := newPerson(t).visit(u); status != http.StatusOK {
		t.Fatalf("browser: %d %s", status, page)
	}
	if c := wait(t, code, r.errOut); c != 0 {
		t.Fatalf("login: exit %d\n%s", c, r.errOut)
	}
}

// Any web page can make the browser call the loopback port. An answer
// without this login's state, or from another issuer (RFC 9207), is
// refused and redeems nothing; the real answer still completes the login.
func TestLoopbackRefusesForeignAnswers(t *testing.T) {
	e := start(t)
	r := e.app(tokensPath(t), &clock{})
	code := r.main("login")
	authURL := r.errOut.next(t)
	auth, _ := url.Parse(authURL)
	q := auth.Query()
	callback := q.Get("redirect_uri")
	calls := e.tokenCalls.Load()

	forged := []url.Values{
		{"code": {"attacker-code"}, "state": {"wrong-state"}, "iss": {e.lk.Issuer}},
		{"code": {"attacker-code"}, "iss": {e.lk.Issuer}},
		{"code": {"attacker-code"}, "state": {q.Get("state") + "x"}, "iss": {e.lk.Issuer}},
		{"code": {"attacker-code"}, "state": {q.Get("state")}, "iss": {"https://evil.example"}},
		{"code": {"attacker-code"}, "state": {q.Get("state")}}, // Latchkey always sends iss
		{"error": {"access_denied"}, "state": {"wrong-state"}},
	}
	for _, f := range forged {
		resp, err := http.Get(callback + "?" + f.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("forged answer %v: %d, want 400", f, resp.StatusCode)
		}
	}
	select {
	case c := <-code:
		t.Fatalf("a forged answer ended the login (exit %d)\n%s", c, r.errOut)
	default:
	}
	if e.tokenCalls.Load() != calls {
		t.Fatal("a forged answer reached the token endpoint")
	}
	if status, page := newPerson(t).visit(authURL); status != http.StatusOK || !strings.Contains(page, "Signed in") {
		t.Fatalf("the real answer: %d %s", status, page)
	}
	if c := wait(t, code, r.errOut); c != 0 {
		t.Fatalf("login: exit %d\n%s", c, r.errOut)
	}
}

// A person who denies consent ends the login with an error, saving nothing.
func TestLoopbackDenied(t *testing.T) {
	e := start(t)
	tokens := tokensPath(t)
	r := e.app(tokens, &clock{})
	code := r.main("login")
	p := newPerson(t)
	p.consent = "deny"
	if status, page := p.visit(r.errOut.next(t)); status != http.StatusBadRequest || !strings.Contains(page, "access_denied") {
		t.Fatalf("browser after deny: %d %s", status, page)
	}
	if c := wait(t, code, r.errOut); c == 0 || !strings.Contains(r.errOut.String(), "access_denied") {
		t.Fatalf("login after deny: exit %d\n%s", c, r.errOut)
	}
	if _, err := os.Stat(tokens); !os.IsNotExist(err) {
		t.Fatalf("a denied login wrote the tokens file (%v)", err)
	}
}

// The errors a person meets, each saying what to do.
func TestClearErrors(t *testing.T) {
	e := start(t)

	t.Run("not logged in", func(t *testing.T) {
		r := e.app(tokensPath(t), &clock{})
		for _, cmd := range []string{"token", "logout"} {
			r.errOut.buf.Reset()
			if c := <-r.main(cmd); c == 0 || !strings.Contains(r.errOut.String(), "not logged in") {
				t.Fatalf("%s: exit %d %q", cmd, c, r.errOut)
			}
		}
	})

	t.Run("refresh token revoked", func(t *testing.T) {
		clk := &clock{}
		r := e.app(tokensPath(t), clk)
		e.signIn(t, r)
		e.lk.AdminPost("/admin/users/"+e.userID+"/revoke-tokens", nil)
		clk.advance(time.Hour)
		if c := <-r.main("token"); c == 0 || !strings.Contains(r.errOut.String(), "the session has ended") ||
			!strings.Contains(r.errOut.String(), "lkcli login") {
			t.Fatalf("token after revocation: exit %d %q", c, r.errOut)
		}
	})

	t.Run("server unreachable", func(t *testing.T) {
		clk := &clock{}
		tokens := tokensPath(t)
		r := e.app(tokens, clk)
		e.signIn(t, r)
		// The same tokens file, but the server has gone away.
		gone := start(t)
		gone.lk.Public.Close()
		r.app.Getenv = func(k string) string {
			return map[string]string{"LATCHKEY_ISSUER": gone.lk.Issuer, "LKCLI_CLIENT_ID": e.clientID}[k]
		}
		if c := <-r.main("login", "--no-browser"); c == 0 || !strings.Contains(r.errOut.String(), "cannot reach the server") {
			t.Fatalf("login: exit %d %q", c, r.errOut)
		}
		sess := readSessions(t, tokens)[0]
		sess.Issuer = gone.lk.Issuer
		if err := (cli.Store{Path: tokens}).Put(sess); err != nil {
			t.Fatal(err)
		}
		// Still valid: printed without the server.
		if got := r.mustRun(t, "token"); got != sess.AccessToken {
			t.Fatalf("a valid token needs the server? %q", got)
		}
		clk.advance(time.Hour)
		r.errOut.buf.Reset()
		if c := <-r.main("token"); c == 0 || !strings.Contains(r.errOut.String(), "cannot reach the server") {
			t.Fatalf("token: exit %d %q", c, r.errOut)
		}
		r.errOut.buf.Reset()
		if c := <-r.main("logout"); c == 0 || !strings.Contains(r.errOut.String(), "tokens are kept") {
			t.Fatalf("logout: exit %d %q", c, r.errOut)
		}
		if len(readSessions(t, tokens)) != 2 {
			t.Fatal("a logout that could not revoke forgot the tokens")
		}
	})
}

// Scripts call `lkcli token` in parallel. When the token nears its end,
// one run refreshes and the others, waiting on the file's lock, print the
// token it saved: one refresh, one chain, no save undoing another.
func TestParallelTokenRefreshesOnce(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no file lock on Windows")
	}
	e := start(t)
	tokens := tokensPath(t)
	e.signIn(t, e.app(tokens, &clock{}))
	sess := readSessions(t, tokens)[0]
	sess.Expiry = time.Now().Add(10 * time.Second)
	if err := (cli.Store{Path: tokens}).Put(sess); err != nil {
		t.Fatal(err)
	}
	const n = 5
	printed := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			r := e.app(tokens, &clock{})
			if c := <-r.main("token"); c != 0 {
				t.Errorf("token: exit %d %s", c, r.errOut)
			}
			printed <- strings.TrimSpace(r.out.String())
		})
	}
	wg.Wait()
	close(printed)
	final := readSessions(t, tokens)[0]
	for at := range printed {
		if at != final.AccessToken {
			t.Fatalf("a run printed %q, the file holds %q", at, final.AccessToken)
		}
	}
	if e.refreshes.Load() != 1 || !e.introspect(final.RefreshToken) {
		t.Fatalf("%d refreshes for %d parallel runs, want 1", e.refreshes.Load(), n)
	}
}

// Logging in again replaces the session, and revokes the one it replaces:
// nothing on this machine could revoke it later.
func TestLoginAgainRevokesTheOldSession(t *testing.T) {
	e := start(t)
	tokens := tokensPath(t)
	e.signIn(t, e.app(tokens, &clock{}))
	old := readSessions(t, tokens)[0]
	e.signIn(t, e.app(tokens, &clock{}))
	now := readSessions(t, tokens)
	if len(now) != 1 || now[0].RefreshToken == old.RefreshToken {
		t.Fatalf("sessions after a second login: %+v", now)
	}
	if e.introspect(old.RefreshToken) || !e.introspect(now[0].RefreshToken) {
		t.Fatal("the replaced session is still active, or the new one is not")
	}
}
