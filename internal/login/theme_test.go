package login_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/requestid"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// themed is pages with a theme.
func themed(t *testing.T, st *store.Store, theme login.Theme) (*login.Handler, *httptest.Server, error) {
	t.Helper()
	h, err := login.New(st, login.Config{
		SessionTTL: time.Hour, SessionIdleTTL: time.Hour,
		VerifyPassword: func(string, string) (bool, error) { return true, nil },
		AuthorizePath:  "/oauth2/authorize",
		SystemSecrets:  secrets.ParseSystemSecrets(strings.Repeat("s", 32)),
		Throttle:       login.DefaultThrottlePolicy,
		Theme:          theme,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	h.Register(mux)
	mux.HandleFunc("/", h.NotFound)
	// The request id, as internal/server's middleware sets it.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r.WithContext(requestid.NewContext(r.Context(), requestid.FromHeader(r.Header.Get(requestid.Header)))))
	}))
	t.Cleanup(srv.Close)
	return h, srv, nil
}

func fetch(t *testing.T, srv *httptest.Server, path, acceptLanguage string, cookies ...*http.Cookie) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if acceptLanguage != "" {
		req.Header.Set("Accept-Language", acceptLanguage)
	}
	req.Header.Set(requestid.Header, "ref-4711")
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// TestLanguageChoice: ui_locales of the authorization request first, then
// Accept-Language, then English; <html lang> says which.
func TestLanguageChoice(t *testing.T) {
	st := storetest.New(t, storetest.Backends()[0])
	h, srv, err := themed(t, st, login.Theme{})
	if err != nil {
		t.Fatal(err)
	}
	loginURL := func(uiLocales string) string {
		req := "/oauth2/authorize?client_id=tool&scope=openid"
		if uiLocales != "" {
			req += "&ui_locales=" + uiLocales
		}
		rec := httptest.NewRecorder()
		h.SendToLogin(rec, httptest.NewRequest(http.MethodGet, req, nil), login.ReturnTo{URL: req, ClientName: "Tool"})
		return rec.Header().Get("Location")
	}
	for _, tc := range []struct {
		name, path, accept, lang string
		shows                    []string
	}{
		{"default English", "/login", "", "en", []string{"Sign in", "Password"}},
		{"German by Accept-Language", "/login", "de-DE,de;q=0.9,en;q=0.5", "de", []string{"Anmelden", "Passwort", "Benutzername oder E-Mail"}},
		{"French by Accept-Language", "/login", "fr-CH, fr;q=0.9", "fr", []string{"Se connecter", "Mot de passe"}},
		{"unknown language falls back", "/login", "ja", "en", []string{"Sign in"}},
		{"German by ui_locales", loginURL("de"), "", "de", []string{"Anmelden", "um mit <strong>Tool</strong> fortzufahren"}},
		{"ui_locales wins over Accept-Language", loginURL("de"), "fr", "de", []string{"Anmelden"}},
		{"first supported ui_locale", loginURL("ja+fr"), "de", "fr", []string{"Se connecter"}},
		{"unsupported ui_locales: Accept-Language", loginURL("ja"), "de", "de", []string{"Anmelden"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, page := fetch(t, srv, tc.path, tc.accept)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d\n%s", tc.path, resp.StatusCode, page)
			}
			if !strings.Contains(page, `<html lang="`+tc.lang+`">`) {
				t.Errorf("want <html lang=%q> in\n%s", tc.lang, page)
			}
			if got := resp.Header.Get("Content-Language"); got != tc.lang {
				t.Errorf("Content-Language %q, want %q", got, tc.lang)
			}
			for _, s := range tc.shows {
				if !strings.Contains(page, s) {
					t.Errorf("the page does not show %q:\n%s", s, page)
				}
			}
		})
	}
}

// TestProductName: with a product name the pages never say Latchkey; the
// colour comes as a stylesheet (the CSP allows no inline style); the logo's
// origin, and only it, joins img-src.
func TestProductName(t *testing.T) {
	st := storetest.New(t, storetest.Backends()[0])
	_, srv, err := themed(t, st, login.Theme{ProductName: "Acme ID", LogoURL: "https://cdn.acme.example/logo.svg", PrimaryColor: "#ffcc00"})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/login", "/logout", "/nowhere"} {
		resp, page := fetch(t, srv, path, "")
		if strings.Contains(page, "Latchkey") {
			t.Errorf("%s says Latchkey:\n%s", path, page)
		}
		if !strings.Contains(page, "Acme ID") || !strings.Contains(page, `src="https://cdn.acme.example/logo.svg"`) || !strings.Contains(page, `href="/static/theme.css"`) {
			t.Errorf("%s lacks the product name, logo or theme.css:\n%s", path, page)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "img-src 'self' https://cdn.acme.example;") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "style-src 'self';") {
			t.Errorf("%s CSP %q", path, csp)
		}
		if strings.Contains(page, "style=") || strings.Contains(page, "<style") || strings.Contains(page, "<script") {
			t.Errorf("%s has inline style or script", path)
		}
	}
	resp, css := fetch(t, srv, "/static/theme.css", "")
	// #ffcc00 is light: dark text on it (white would be 1.5:1).
	if resp.StatusCode != http.StatusOK || !strings.Contains(css, "--accent: #ffcc00") || !strings.Contains(css, "--accent-fg: #11151c") {
		t.Errorf("theme.css: %d\n%s", resp.StatusCode, css)
	}
	for _, bad := range []login.Theme{{PrimaryColor: "red"}, {PrimaryColor: "#12345"}, {LogoURL: "http://cdn.example/logo.png"}, {LogoURL: "javascript:alert(1)"}} {
		if _, _, err := themed(t, st, bad); err == nil {
			t.Errorf("theme %+v accepted", bad)
		}
	}
}

