package server_test

import (
	"cmp"
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/oauth"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"
)

var (
	totpSecretRe   = regexp.MustCompile(`<code class="secret">([A-Z2-7]+)</code>`)
	otpauthRe      = regexp.MustCompile(`<a href="(otpauth://totp/[^"]+)"`)
	sealedSecretRe = regexp.MustCompile(`name="secret" value="([^"]+)"`)
	recoveryCodeRe = regexp.MustCompile(`<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>`)
	aboutRe        = regexp.MustCompile(`name="about" value="([^"]*)"`)
)

// totpAt is the code an authenticator app shows at t.
func totpAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// enrolTOTP sets up an authenticator app for the person signed in on br
// and returns its secret, read from the enrolment page as a person would
// type it, and the recovery codes shown once.
func enrolTOTP(t *testing.T, h *harness, br *browser) (string, []string) {
	t.Helper()
	resp, page := br.get(h.public.URL + "/account/totp")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "<svg") {
		t.Fatalf("enrolment page: %d\n%s", resp.StatusCode, page)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(page, "<script") {
		t.Errorf("enrolment page CSP %q or script", csp)
	}
	secret := field(t, totpSecretRe, page)
	issuer := cmp.Or(h.cfg.ProductName, "Latchkey")
	if link, err := url.Parse(html.UnescapeString(field(t, otpauthRe, page))); err != nil ||
		link.Query().Get("secret") != secret || link.Query().Get("issuer") != issuer || !strings.HasPrefix(link.Path, "/"+issuer+":") {
		t.Errorf("the authenticator app link %v lacks the secret or issuer %q", link, issuer)
	}
	resp, page = br.post("/account/totp", url.Values{"csrf_token": {field(t, csrfRe, page)},
		"secret": {field(t, sealedSecretRe, page)}, "code": {totpAt(t, secret, h.now())}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("confirm enrolment: %d\n%s", resp.StatusCode, page)
	}
	var codes []string
	for _, m := range recoveryCodeRe.FindAllStringSubmatch(page, -1) {
		codes = append(codes, m[1])
	}
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes shown, want 10:\n%s", len(codes), page)
	}
	// The confirming code is spent; the next one is a step later.
	h.clock.advance(30 * time.Second)
	return secret, codes
}

// secondFactor submits code on the second-factor page.
func (b *browser) secondFactor(page, code string) (*http.Response, string) {
	v := url.Values{"csrf_token": {field(b.t, csrfRe, page)}, "code": {code}}
	if m := returnToRe.FindStringSubmatch(page); m != nil {
		v.Set("return_to", htmlUnescape(m[1]))
	}
	if m := aboutRe.FindStringSubmatch(page); m != nil {
		v.Set("about", htmlUnescape(m[1]))
	}
	return b.post("/login/second-factor", v)
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'").Replace(s)
}

func isSecondFactorPage(resp *http.Response, page string) bool {
	return resp.StatusCode == http.StatusOK && strings.Contains(page, `autocomplete="one-time-code"`) && strings.Contains(page, `action="/login/second-factor"`)
}

// passwordThenCode starts app's flow on a fresh browser, types the
// password and returns the second-factor page it must show.
func passwordThenCode(t *testing.T, h *harness, app spa, verifier string, opts ...oauth2.AuthCodeOption) (*browser, string) {
	t.Helper()
	br := h.browser("https://")
	_, page := br.get(app.conf.AuthCodeURL("state-mfa", append(opts, oauth2.S256ChallengeOption(verifier))...))
	resp, page := br.login(page, "ida", "ida-password-1")
	if !isSecondFactorPage(resp, page) {
		t.Fatalf("after the password: %d, want the second-factor page\n%s", resp.StatusCode, page)
	}
	if c := resp.Header.Values("Set-Cookie"); strings.Contains(strings.Join(c, ";"), "latchkey_session=") {
		t.Fatalf("a session cookie before the second factor: %v", c)
	}
	return br, page
}

