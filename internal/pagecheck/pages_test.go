package pagecheck_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/lktest"
	"github.com/latchkey/latchkey/internal/mail/mailtest"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
)

// axePath is axe-core as npm ci installs it from axe/package-lock.json.
const axePath = "axe/node_modules/axe-core/axe.min.js"

// wcagTags are the axe rules of WCAG 2.2 level AA (2.0, 2.1 and 2.2, A and
// AA).
var wcagTags = []string{"wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"}

// loadAxe reads axe-core, or skips the test (fails in CI) when npm ci has
// not run.
func loadAxe(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(axePath)
	if err != nil {
		msg := fmt.Sprintf("%s is missing: run `npm ci` in internal/pagecheck/axe (.ci/run does): %v", axePath, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return string(b)
}

// screenshotDir is where the screenshots go: LATCHKEY_SCREENSHOT_DIR
// (.ci/run keeps it as an artifact), or a folder removed after the test.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("LATCHKEY_SCREENSHOT_DIR")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// variant is one way a page is looked at.
type variant struct {
	name          string
	width, height int64
	mobile, dark  bool
	// scale is device pixels per CSS pixel: 2 with half the width is a
	// window zoomed to 200 %.
	scale float64
	// axe runs axe-core; shot writes a screenshot.
	axe, shot bool
}

var (
	light  = variant{name: "light", width: 1280, height: 800, axe: true, shot: true}
	dark   = variant{name: "dark", width: 1280, height: 800, dark: true, axe: true, shot: true}
	mobile = variant{name: "mobile", width: 390, height: 844, mobile: true, axe: true, shot: true}
	// narrow is WCAG 1.4.10 reflow: 320 CSS pixels, which is also a
	// 1280-pixel window at 400 % zoom (and covers 200 %).
	narrow = variant{name: "320", width: 320, height: 640, mobile: true}
	zoom   = variant{name: "zoom200", width: 640, height: 400, scale: 2}
	german = variant{name: "de", width: 1280, height: 800, axe: true, shot: true}
)

// pass is one language's walk through the pages, as one person in one
// browser profile.
type pass struct {
	t   *testing.T
	ctx context.Context
	lk  *lktest.Server
	axe string
	dir string
	// name is the pass's, in screenshot names: its language unless set.
	name     string
	lang     string
	variants []variant
	user     store.User
	password string
	// walk is the way through the pages.
	walk func(p *pass)
	// seen counts the pages checked, for the summary.
	seen []string
}

// Every page Latchkey draws, checked with axe-core for WCAG 2.2 AA (light,
// dark, mobile; German too), reflow at 320 CSS pixels and at 200 % zoom
// without horizontal scrolling, <html lang> from the chosen language, errors tied to their
// fields (aria-invalid and aria-describedby naming the message),
// autocomplete on every text field, and a focus ring on everything the
// keyboard reaches. A screenshot of each page in each variant lands in
// LATCHKEY_SCREENSHOT_DIR.
func TestPagesAccessible(t *testing.T) {
	axe := loadAxe(t)
	browser := lktest.Browser(t, 4*time.Minute)
	smtp := mailtest.Start(t, "", "")
	lk := lktest.Start(t, nil, func(c *config.Config) {
		c.SMTPURL = "smtp://" + smtp.Addr
		c.SMTPFrom = "Latchkey <no-reply@example.com>"
	})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("<!doctype html><html lang=en><title>app</title><p id=done>back at the app</p>"))
	}))
	t.Cleanup(app.Close)
	reg := lk.AdminPost("/admin/clients", map[string]any{"client_name": "Photo Album", "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "redirect_uris": []string{app.URL + "/callback"},
		"scope": "openid profile email offline_access"})
	// The browser starts with its first tab; each pass opens another.
	if err := chromedp.Do(browser); err != nil {
		t.Fatal(err)
	}
	dir := screenshotDir(t)
	t.Logf("screenshots in %s", dir)

	everything := func(p *pass) { p.everyPage(reg["client_id"].(string), app.URL+"/callback") }
	// A theme's brand colour, a hard one: yellow is no link colour on
	// white. The pages it dresses keep AA too.
	themed := lktest.Start(t, nil, func(c *config.Config) { c.PrimaryColor, c.ProductName = "#ffcc00", "Acme ID" })
	for _, p := range []*pass{
		{lang: "en", lk: lk, walk: everything, variants: []variant{light, dark, mobile, narrow, zoom},
			user: store.User{ID: "user-ada", Username: "ada", Name: "Ada Lovelace", Email: "ada@example.com"}},
		{lang: "de", lk: lk, walk: everything, variants: []variant{german, narrow},
			user: store.User{ID: "user-anna", Username: "anna", Name: "Anna Schmidt", Email: "anna@example.com"}},
		{name: "theme", lang: "en", lk: themed, walk: (*pass).themePages, variants: []variant{light, dark},
			user: store.User{ID: "user-ada", Username: "ada", Name: "Ada Lovelace", Email: "ada@example.com"}},
	} {
		if p.name == "" {
			p.name = p.lang
		}
		t.Run(p.name, func(t *testing.T) {
			p.t, p.axe, p.dir, p.password = t, axe, dir, "correct-horse-1"
			// A browser profile of its own: no cookies of the other pass.
			ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
			t.Cleanup(cancel)
			p.ctx = ctx
			p.addUser()
			if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
				Headers: network.Headers{"Accept-Language": p.lang}}); err != nil {
				t.Fatal(err)
			}
			p.walk(p)
			t.Logf("%d page states checked: %s", len(p.seen), strings.Join(p.seen, " "))
			if p.name == "en" {
				allTemplatesSeen(t, p.seen)
			}
		})
	}
}

