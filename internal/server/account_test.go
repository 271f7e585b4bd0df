package server_test

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	netmail "net/mail"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/mail/mailtest"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/server"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// accountHarness is a harness whose e-mailed links go to an SMTP server
// the test runs (none when mailOn is false); wait returns once the mail
// work of every request so far is done, so a test knows a mail that did
// not come will not come.
type accountHarness struct {
	*harness
	smtp *mailtest.Server
	work *sync.WaitGroup
}

func newAccountHarness(t *testing.T, b storetest.Backend, mailOn bool) *accountHarness {
	t.Helper()
	ah := &accountHarness{work: &sync.WaitGroup{}}
	var tune []func(*config.Config)
	if mailOn {
		ah.smtp = mailtest.Start(t, "mailer", "mail-password")
		tune = append(tune, func(c *config.Config) {
			c.SMTPURL = "smtp://mailer:mail-password@" + ah.smtp.Addr
			c.SMTPFrom = "Latchkey <no-reply@example.com>"
		})
	}
	ah.harness = newHarnessWith(t, b, store.Options{}, []server.Option{server.WithAccount(func(c *login.AccountConfig) {
		c.HashPassword = func(p string) (string, error) {
			return secrets.HashPassword(p, secrets.Argon2Params{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32})
		}
		c.Go = func(f func()) { ah.work.Go(f) }
	})}, tune...)
	return ah
}

// mailLink waits for the next mail and returns its link to path.
func (ah *accountHarness) mailLink(t *testing.T, to, path string) string {
	t.Helper()
	ah.work.Wait()
	m := ah.smtp.Next(t, 10*time.Second)
	if len(m.To) != 1 || m.To[0] != to || m.User != "mailer" || m.From != "no-reply@example.com" {
		t.Fatalf("mail from %q to %v as %q", m.From, m.To, m.User)
	}
	return mailtest.Link(t, m, ah.public.URL+path+"?token=")
}

// noMail checks that no mail was sent.
func (ah *accountHarness) noMail(t *testing.T) {
	t.Helper()
	ah.work.Wait()
	select {
	case m := <-ah.smtp.Mails:
		t.Fatalf("unexpected mail to %v", m.To)
	default:
	}
}

// account opens /account in br and returns the page.
func (b *browser) account() string {
	b.t.Helper()
	resp, page := b.get(b.h.public.URL + "/account")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Active sessions") {
		b.t.Fatalf("account page: %d\n%s", resp.StatusCode, page)
	}
	return page
}

// accountPost submits a form of the account page with its CSRF token.
func (b *browser) accountPost(path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	form.Set("csrf_token", field(b.t, csrfRe, b.account()))
	return b.post(path, form)
}

var sidRe = regexp.MustCompile(`name="sid" value="([^"]+)"`)