func exchange(t *testing.T, app spa, resp *http.Response, verifier string) *oauth2.Token {
	t.Helper()
	code := callback(t, resp, app.conf.RedirectURL).Get("code")
	tok, err := app.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func wantAMR(t *testing.T, what string, claims map[string]any, amr, acr string) {
	t.Helper()
	var got []string
	list, _ := claims["amr"].([]any)
	for _, v := range list {
		s, _ := v.(string)
		got = append(got, s)
	}
	if strings.Join(got, " ") != amr || claims["acr"] != acr {
		t.Errorf("%s: amr %v acr %v, want [%s] %s", what, claims["amr"], claims["acr"], amr, acr)
	}
}

const (
	acrMFA = "urn:latchkey:acr:mfa"
	acrPwd = "urn:latchkey:acr:pwd"
)

// Enrolment, then a sign-in that needs the code: the session starts only
// after it, the ID token and introspection say pwd+otp (mfa) in both
// token formats, and a refresh keeps them. A replayed code and one from
// two steps ago are refused.
func TestMFAEnrolmentThenSignInNeedsCode(t *testing.T) {
	formats(t, func(t *testing.T, b storetest.Backend, format string) {
		h := mfaHarness(t, b, func(c *config.Config) { c.AccessTokenFormat = format })
		h.person("ida", "ida-password-1")
		app := h.spa("https://app.example/cb", true, "openid offline_access")
		rs := h.serviceClient("")
		first := h.browser("https://")
		signIn(t, first, "ida", "ida-password-1")
		secret, codes := enrolTOTP(t, h, first)
		// At rest: the secret sealed, the recovery codes hashed.
		for _, col := range [][2]string{{"user_factors", "secret"}, {"recovery_codes", "code_hash"}} {
			for _, v := range storetest.RawColumn(t, h.store, col[0], col[1]) {
				if strings.Contains(v, secret) || strings.Contains(v, codes[0]) || strings.Contains(v, strings.ReplaceAll(codes[0], "-", "")) {
					t.Errorf("%s.%s holds a secret in clear", col[0], col[1])
				}
			}
		}

		verifier := oauth2.GenerateVerifier()
		br, page := passwordThenCode(t, h, app, verifier)
		// Without the code nobody is signed in: the request asks again.
		if resp, again := br.get(app.conf.AuthCodeURL("state-mfa", oauth2.S256ChallengeOption(verifier))); resp.StatusCode != http.StatusOK || !strings.Contains(again, `name="password"`) {
			t.Fatalf("before the code: %d, want the login page", resp.StatusCode)
		}
		code := totpAt(t, secret, h.now())
		resp, _ := br.secondFactor(page, code)
		tok := exchange(t, app, resp, verifier)
		wantAMR(t, "id_token", h.verifyIDToken(t, idTokenOf(tok), app.id), "pwd otp mfa", acrMFA)
		wantAMR(t, "introspection", h.introspect(rs, tok.AccessToken), "pwd otp mfa", acrMFA)
		refreshed := h.token(testClient{id: app.id}, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {app.id}})
		idt, _ := refreshed["id_token"].(string)
		wantAMR(t, "refreshed id_token", h.verifyIDToken(t, idt, app.id), "pwd otp mfa", acrMFA)
		wantAMR(t, "refreshed introspection", h.introspect(rs, refreshed["access_token"].(string)), "pwd otp mfa", acrMFA)

		// The same code again, on another browser: refused.
		br2, page2 := passwordThenCode(t, h, app, verifier)
		if resp, _ := br2.secondFactor(page2, code); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("replayed code: %d, want 401", resp.StatusCode)
		}
		// A code from two steps ago (outside the one-step window): refused.
		h.clock.advance(30 * time.Second)
		br3, page3 := passwordThenCode(t, h, app, verifier)
		if resp, _ := br3.secondFactor(page3, totpAt(t, secret, h.now().Add(-60*time.Second))); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("code of two steps ago: %d, want 401", resp.StatusCode)
		}
		// The current one works.
		if resp, _ := br3.secondFactor(page3, totpAt(t, secret, h.now())); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("current code: %d, want 303", resp.StatusCode)
		}
		// The password grant cannot ask for the code: refused.
		pw := oidcPasswordClient(h, "")
		resp, m := h.form("/oauth2/token", pw.id, pw.secret, url.Values{"grant_type": {"password"}, "username": {"ida"}, "password": {"ida-password-1"}, "scope": {"openid"}})
		wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")
	})
}