// templateOf is the template (internal/login/templates) that draws each
// page state the walk checks.
var templateOf = map[string]string{
	"not-found": "message", "error": "message", "signed-out": "message",
	"login": "login", "login-error": "login", "consent": "consent",
	"account": "account", "account-error": "account",
	"second-factor-needed": "mfa_needed", "totp-enrol": "mfa_enrol", "totp-enrol-error": "mfa_enrol",
	"recovery-codes": "mfa_recovery", "second-factor": "mfa_verify", "second-factor-error": "mfa_verify",
	"device": "device", "device-error": "device", "verify-email": "verify_email",
	"reset": "reset", "reset-error": "reset", "dead-link": "account_message", "logout": "logout",
	"forgot-password": "reset_request", "forgot-password-error": "reset_request", "forgot-password-sent": "account_message",
}

// allTemplatesSeen fails when a page template is drawn by no page the walk
// opens: a new page joins the walk, or this test has stopped covering
// every page.
func allTemplatesSeen(t *testing.T, seen []string) {
	t.Helper()
	drawn := map[string]bool{"layout": true}
	for _, s := range seen {
		tmpl, ok := templateOf[s]
		if !ok {
			t.Errorf("page state %s: say in templateOf which template draws it", s)
		}
		drawn[tmpl] = true
	}
	files, err := filepath.Glob("../login/templates/*.html")
	if err != nil || len(files) == 0 {
		t.Fatalf("no templates in ../login/templates: %v", err)
	}
	for _, f := range files {
		if name := strings.TrimSuffix(filepath.Base(f), ".html"); !drawn[name] {
			t.Errorf("%s is drawn by no page this test opens: add the page to everyPage", f)
		}
	}
}

func (p *pass) addUser() {
	u := p.user
	u.PasswordHash, _ = secrets.HashPassword(p.password, secrets.Argon2Params{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32})
	if err := p.lk.Store.CreateUser(context.Background(), &u); err != nil {
		p.t.Fatal(err)
	}
}

// emailLink makes a link of purpose for the person, as the mail would
// carry it.
func (p *pass) emailLink(purpose, path string) string {
	token, _ := secrets.RandomToken(32)
	et := &store.EmailToken{UserID: p.user.ID, Purpose: purpose, Email: p.user.Email, ExpiresAt: time.Now().Add(time.Hour)}
	if err := p.lk.Store.CreateEmailToken(context.Background(), token, et, 10, time.Hour); err != nil {
		p.t.Fatal(err)
	}
	return p.lk.Issuer + path + "?" + url.Values{"token": {token}}.Encode()
}

// themePages are a few pages in a theme's colours.
func (p *pass) themePages() {
	p.open("login", p.lk.Issuer+"/login")
	p.submit("login-error", "#username", p.user.Username, "#password", "wrong-password")
	p.open("not-found", p.lk.Issuer+"/no-such-page")
}