func writeFile(t *testing.T, dir, name, text string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestThemeDir: a theme's template, static file and catalogue replace or
// extend the built-in ones; the rest stay.
func TestThemeDir(t *testing.T) {
	st := storetest.New(t, storetest.Backends()[0])
	dir := t.TempDir()
	writeFile(t, dir, "templates/login.html", `{{define "body"}}<p class="acme">{{.T "acme.welcome"}}</p><form method="post" action="/login"><input type="hidden" name="csrf_token" value="{{.CSRFToken}}"></form>{{end}}`)
	writeFile(t, dir, "static/latchkey.css", "body { background: hotpink; }")
	writeFile(t, dir, "static/logo.svg", "<svg/>")
	writeFile(t, dir, "locales/en.json", `{"acme.welcome": "Welcome to Acme", "login.title": "Log on"}`)
	writeFile(t, dir, "locales/de.json", `{"acme.welcome": "Willkommen bei Acme"}`)
	writeFile(t, dir, "locales/nl.json", `{"login.title": "Inloggen"}`)
	_, srv, err := themed(t, st, login.Theme{Dir: dir, LogoURL: "/static/logo.svg"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ accept, shows string }{
		{"", `<p class="acme">Welcome to Acme</p>`}, {"", "<h1>Log on</h1>"},
		{"de", "Willkommen bei Acme"}, {"de", "<h1>Anmelden</h1>"},
		{"nl", "<h1>Inloggen</h1>"}, {"nl", "Welcome to Acme"},
	} {
		if _, page := fetch(t, srv, "/login", tc.accept); !strings.Contains(page, tc.shows) {
			t.Errorf("Accept-Language %q: the page does not show %q:\n%s", tc.accept, tc.shows, page)
		}
	}
	if _, page := fetch(t, srv, "/logout", ""); !strings.Contains(page, "Sign out of <strong>Latchkey</strong>?") {
		t.Errorf("a page the theme leaves alone changed:\n%s", page)
	}
	if _, css := fetch(t, srv, "/static/latchkey.css", ""); !strings.Contains(css, "hotpink") {
		t.Errorf("latchkey.css not overridden: %s", css)
	}
	if resp, _ := fetch(t, srv, "/static/logo.svg", ""); resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("theme static file: %d %v", resp.StatusCode, resp.Header)
	}
	for _, path := range []string{"/static/../locales/en.json", "/static/", "/static/missing.png", "/static/%2e%2e/locales/en.json"} {
		if resp, _ := fetch(t, srv, path, ""); resp.StatusCode == http.StatusOK {
			t.Errorf("GET %s: 200", path)
		}
	}
}

// TestThemeAccountPages: a theme overrides the account pages like the
// others, and the start-up dry run draws them with their own data (an
// accountView: .User, .Sessions, .Apps), not a login page's.
func TestThemeAccountPages(t *testing.T) {
	st := storetest.New(t, storetest.Backends()[0])
	dir := t.TempDir()
	writeFile(t, dir, "templates/account.html", `{{define "body"}}<p class="acme">{{.User.Username}}</p>{{range .Sessions}}{{.Device}} {{$.T "account.end_session"}}{{end}}{{range .Apps}}{{.Name}}{{end}}{{end}}`)
	writeFile(t, dir, "templates/account_message.html", `{{define "body"}}{{.TA .Message .Args}} <a href="{{.Link}}">{{.T .LinkText}}</a>{{end}}`)
	writeFile(t, dir, "templates/reset.html", `{{define "body"}}{{.Token}}{{end}}`)
	if _, _, err := themed(t, st, login.Theme{Dir: dir}); err != nil {
		t.Fatalf("a theme overriding the account pages: %v", err)
	}
}

// TestBrokenThemeRefused: a theme that cannot work stops the start, with
// an error naming the file.
func TestBrokenThemeRefused(t *testing.T) {
	st := storetest.New(t, storetest.Backends()[0])
	for _, tc := range []struct {
		name, file, text, want string
	}{
		{"does not parse", "templates/consent.html", `{{define "body"}}{{if .Scopes}}{{end}`, "templates/consent.html"},
		{"no body", "templates/login.html", `<p>hello</p>`, `theme templates/login.html: defines no {{define "body"}}`},
		{"no layout", "templates/layout.html", `{{define "page"}}{{end}}`, `theme templates/layout.html: defines no {{define "layout"}}`},
		{"unknown page", "templates/logn.html", `{{define "body"}}{{end}}`, "theme templates/logn.html: not a page"},
		{"unknown field", "templates/message.html", `{{define "body"}}{{.Nope}}{{end}}`, "templates/message.html"},
		{"unknown field on an account page", "templates/account.html", `{{define "body"}}{{.User.Username}}{{.Nope}}{{end}}`, "templates/account.html"},
		{"unknown field on a second-factor page", "templates/mfa_verify.html", `{{define "body"}}{{.MFA.Nope}}{{end}}`, "templates/mfa_verify.html"},
		{"bad catalogue", "locales/de.json", `{"login.title": 1}`, "locales/de.json"},
		{"catalogue name", "locales/not a tag.json", `{}`, "locales/not a tag.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, tc.file, tc.text)
			_, _, err := themed(t, st, login.Theme{Dir: dir})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("login.New: %v, want an error naming %q", err, tc.want)
			}
		})
	}
	if _, _, err := themed(t, st, login.Theme{Dir: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("a missing theme directory was accepted")
	}
}