// A recovery code signs in once. (Under a product name of its own, which
// the authenticator app shows as the account's issuer: enrolTOTP checks.)
func TestMFARecoveryCodeWorksOnce(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := mfaHarness(t, b, func(c *config.Config) { c.ProductName = "Acme Cloud" })
		h.person("ida", "ida-password-1")
		app := h.spa("https://app.example/cb", true, "openid")
		first := h.browser("https://")
		signIn(t, first, "ida", "ida-password-1")
		_, codes := enrolTOTP(t, h, first)
		verifier := oauth2.GenerateVerifier()
		br, page := passwordThenCode(t, h, app, verifier)
		resp, _ := br.secondFactor(page, strings.ToUpper(codes[3]))
		tok := exchange(t, app, resp, verifier)
		wantAMR(t, "id_token", h.verifyIDToken(t, idTokenOf(tok), app.id), "pwd otp mfa", acrMFA)
		br2, page2 := passwordThenCode(t, h, app, verifier)
		if resp, _ := br2.secondFactor(page2, codes[3]); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("recovery code used twice: %d, want 401", resp.StatusCode)
		}
		_, m := h.adminJSON(http.MethodGet, "/admin/users/user-ida/factors", nil)
		if m["recovery_codes"] != float64(9) {
			t.Errorf("recovery codes left: %v, want 9", m)
		}
	})
}

// Wrong codes are throttled like passwords: past the limit even the right
// code is refused with 429.
func TestMFAWrongCodesThrottled(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := mfaHarness(t, b, func(c *config.Config) { c.LoginUserLimit = 3 })
		h.person("ida", "ida-password-1")
		app := h.spa("https://app.example/cb", true, "openid")
		first := h.browser("https://")
		signIn(t, first, "ida", "ida-password-1")
		secret, _ := enrolTOTP(t, h, first)
		br, page := passwordThenCode(t, h, app, oauth2.GenerateVerifier())
		for i := range 3 {
			if resp, _ := br.secondFactor(page, "000000"); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("wrong code %d: %d, want 401", i, resp.StatusCode)
			}
		}
		if resp, _ := br.secondFactor(page, totpAt(t, secret, h.now())); resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("right code past the limit: %d, want 429", resp.StatusCode)
		}
	})
}

// Two submissions of one code at the same moment (on PostgreSQL, truly
// parallel): exactly one signs in.
func TestMFAParallelSameCodeOneWins(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := mfaHarness(t, b)
		h.person("ida", "ida-password-1")
		app := h.spa("https://app.example/cb", true, "openid")
		first := h.browser("https://")
		signIn(t, first, "ida", "ida-password-1")
		secret, _ := enrolTOTP(t, h, first)
		const n = 4
		brs, pages := make([]*browser, n), make([]string, n)
		for i := range n {
			brs[i], pages[i] = passwordThenCode(t, h, app, oauth2.GenerateVerifier())
		}
		code := totpAt(t, secret, h.now())
		status := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				resp, _ := brs[i].secondFactor(pages[i], code)
				status[i] = resp.StatusCode
			})
		}
		wg.Wait()
		won := 0
		for _, s := range status {
			switch s {
			case http.StatusSeeOther:
				won++
			case http.StatusUnauthorized:
			default:
				t.Errorf("status %d", s)
			}
		}
		if won != 1 {
			t.Errorf("%d submissions of one code signed in (%v), want 1", won, status)
		}
	})
}