// everyPage goes through every page, as a person would, checking each.
func (p *pass) everyPage(clientID, redirect string) {
	t := p.t
	base := p.lk.Issuer
	authorize := base + "/oauth2/authorize?" + url.Values{"client_id": {clientID}, "response_type": {"code"},
		"redirect_uri": {redirect}, "scope": {"openid profile email"}, "state": {"s1"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeFbo1ohc2QKXNs1XE_s"}, "code_challenge_method": {"S256"}}.Encode()

	p.open("not-found", base+"/no-such-page")
	p.open("error", base+"/oauth2/authorize?client_id=no-such-client&response_type=code")
	p.open("login", authorize)
	p.focusOrder("login", "#username", "#password", "button[type=submit]", `a[href="/forgot-password"]`)
	p.submit("login-error", "#username", p.user.Username, "#password", "wrong-password")
	p.errorTied("login-error", "#username", "#password")
	p.submit("consent", "#password", p.password)
	p.do(chromedp.Click(chromedp.CSS(`button[value=allow]`)), chromedp.WaitVisible(chromedp.ID("done")))

	p.open("account", base+"/account")
	p.submit("account-error", "#current_password", p.password, "#new_password", "new-password-1", "#confirm_password", "new-password-2")
	p.errorTied("account-error", "#new_password", "#confirm_password")
	p.open("second-factor-needed", base+"/login/second-factor")
	p.open("totp-enrol", base+"/account/totp")
	p.submit("totp-enrol-error", "#code", "000000")
	p.errorTied("totp-enrol-error", "#code")
	secret := p.text("code.secret")
	code, err := totp.GenerateCodeCustom(secret, time.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	p.submit("recovery-codes", "#code", code)
	p.open("second-factor", base+"/login/second-factor")
	p.submit("second-factor-error", "#code", "000000")
	p.errorTied("second-factor-error", "#code")

	p.open("device", base+"/device")
	p.submit("device-error", "#user_code", "BCDF-GHJK")
	p.errorTied("device-error", "#user_code")

	p.open("verify-email", p.emailLink(store.EmailTokenVerify, "/verify-email"))
	p.open("reset", p.emailLink(store.EmailTokenReset, "/reset-password"))
	p.submit("reset-error", "#new_password", "new-password-1", "#confirm_password", "new-password-2")
	p.errorTied("reset-error", "#new_password", "#confirm_password")
	p.open("dead-link", base+"/reset-password?token=no-such-token")

	p.open("logout", base+"/logout")
	p.click("signed-out", `button[type=submit]`)
	p.open("forgot-password", base+"/forgot-password")
	p.submit("forgot-password-error", "#username", " ")
	p.errorTied("forgot-password-error", "#username")
	p.submit("forgot-password-sent", "#username", p.user.Username)
}

// do runs browser actions, failing the test on an error.
func (p *pass) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

// eval evaluates a script on the page into T.
func eval[T any](p *pass, script string, opts ...chromedp.EvaluateOption) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](script, opts...))
	if err != nil {
		p.t.Fatalf("%s: evaluate %.60q: %v", p.name, script, err)
	}
	return v
}

func (p *pass) text(css string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		p.t.Fatalf("%s: text of %s: %v", p.name, css, err)
	}
	return strings.TrimSpace(s)
}

// open navigates to u and checks the page it ends on.
func (p *pass) open(name, u string) {
	p.t.Helper()
	p.do(chromedp.Navigate(u), chromedp.WaitReady(chromedp.CSS("main h1")))
	p.check(name)
}

// submit fills in the fields (selector, value pairs; a value replaces
// what is there) and submits the form of the last one, then checks the
// page that answers.
func (p *pass) submit(name string, fields ...string) {
	p.t.Helper()
	var steps []chromedp.Action[chromedp.Void]
	for i := 0; i < len(fields); i += 2 {
		steps = append(steps, chromedp.SetValue(chromedp.CSS(fields[i]), fields[i+1]))
	}
	// The page that answers is a new document: wait for it to replace
	// this one.
	p.do(append(steps, replaced(chromedp.Submit(chromedp.CSS(fields[len(fields)-2]))))...)
	p.check(name)
}

// click clicks the button and checks the page that answers.
func (p *pass) click(name, button string) {
	p.t.Helper()
	p.do(replaced(chromedp.Click(chromedp.CSS(button))))
	p.check(name)
}