// The account page needs a sign-in, and comes back to itself after it.
func TestAccountPageNeedsSignIn(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newAccountHarness(t, b, false)
		h.user("ann", "ann-password-1")
		br := h.browser("https://never.example")
		resp, page := br.get(h.public.URL + "/account")
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="password"`) || strings.Contains(page, "Active sessions") {
			t.Fatalf("signed out, /account shows %d:\n%s", resp.StatusCode, page)
		}
		if field(t, returnToRe, page) != "/account" {
			t.Fatalf("the login page does not return to /account")
		}
		resp, page = br.login(page, "ann", "ann-password-1")
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Active sessions") || !strings.Contains(page, "ann") {
			t.Fatalf("after sign-in: %d\n%s", resp.StatusCode, page)
		}
		if !strings.Contains(page, `href="/account/totp"`) || strings.Contains(page, "Forgot password?") {
			t.Error("the page must link to /account/totp")
		}
		if got := resp.Header.Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'none'") {
			t.Errorf("CSP = %q", got)
		}
	})
}

// Ending another session from the account page ends it as logout does:
// its refresh token stops working and its client gets a back-channel
// logout token; the session ended is listed no more, and a person cannot
// end someone else's session.
func TestAccountEndsAnotherSession(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newAccountHarness(t, b, false)
		h.user("ann", "ann-password-1")
		h.user("bob", "bob-password-1")
		rp := newRP(t)
		app := h.oidcApp("notes", rp)
		phone := h.browser(app.conf.RedirectURL)
		rt := signInTo(t, h.harness, phone, app, "ann", "ann-password-1")
		phoneSID := phone.session().SID

		laptop := h.browser("https://never.example")
		signIn(t, laptop, "ann", "ann-password-1")
		page := laptop.account()
		if n := strings.Count(page, `name="sid"`); n != 2 {
			t.Fatalf("%d sessions listed, want 2", n)
		}
		if strings.Count(page, "this device") != 1 {
			t.Error("want exactly one session marked this device")
		}
		if !strings.Contains(page, "Go program") {
			t.Error("the device is not described from the User-Agent")
		}

		// Bob cannot end Ann's session by its sid.
		bob := h.browser("https://never.example")
		signIn(t, bob, "bob", "bob-password-1")
		if resp, _ := bob.accountPost("/account/sessions/end", url.Values{"sid": {phoneSID}}); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("bob ending ann's session: %d", resp.StatusCode)
		}
		if !refreshes(h.harness, app, rt) {
			t.Fatal("another person's End revoked the grant")
		}

		resp, page := laptop.accountPost("/account/sessions/end", url.Values{"sid": {phoneSID}})
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "The session was ended.") {
			t.Fatalf("end: %d\n%s", resp.StatusCode, page)
		}
		if strings.Count(page, `name="sid"`) != 1 {
			t.Error("the ended session is still listed")
		}
		h.settle()
		if refreshes(h.harness, app, rt) {
			t.Error("the ended session's refresh token still works")
		}
		if got := rp.received(); len(got) != 1 || h.logoutClaims(got[0], app.id)["sid"] != phoneSID {
			t.Errorf("back-channel logout tokens: %d", len(got))
		}
		if resp, page := phone.get(h.public.URL + "/account"); resp.StatusCode != http.StatusOK || strings.Contains(page, "Active sessions") {
			t.Error("the ended browser is still signed in")
		}
	})
}

// Revoking an application ends its grants' tokens (refresh and access,
// seen by introspection) and forgets the consent: the next authorization
// asks again.
func TestAccountRevokesApplication(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newAccountHarness(t, b, false)
		h.user("ann", "ann-password-1")
		app := h.spa("https://app.example/cb", false, "read offline_access")
		rs := h.serviceClient("read")
		br := h.browser(app.conf.RedirectURL)
		rt := signInTo(t, h.harness, br, app, "ann", "ann-password-1")
		resp, m := h.form("/oauth2/token", "", "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {app.id}})
		if resp.StatusCode != http.StatusOK {
			t.Fatal("refresh before revocation")
		}
		at, rt2 := m["access_token"].(string), m["refresh_token"].(string)
		if h.introspect(rs, at)["active"] != true {
			t.Fatal("access token inactive before revocation")
		}

		page := br.account()
		if !strings.Contains(page, "Test SPA") || !strings.Contains(page, "<code>read</code>") {
			t.Fatalf("the application is not listed:\n%s", page)
		}
		resp, page = br.accountPost("/account/apps/revoke", url.Values{"client_id": {app.id}})
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "access was revoked") || strings.Contains(page, "Test SPA") {
			t.Fatalf("revoke: %d\n%s", resp.StatusCode, page)
		}
		if h.introspect(rs, at)["active"] != false {
			t.Error("the access token is still active")
		}
		if refreshes(h.harness, app, rt2) {
			t.Error("the refresh token still works")
		}
		resp, page = br.get(app.conf.AuthCodeURL("state-again-01", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if !isConsentPage(resp, page) {
			t.Errorf("consent is not asked again: %d", resp.StatusCode)
		}
	})
}

// A wrong current password is refused and counted by the sign-in
// throttle; the right one changes the password and, on request, ends every
// other session with its grants while this one goes on.
func TestAccountChangePassword(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newAccountHarness(t, b, false)
		h.user("ann", "ann-password-1")
		app := h.oidcApp("notes", nil)
		other := h.browser(app.conf.RedirectURL)
		rt := signInTo(t, h.harness, other, app, "ann", "ann-password-1")
		br := h.browser("https://never.example")
		signIn(t, br, "ann", "ann-password-1")

		change := func(current, next string, others bool) (*http.Response, string) {
			f := url.Values{"current_password": {current}, "new_password": {next}, "confirm_password": {next}}
			if others {
				f.Set("sign_out_others", "1")
			}
			return br.accountPost("/account/password", f)
		}
		if resp, _ := change("ann-password-1", "short", false); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("a too-short password: %d", resp.StatusCode)
		}
		limit := h.cfg.LoginUserLimit
		for i := range limit {
			if resp, page := change("wrong-password", "ann-password-2", false); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("wrong current password #%d: %d\n%s", i+1, resp.StatusCode, page)
			}
		}
		if resp, _ := change("ann-password-1", "ann-password-2", false); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("after %d wrong passwords: %d, want 429", limit, resp.StatusCode)
		}
		h.clock.advance(time.Hour)

		resp, page := change("ann-password-1", "ann-password-2", true)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "other sessions were signed out") {
			t.Fatalf("change: %d\n%s", resp.StatusCode, page)
		}
		if strings.Count(page, `name="sid"`) != 1 {
			t.Error("other sessions are still listed")
		}
		if refreshes(h.harness, app, rt) {
			t.Error("another session's refresh token still works")
		}
		if _, err := h.store.FindUserByName(context.Background(), "ann"); err != nil {
			t.Fatal(err)
		}
		fresh := h.browser("https://never.example")
		_, lp := fresh.get(h.public.URL + "/login")
		if resp, _ := fresh.login(lp, "ann", "ann-password-1"); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("the old password still signs in: %d", resp.StatusCode)
		}
		signIn(t, fresh, "ann", "ann-password-2")
	})
}

// Password reset by mail: the link works once, refuses a new password
// late, and ends every session and grant of the person; an unknown name
// gets the same answer and no mail.
func TestPasswordResetByMail(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newAccountHarness(t, b, true)
		ann := h.user("ann", "ann-password-1")
		h.setEmail(ann, "ann@example.com")
		h.user("nomail", "nomail-password-1")
		app := h.oidcApp("notes", nil)
		rt := signInTo(t, h.harness, h.browser(app.conf.RedirectURL), app, "ann", "ann-password-1")

		br := h.browser("https://never.example")
		_, lp := br.get(h.public.URL + "/login")
		if !strings.Contains(lp, `href="/forgot-password"`) {
			t.Fatal("the login page offers no Forgot password?")
		}
		forgot := func(name string) string {
			_, fp := br.get(h.public.URL + "/forgot-password")
			resp, page := br.post("/forgot-password", url.Values{"csrf_token": {field(t, csrfRe, fp)}, "username": {name}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("forgot %q: %d", name, resp.StatusCode)
			}
			return page
		}
		answer := forgot("ann")
		link := h.mailLink(t, "ann@example.com", "/reset-password")
		for _, name := range []string{"nobody", "nobody@example.com", "nomail"} {
			if got := forgot(name); got != answer {
				t.Errorf("the answer for %q differs from a real account's", name)
			}
		}
		h.noMail(t)
		if len(strings.TrimPrefix(link, h.public.URL+"/reset-password?token=")) < 43 {
			t.Errorf("token too short: %s", link)
		}
		if raw, _ := h.store.RawColumn(context.Background(), "email_tokens", "id"); len(raw) != 1 || strings.Contains(link, raw[0]) {
			t.Errorf("the token is stored as is: %v", raw)
		}

		resp, page := br.get(link)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="new_password"`) {
			t.Fatalf("reset page: %d\n%s", resp.StatusCode, page)
		}
		reset := func(page, pw string) (*http.Response, string) {
			tok := regexp.MustCompile(`name="token" value="([^"]+)"`)
			return br.post("/reset-password", url.Values{"csrf_token": {field(t, csrfRe, page)}, "token": {field(t, tok, page)},
				"new_password": {pw}, "confirm_password": {pw}})
		}
		if resp, page := reset(page, "ann-password-2"); resp.StatusCode != http.StatusOK || !strings.Contains(page, "Password changed") {
			t.Fatalf("reset: %d\n%s", resp.StatusCode, page)
		}
		if refreshes(h.harness, app, rt) {
			t.Error("a grant survived the reset")
		}
		if resp, page := reset(page, "ann-password-3"); resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "already been used") {
			t.Errorf("second use: %d\n%s", resp.StatusCode, page)
		}
		if resp, _ := br.get(link); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("a used link's page: %d", resp.StatusCode)
		}
		signIn(t, h.browser("https://never.example"), "ann", "ann-password-2")

		// A link opened in time but used late is refused.
		forgot("ann@example.com")
		late := h.mailLink(t, "ann@example.com", "/reset-password")
		_, page = br.get(late)
		h.clock.advance(h.cfg.EmailLinkTTL + time.Second)
		if resp, page := reset(page, "ann-password-4"); resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "expired") {
			t.Errorf("late use: %d\n%s", resp.StatusCode, page)
		}
		if resp, _ := br.get(late); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("a late link's page: %d", resp.StatusCode)
		}
		signIn(t, h.browser("https://never.example"), "ann", "ann-password-2")
	})
}