// TestNotFoundAndErrorPages: unknown addresses get a 404 page; error pages
// show the request id to quote and a way back, in the browser's language.
func TestNotFoundAndErrorPages(t *testing.T) {
	st := storetest.New(t, storetest.Backends()[0])
	_, srv, err := themed(t, st, login.Theme{})
	if err != nil {
		t.Fatal(err)
	}
	resp, page := fetch(t, srv, "/no/such/page", "")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(page, "Page not found") || !strings.Contains(page, "ref-4711") || !strings.Contains(page, `href="/login"`) {
		t.Errorf("404: %d\n%s", resp.StatusCode, page)
	}
	if resp.Header.Get("Content-Security-Policy") == "" || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("404 headers: %v", resp.Header)
	}
	resp, page = fetch(t, srv, "/consent?return_to=/evil", "de")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "Ungültige Anfrage") || !strings.Contains(page, "Referenz: <strong>ref-4711</strong>") || !strings.Contains(page, "Zur Anmeldeseite") {
		t.Errorf("error page: %d\n%s", resp.StatusCode, page)
	}
	// A successful message has no reference.
	h, srv2, _ := themed(t, st, login.Theme{})
	_ = srv2
	rec := httptest.NewRecorder()
	h.ErrorPage(rec, httptest.NewRequest(http.MethodGet, "/oauth2/authorize?ui_locales=fr", nil), http.StatusOK, "device.connected.title", "device.connected.message")
	if body := rec.Body.String(); strings.Contains(body, "Référence") || !strings.Contains(body, "Appareil connecté") {
		t.Errorf("200 message page:\n%s", body)
	}
	// A sentence no catalogue has is shown as is, escaped.
	rec = httptest.NewRecorder()
	h.ErrorPage(rec, httptest.NewRequest(http.MethodGet, "/x", nil), http.StatusBadRequest, "Plain <title>", "error.authorize.other", "<b>x</b>")
	if body := rec.Body.String(); !strings.Contains(body, "Plain &lt;title&gt;") || !strings.Contains(body, "(&lt;b&gt;x&lt;/b&gt;)") {
		t.Errorf("literal message:\n%s", body)
	}
}

// TestConsentDescribesScopes: built-in scopes in the page's language,
// custom ones as registered, unknown ones by id; the client's logo and
// home page when registered, the logo's origin allowed by the CSP.
func TestConsentDescribesScopes(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		st := storetest.New(t, b)
		h, srv, err := themed(t, st, login.Theme{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.PutScope(context.Background(), &store.Scope{Name: "invoices:read", Description: "Read your <invoices>"}); err != nil {
			t.Fatal(err)
		}
		session := signedIn(t, st, "ada")
		const request = "/oauth2/authorize?client_id=books&scope=openid+email+invoices:read+mystery"
		rec := httptest.NewRecorder()
		h.SendToConsent(rec, httptest.NewRequest(http.MethodGet, request, nil), login.ReturnTo{URL: request, ClientName: "Books",
			Scopes: []string{"openid", "email", "invoices:read", "mystery"}, UILocales: "de",
			ClientLogoURI: "https://books.example/logo.png", ClientURI: "https://books.example/"})
		resp, page := fetch(t, srv, rec.Header().Get("Location"), "en", session)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("consent: %d\n%s", resp.StatusCode, page)
		}
		for _, s := range []string{
			"Ihre E-Mail-Adresse sehen <small><code>email</code></small>",
			"Read your &lt;invoices&gt; <small><code>invoices:read</code></small>",
			"<li><code>mystery</code></li>",
			`<img class="client-logo" src="https://books.example/logo.png" alt="Logo von Books">`,
			`href="https://books.example/"`,
			"<strong>Books</strong> möchte auf Ihr Konto <strong>ada</strong> zugreifen.",
			"Erlauben",
		} {
			if !strings.Contains(page, s) {
				t.Errorf("the consent page does not show %q:\n%s", s, page)
			}
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src 'self' https://books.example;") {
			t.Errorf("CSP %q", csp)
		}
	})
}