// replaced runs act, which leads to a new page, and waits until the page
// has replaced this one.
func replaced(act chromedp.Action[chromedp.Void]) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(chromedp.Evaluate[chromedp.Void](`document.documentElement.dataset.old = "1"`), act,
		chromedp.WaitReady(chromedp.CSS(`html:not([data-old]) main h1`)))
}

// check looks at the page in every variant of the pass.
func (p *pass) check(name string) {
	t := p.t
	t.Helper()
	p.seen = append(p.seen, name)
	if lang := eval[string](p, `document.documentElement.lang`); lang != p.lang {
		t.Errorf("%s (%s): <html lang=%q>, want %q", name, p.name, lang, p.lang)
	}
	// Every field a person types in says what it holds (WCAG 1.3.5),
	// with the token password managers and phones act on ("username
	// webauthn" is a username field too).
	fields := eval[map[string]string](p, `Object.fromEntries([...document.querySelectorAll('input:not([type=hidden]):not([type=checkbox]):not([hidden])')]
		.map(i => [i.name, i.getAttribute('autocomplete') || ""]))`)
	for field, ac := range fields {
		want, ok := autocomplete[field]
		if !ok {
			t.Errorf("%s (%s): field %s: say in autocomplete (this test) what it should hold", name, p.name, field)
		} else if !slices.Contains(strings.Fields(ac), want) {
			t.Errorf("%s (%s): field %s has autocomplete=%q, want %q", name, p.name, field, ac, want)
		}
	}
	for _, v := range p.variants {
		p.emulate(v)
		if v.axe {
			p.runAxe(name, v)
		}
		// No horizontal scrolling at any width (WCAG 1.4.10).
		if w := eval[[]int](p, `[document.scrollingElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
			t.Errorf("%s (%s, %s): scrolls sideways: %d CSS pixels wide in a %d-pixel viewport", name, p.name, v.name, w[0], w[1])
		}
		if v.shot {
			png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatalf("%s: screenshot: %v", name, err)
			}
			if err := os.WriteFile(filepath.Join(p.dir, p.shotName(name, v)), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	p.emulate(p.variants[0])
	p.tabWalk(name)
}

// autocomplete is the token each text field of the pages carries.
var autocomplete = map[string]string{
	"username":         "username",
	"password":         "current-password",
	"current_password": "current-password",
	"new_password":     "new-password",
	"confirm_password": "new-password",
	"code":             "one-time-code",
	"user_code":        "one-time-code",
}

// tabWalk presses Tab from the top of the page through every control and
// checks that the keyboard reaches each in document order (no tabindex
// games, nothing skipped: WCAG 2.1.1, 2.4.3) and shows a focus ring on it:
// an outline at least 2 pixels wide (2.4.7). The palette test in
// internal/login holds the ring's colour to 3:1.
func (p *pass) tabWalk(name string) {
	t := p.t
	t.Helper()
	n := eval[int](p, `[...document.querySelectorAll('a[href], button, input, select, textarea, summary, [tabindex]')]
		.filter(e => e.tabIndex >= 0 && !e.disabled && e.type !== "hidden" && e.getClientRects().length)
		.map((e, i) => e.dataset.tabOrder = i).length`)
	// A click on the page's margin puts the keyboard's starting point at
	// the top (an autofocused field would otherwise be it).
	p.do(chromedp.MouseClickXY(2, 2))
	for i := range n {
		p.do(chromedp.KeyEvent("\t"))
		got := eval[map[string]any](p, `(() => {
			const a = document.activeElement, s = getComputedStyle(a);
			return {order: a.dataset.tabOrder ?? "", tag: a.outerHTML.slice(0, 80), style: s.outlineStyle, width: parseFloat(s.outlineWidth)};
		})()`)
		if got["order"] != fmt.Sprint(i) {
			t.Errorf("%s (%s): Tab %d reaches %v, want control %d in document order", name, p.name, i+1, got["tag"], i)
			return
		}
		if got["style"] == "none" || got["width"].(float64) < 2 {
			t.Errorf("%s (%s): %v has no visible focus ring (outline %v %vpx)", name, p.name, got["tag"], got["style"], got["width"])
		}
	}
}

// shotName is the screenshot's file name: login-light.png, login-de.png,
// theme-login-dark.png.
func (p *pass) shotName(page string, v variant) string {
	if p.name == "theme" {
		page = "theme-" + page
	}
	return page + "-" + v.name + ".png"
}

// emulate sets the viewport and the colour scheme of v.
func (p *pass) emulate(v variant) {
	p.t.Helper()
	var opts []chromedp.EmulateViewportOption
	if v.mobile {
		opts = append(opts, chromedp.EmulateMobile)
	}
	if v.scale != 0 {
		opts = append(opts, chromedp.EmulateScale(v.scale))
	}
	scheme := "light"
	if v.dark {
		scheme = "dark"
	}
	p.do(chromedp.EmulateViewport(v.width, v.height, opts...), chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		return err
	}))
}

// axeRun is what axe.run found: how many rules passed, and the violations.
type axeRun struct {
	Passed     int
	Violations []axeResult
}

// axeResult is one violated rule.
type axeResult struct {
	ID, Impact, Help string
	Nodes            []string
}

// runAxe evaluates axe-core in the page through the DevTools protocol
// (the CSP forbids every script of the page's own) and fails on any
// violation of the WCAG 2.2 AA rules.
func (p *pass) runAxe(name string, v variant) {
	t := p.t
	t.Helper()
	if !eval[bool](p, `typeof axe !== "undefined"`) {
		eval[chromedp.Void](p, p.axe)
	}
	tags, _ := json.Marshal(wcagTags)
	got := eval[axeRun](p, `axe.run(document, {runOnly: {type: "tag", values: `+string(tags)+`}, resultTypes: ["violations"]})
		.then(r => ({passed: r.passes.length, violations: r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
			nodes: v.nodes.map(n => n.target.join(" ") + ": " + n.failureSummary.replace(/\s+/g, " "))}))}))`, chromedp.EvalAwaitPromise)
	// A run that passed nothing checked nothing (axe not loaded, no rules
	// of these tags).
	if got.Passed == 0 {
		t.Errorf("%s (%s, %s): axe passed no rule", name, p.name, v.name)
	}
	for _, r := range got.Violations {
		t.Errorf("%s (%s, %s): axe %s (%s): %s\n\t%s", name, p.name, v.name, r.ID, r.Impact, r.Help, strings.Join(r.Nodes, "\n\t"))
	}
}

// errorTied checks that the page's error message is announced and tied to
// the fields it is about (WCAG 3.3.1, 1.3.1): each has aria-invalid and
// an aria-describedby that names the message.
func (p *pass) errorTied(name string, fields ...string) {
	p.t.Helper()
	for _, f := range fields {
		got := eval[map[string]string](p, `(() => {
			const f = document.querySelector(`+jsString(f)+`);
			if (!f) return {problem: "no such field"};
			const ids = (f.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
			const msgs = ids.map(id => document.getElementById(id)).filter(Boolean);
			const err = msgs.find(m => m.classList.contains("error"));
			return {invalid: f.getAttribute("aria-invalid") || "", error: err ? err.textContent.trim() : "",
				role: err ? (err.getAttribute("role") || "") : ""};
		})()`)
		if got["problem"] != "" || got["invalid"] != "true" || got["error"] == "" || got["role"] != "alert" {
			p.t.Errorf("%s (%s): field %s is not tied to the error message: %v", name, p.name, f, got)
		}
	}
}

// focusOrder presses Tab from the top of the page and checks that the
// keyboard reaches want in that order, each with a visible focus ring:
// an outline at least 2 pixels wide (WCAG 2.4.3, 2.4.7).
func (p *pass) focusOrder(name string, want ...string) {
	t := p.t
	t.Helper()
	// A click on the page's margin puts the keyboard's starting point at
	// the top (the autofocused field would otherwise be it).
	p.do(chromedp.MouseClickXY(2, 2))
	for i, sel := range want {
		p.do(chromedp.KeyEvent("\t"))
		got := eval[map[string]any](p, `(() => {
			const a = document.activeElement, s = getComputedStyle(a);
			return {match: a.matches(`+jsString(sel)+`), tag: a.outerHTML.slice(0, 80),
				style: s.outlineStyle, width: parseFloat(s.outlineWidth)};
		})()`)
		if got["match"] != true {
			t.Errorf("%s (%s): Tab %d reaches %v, want %s", name, p.name, i+1, got["tag"], sel)
			return
		}
		if got["style"] == "none" || got["width"].(float64) < 2 {
			t.Errorf("%s (%s): %s has no visible focus ring (outline %v %vpx)", name, p.name, sel, got["style"], got["width"])
		}
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