// The mail is in the language of the page it was asked from: a German
// browser gets a German reset link mail, subject and body.
func TestResetMailInPageLanguage(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newAccountHarness(t, b, true)
		h.setEmail(h.user("ann", "ann-password-1"), "ann@example.com")
		br := speaking(h.browser("https://never.example"), "de-DE,de;q=0.9")
		_, fp := br.get(h.public.URL + "/forgot-password")
		if resp, _ := br.post("/forgot-password", url.Values{"csrf_token": {field(t, csrfRe, fp)}, "username": {"ann"}}); resp.StatusCode != http.StatusOK {
			t.Fatalf("forgot: %d", resp.StatusCode)
		}
		h.work.Wait()
		m := h.smtp.Next(t, 10*time.Second)
		msg, err := netmail.ReadMessage(strings.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
		if err != nil || subject != "Passwort zurücksetzen" {
			t.Errorf("subject %q (%v)", subject, err)
		}
		if body, _ := io.ReadAll(msg.Body); !strings.Contains(string(body), "Jemand, wahrscheinlich Sie") ||
			!strings.Contains(string(body), h.public.URL+"/reset-password?token=") {
			t.Errorf("body:\n%s", body)
		}
	})
}

// One address cannot mail every account in turn: past ten forgot-password
// requests within the link lifetime it is refused with 429, whichever name
// it asks for, and no mail goes; the limit lapses with the window.
func TestForgotPasswordPerIPLimit(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newAccountHarness(t, b, true)
		for _, name := range []string{"ann", "bob"} {
			h.setEmail(h.user(name, name+"-password-1"), name+"@example.com")
		}
		br := h.browser("https://never.example")
		forgot := func(name string) int {
			_, fp := br.get(h.public.URL + "/forgot-password")
			resp, _ := br.post("/forgot-password", url.Values{"csrf_token": {field(t, csrfRe, fp)}, "username": {name}})
			return resp.StatusCode
		}
		for i := range 10 {
			if got := forgot(fmt.Sprintf("nobody-%d", i)); got != http.StatusOK {
				t.Fatalf("request %d: %d", i+1, got)
			}
		}
		for _, name := range []string{"ann", "nobody-x"} {
			if got := forgot(name); got != http.StatusTooManyRequests {
				t.Errorf("request past the limit for %q: %d, want 429", name, got)
			}
		}
		h.noMail(t)
		h.clock.advance(h.cfg.EmailLinkTTL + time.Second)
		if got := forgot("bob"); got != http.StatusOK {
			t.Fatalf("after the window: %d", got)
		}
		h.mailLink(t, "bob@example.com", "/reset-password")
	})
}