// require_mfa: a password-only session is asked for a second factor
// (step-up) and comes out with mfa; a person without a factor is told to
// enrol one and gets no code; prompt=none gets interaction_required.
// acr_values does the same for a client without require_mfa.
func TestMFAStepUp(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := mfaHarness(t, b)
		h.person("ida", "ida-password-1")
		h.user("nofactor", "nofactor-password-1")
		strict := h.client(map[string]any{
			"client_name": "Strict", "token_endpoint_auth_method": "none", "trusted": true, "require_mfa": true,
			"grant_types": []string{"authorization_code"}, "redirect_uris": []string{"https://strict.example/cb"}, "scope": "openid",
		})
		if _, md := h.adminJSON(http.MethodGet, "/admin/clients/"+strict.id, nil); md["require_mfa"] != true {
			t.Fatalf("require_mfa not kept: %v", md)
		}
		strictApp := spa{testClient: strict, conf: oauth2.Config{ClientID: strict.id, RedirectURL: "https://strict.example/cb", Scopes: []string{"openid"},
			Endpoint: oauth2.Endpoint{AuthURL: h.public.URL + "/oauth2/authorize", TokenURL: h.public.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}}
		app := h.spa("https://app.example/cb", true, "openid")

		// A session from before the enrolment: password only.
		old := h.browser("https://")
		signIn(t, old, "ida", "ida-password-1")
		enrolling := h.browser("https://")
		signIn(t, enrolling, "ida", "ida-password-1")
		secret, _ := enrolTOTP(t, h, enrolling)

		// A plain client takes the password-only session as it is.
		tok := codeFlow(t, h, old, app)
		wantAMR(t, "password-only session", h.verifyIDToken(t, idTokenOf(tok), app.id), "pwd", acrPwd)

		// prompt=none cannot step up.
		resp, _ := old.get(strictApp.conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none")))
		if q := callback(t, resp, "https://strict.example/cb"); q.Get("error") != "interaction_required" {
			t.Errorf("prompt=none without mfa: %v", q)
		}
		stepUp := func(br *browser, a spa, opts ...oauth2.AuthCodeOption) {
			t.Helper()
			verifier := oauth2.GenerateVerifier()
			resp, page := br.get(a.conf.AuthCodeURL("s", append(opts, oauth2.S256ChallengeOption(verifier))...))
			if !isSecondFactorPage(resp, page) {
				t.Fatalf("step-up: %d, want the second-factor page\n%s", resp.StatusCode, page)
			}
			h.clock.advance(30 * time.Second)
			resp, _ = br.secondFactor(page, totpAt(t, secret, h.now()))
			// Back to the request (the browser follows), which now goes
			// through.
			tok := exchange(t, a, resp, verifier)
			wantAMR(t, "after step-up", h.verifyIDToken(t, idTokenOf(tok), a.id), "pwd otp mfa", acrMFA)
		}
		stepUp(old, strictApp)

		// A person without a factor, asked for one by acr_values or
		// require_mfa.
		old2 := h.browser("https://")
		signIn(t, old2, "nofactor", "nofactor-password-1")
		resp, page := old2.get(app.conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("acr_values", acrMFA)))
		// No factor enrolled: told so, no code, no bypass.
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "/account/totp") || resp.Header.Get("Location") != "" {
			t.Fatalf("no factor enrolled: %d\n%s", resp.StatusCode, page)
		}
		if resp, page := old2.get(strictApp.conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("require_mfa, no factor: %d\n%s", resp.StatusCode, page)
		}
		// A fresh sign-in with acr_values: password, then the code.
		stepUpACR := h.browser("https://")
		verifier := oauth2.GenerateVerifier()
		_, page = stepUpACR.get(app.conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("acr_values", acrMFA)))
		resp, page = stepUpACR.login(page, "ida", "ida-password-1")
		if !isSecondFactorPage(resp, page) {
			t.Fatalf("sign-in with acr_values: %d", resp.StatusCode)
		}
		h.clock.advance(30 * time.Second)
		resp, _ = stepUpACR.secondFactor(page, totpAt(t, secret, h.now()))
		tok = exchange(t, app, resp, verifier)
		wantAMR(t, "acr_values sign-in", h.verifyIDToken(t, idTokenOf(tok), app.id), "pwd otp mfa", acrMFA)
		// max_age=0 still asks for the password (and the code) again.
		resp, page = stepUpACR.get(app.conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("max_age", "0")))
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="password"`) {
			t.Errorf("max_age=0 on an mfa session: %d, want the login page", resp.StatusCode)
		}
	})
}

// acr_values alone steps a password-only session up.
func TestMFAACRValuesStepUp(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := mfaHarness(t, b)
		h.person("ida", "ida-password-1")
		app := h.spa("https://app.example/cb", true, "openid")
		old := h.browser("https://")
		signIn(t, old, "ida", "ida-password-1")
		other := h.browser("https://")
		signIn(t, other, "ida", "ida-password-1")
		secret, _ := enrolTOTP(t, h, other)
		verifier := oauth2.GenerateVerifier()
		resp, page := old.get(app.conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("acr_values", acrMFA)))
		if !isSecondFactorPage(resp, page) {
			t.Fatalf("acr_values=%s on a password-only session: %d\n%s", acrMFA, resp.StatusCode, page)
		}
		resp, _ = old.secondFactor(page, totpAt(t, secret, h.now()))
		tok := exchange(t, app, resp, verifier)
		wantAMR(t, "acr_values step-up", h.verifyIDToken(t, idTokenOf(tok), app.id), "pwd otp mfa", acrMFA)
	})
}

// The admin API lists factors without secrets and resets them; the next
// sign-in is by password alone.
func TestMFAAdminReset(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := mfaHarness(t, b)
		h.person("ida", "ida-password-1")
		app := h.spa("https://app.example/cb", true, "openid")
		first := h.browser("https://")
		signIn(t, first, "ida", "ida-password-1")
		secret, _ := enrolTOTP(t, h, first)
		resp, m := h.adminJSON(http.MethodGet, "/admin/users/user-ida/factors", nil)
		fs, _ := m["factors"].([]any)
		if resp.StatusCode != http.StatusOK || len(fs) != 1 || m["recovery_codes"] != float64(10) {
			t.Fatalf("factors: %d %v", resp.StatusCode, m)
		}
		f := fs[0].(map[string]any)
		if f["kind"] != "totp" || f["created_at"] == nil || f["id"] == "" {
			t.Errorf("factor %v", f)
		}
		if _, ok := f["secret"]; ok {
			t.Errorf("factor answer has a secret: %v", f)
		}
		if resp, _ := h.adminJSON(http.MethodDelete, "/admin/users/user-ida/factors/no-such-factor", nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("delete unknown factor: %d", resp.StatusCode)
		}
		if resp, _ := h.adminJSON(http.MethodGet, "/admin/users/no-such-user/factors", nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("factors of an unknown user: %d", resp.StatusCode)
		}
		if resp, _ := h.adminJSON(http.MethodDelete, "/admin/users/user-ida/factors", nil); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("reset: %d", resp.StatusCode)
		}
		if _, m := h.adminJSON(http.MethodGet, "/admin/users/user-ida/factors", nil); len(m["factors"].([]any)) != 0 || m["recovery_codes"] != float64(0) {
			t.Errorf("after reset: %v", m)
		}
		_ = secret
		// Password alone now.
		tok := codeFlow(t, h, h.browser("https://"), app)
		wantAMR(t, "after reset", h.verifyIDToken(t, idTokenOf(tok), app.id), "pwd", acrPwd)
	})
}

// Discovery lists the acr values.
func TestMFADiscovery(t *testing.T) {
	h := newHarness(t, storetest.Backends()[0])
	resp, m := h.do(mustRequest(t, http.MethodGet, h.public.URL+"/.well-known/openid-configuration"))
	acrs, _ := m["acr_values_supported"].([]any)
	if resp.StatusCode != http.StatusOK || len(acrs) != 2 || acrs[0] != acrPwd || acrs[1] != acrMFA {
		t.Errorf("acr_values_supported: %v", m["acr_values_supported"])
	}
}

// mfaHarness moves its clock by TOTP steps; fosite dates codes by the wall
// clock, so codes live long enough not to expire by the harness's.
func mfaHarness(t *testing.T, b storetest.Backend, tune ...func(*config.Config)) *harness {
	return newHarness(t, b, append([]func(*config.Config){func(c *config.Config) { c.AuthCodeTTL = 10 * time.Minute }}, tune...)...)
}

// The second-factor step's statements: the throttle's reservation and
// release, the factor read, the one conditional counter update and the
// new session.
func TestQueryBudgetSecondFactor(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		rec := &statements{}
		h := newHarnessWithStore(t, b, store.Options{OnStatement: rec.record}, func(c *config.Config) { c.AuthCodeTTL = 10 * time.Minute })
		h.person("ida", "ida-password-1")
		app := h.spa("https://app.example/cb", true, "openid")
		first := h.browser("https://")
		signIn(t, first, "ida", "ida-password-1")
		secret, _ := enrolTOTP(t, h, first)
		br, page := passwordThenCode(t, h, app, oauth2.GenerateVerifier())
		br.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		rec.take()
		if resp, _ := br.secondFactor(page, totpAt(t, secret, h.now())); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("second factor: %d", resp.StatusCode)
		}
		stmts := rec.take()
		r, w, x := count(stmts)
		t.Logf("second factor reads %d writes %d transactions %d", r, w, x)
		if r > 1 || w > 6 || x > 1 {
			t.Errorf("second factor over budget: %d reads (max 1), %d writes (max 6), %d transactions (max 1):\n%s", r, w, x, strings.Join(stmts, "\n"))
		}
	})
}

// The device flow keeps require_mfa too: a password-only session is asked
// for the code before the consent page, and a person without a factor
// gets no consent page at all.
func TestMFADeviceFlowRequireMFA(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := mfaHarness(t, b)
		h.person("ida", "ida-password-1")
		h.user("nofactor", "nofactor-password-1")
		tv := h.client(map[string]any{"client_name": "TV", "grant_types": []string{oauth.GrantTypeDeviceCode}, "scope": "openid",
			"token_endpoint_auth_method": "none", "require_mfa": true})
		none := h.browser("https://")
		resp, page := none.enterCode(h.startDevice(tv, "openid")["user_code"].(string), "nofactor", "nofactor-password-1")
		if resp.StatusCode != http.StatusForbidden || strings.Contains(page, `value="allow"`) {
			t.Errorf("require_mfa device flow without a factor: %d\n%s", resp.StatusCode, page)
		}
		old := h.browser("https://")
		signIn(t, old, "ida", "ida-password-1")
		enrolling := h.browser("https://")
		signIn(t, enrolling, "ida", "ida-password-1")
		secret, _ := enrolTOTP(t, h, enrolling)
		resp, page = old.enterCode(h.startDevice(tv, "openid")["user_code"].(string), "", "")
		if !isSecondFactorPage(resp, page) {
			t.Fatalf("password-only session: %d, want the second-factor page\n%s", resp.StatusCode, page)
		}
		if resp, page = old.secondFactor(page, totpAt(t, secret, h.now())); resp.StatusCode != http.StatusOK || !strings.Contains(page, `value="allow"`) {
			t.Errorf("after the code: %d, want the consent page\n%s", resp.StatusCode, page)
		}
	})
}