// Without LATCHKEY_SMTP_URL nothing is offered and the links' routes are
// not there.
func TestNoMailNoLinks(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newAccountHarness(t, b, false)
		id := h.user("ann", "ann-password-1")
		h.setEmail(id, "ann@example.com")
		br := h.browser("https://never.example")
		_, lp := br.get(h.public.URL + "/login")
		if strings.Contains(lp, "forgot-password") {
			t.Error("the login page offers a reset without mail")
		}
		signIn(t, br, "ann", "ann-password-1")
		if strings.Contains(br.account(), "verify-email") {
			t.Error("the account page offers verification without mail")
		}
		for _, p := range []string{"/forgot-password", "/reset-password?token=x", "/verify-email?token=x"} {
			if resp, _ := br.get(h.public.URL + p); resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
			}
		}
		if resp, _ := br.accountPost("/account/verify-email", url.Values{}); resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST /account/verify-email: %d, want 404", resp.StatusCode)
		}
	})
}

// A verification link sets email_verified, seen in userinfo and the ID
// token; it works once.
func TestEmailVerification(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newAccountHarness(t, b, true)
		id := h.user("ann", "ann-password-1")
		h.setEmail(id, "Ann@Example.com")
		br := h.browser("https://never.example")
		signIn(t, br, "ann", "ann-password-1")
		if page := br.account(); !strings.Contains(page, "not verified") || !strings.Contains(page, `action="/account/verify-email"`) {
			t.Fatalf("no verification offered:\n%s", page)
		}
		if resp, page := br.accountPost("/account/verify-email", url.Values{}); resp.StatusCode != http.StatusOK || !strings.Contains(page, "We sent a verification link") {
			t.Fatalf("ask: %d", resp.StatusCode)
		}
		link := h.mailLink(t, "Ann@Example.com", "/verify-email")
		resp, page := br.get(link)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("verify page: %d", resp.StatusCode)
		}
		if u, _ := h.store.FindUser(context.Background(), id); u.EmailVerified {
			t.Fatal("opening the link verified the address: a mail scanner would spend it")
		}
		tokRe := regexp.MustCompile(`name="token" value="([^"]+)"`)
		confirm := func(page string) (*http.Response, string) {
			return br.post("/verify-email", url.Values{"csrf_token": {field(t, csrfRe, page)}, "token": {field(t, tokRe, page)}})
		}
		if resp, got := confirm(page); resp.StatusCode != http.StatusOK || !strings.Contains(got, "is verified") {
			t.Fatalf("confirm: %d\n%s", resp.StatusCode, got)
		}
		if resp, _ := confirm(page); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("second use: %d", resp.StatusCode)
		}
		pc := oidcPasswordClient(h.harness, "")
		tok := h.token(pc, url.Values{"grant_type": {"password"}, "username": {"ann"}, "password": {"ann-password-1"}, "scope": {"openid email"}})
		_, claims := h.verifyJWT(t, tok["id_token"].(string), keys.TypIDToken)
		if claims["email_verified"] != true {
			t.Errorf("ID token email_verified = %v", claims["email_verified"])
		}
		_, info := h.userinfo(http.MethodGet, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok["access_token"].(string)) })
		if info["email_verified"] != true {
			t.Errorf("userinfo email_verified = %v", info["email_verified"])
		}
		if strings.Contains(br.account(), `action="/account/verify-email"`) {
			t.Error("verification still offered")
		}
	})
}

// Every form refuses a request without this browser's CSRF token, and
// changes nothing.
func TestAccountFormsNeedCSRF(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newAccountHarness(t, b, true)
		id := h.user("ann", "ann-password-1")
		h.setEmail(id, "ann@example.com")
		app := h.oidcApp("notes", nil)
		other := h.browser(app.conf.RedirectURL)
		rt := signInTo(t, h.harness, other, app, "ann", "ann-password-1")
		br := h.browser("https://never.example")
		signIn(t, br, "ann", "ann-password-1")
		sid := field(t, sidRe, br.account())
		for path, form := range map[string]url.Values{
			"/account/password":     {"current_password": {"ann-password-1"}, "new_password": {"ann-password-9"}, "confirm_password": {"ann-password-9"}, "sign_out_others": {"1"}},
			"/account/sessions/end": {"sid": {sid}},
			"/account/apps/revoke":  {"client_id": {app.id}},
			"/account/verify-email": {},
			"/forgot-password":      {"username": {"ann"}},
			"/reset-password":       {"token": {"x"}, "new_password": {"ann-password-9"}, "confirm_password": {"ann-password-9"}},
			"/verify-email":         {"token": {"x"}},
		} {
			for _, token := range []string{"", "forged-token"} {
				if token != "" {
					form.Set("csrf_token", token)
				}
				if resp, _ := br.post(path, form); resp.StatusCode != http.StatusForbidden {
					t.Errorf("POST %s with csrf_token %q: %d, want 403", path, token, resp.StatusCode)
				}
			}
		}
		h.noMail(t)
		if !refreshes(h.harness, app, rt) {
			t.Error("a refused form revoked a grant")
		}
		if strings.Count(br.account(), `name="sid"`) != 2 {
			t.Error("a refused form ended a session")
		}
		signIn(t, h.browser("https://never.example"), "ann", "ann-password-1")
	})
}

// Parallel submissions of one reset link: exactly one sets its password.
func TestResetLinkParallelUse(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newAccountHarness(t, b, true)
		ann := h.user("ann", "ann-password-1")
		h.setEmail(ann, "ann@example.com")
		br := h.browser("https://never.example")
		_, fp := br.get(h.public.URL + "/forgot-password")
		br.post("/forgot-password", url.Values{"csrf_token": {field(t, csrfRe, fp)}, "username": {"ann"}})
		_, page := br.get(h.mailLink(t, "ann@example.com", "/reset-password"))
		tok := field(t, regexp.MustCompile(`name="token" value="([^"]+)"`), page)
		csrf := field(t, csrfRe, page)
		const n = 8
		codes := make([]int, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				pw := "ann-parallel-" + string(rune('a'+i)) + "-1"
				resp, err := br.client.PostForm(h.public.URL+"/reset-password", url.Values{"csrf_token": {csrf}, "token": {tok},
					"new_password": {pw}, "confirm_password": {pw}})
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				codes[i] = resp.StatusCode
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for _, c := range codes {
			switch c {
			case http.StatusOK:
				won++
			case http.StatusBadRequest:
			default:
				t.Errorf("a submission got %d", c)
			}
		}
		if won != 1 {
			t.Fatalf("%d submissions set a password, want exactly 1 (%v)", won, codes)
		}
	})
}
