package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// TestConsentPageEndToEnd: through the real authorization endpoint, a
// client registered with logo_uri and client_uri and a custom scope
// described through the admin API meets a consent page in the language of
// ui_locales (over the browser's), with every scope described, under the
// operator's product name.
func TestConsentPageEndToEnd(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, func(c *config.Config) { c.ProductName = "Acme ID" })
		h.user("sam", "sam-password-1")
		if resp, m := h.adminJSON(http.MethodPut, "/admin/scopes/invoices:read", map[string]any{"description": "Read your invoices"}); resp.StatusCode != http.StatusCreated {
			t.Fatalf("describe scope: %d %v", resp.StatusCode, m)
		}
		const redirect = "https://books.example/cb"
		c := h.client(map[string]any{
			"client_name": "Books", "grant_types": []string{"authorization_code"}, "redirect_uris": []string{redirect},
			"scope": "openid email invoices:read", "logo_uri": "https://books.example/logo.png", "client_uri": "https://books.example/",
		})
		conf := oauth2.Config{ClientID: c.id, RedirectURL: redirect, Scopes: []string{"openid", "email", "invoices:read"},
			Endpoint: oauth2.Endpoint{AuthURL: h.public.URL + "/oauth2/authorize"}}
		br := h.browser(redirect)
		signIn(t, br, "sam", "sam-password-1")
		req, _ := http.NewRequest(http.MethodGet, conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
			oauth2.SetAuthURLParam("ui_locales", "de")), nil)
		req.Header.Set("Accept-Language", "fr")
		resp, err := br.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if !isConsentPage(resp, body) {
			t.Fatalf("no consent page: %d\n%s", resp.StatusCode, body)
		}
		for _, s := range []string{
			`<html lang="de">`, "Zugriff erlauben? · Acme ID",
			"Bestätigen, wer Sie sind <small><code>openid</code></small>",
			"Read your invoices <small><code>invoices:read</code></small>",
			`src="https://books.example/logo.png"`, `href="https://books.example/"`,
		} {
			if !strings.Contains(body, s) {
				t.Errorf("consent page lacks %q", s)
			}
		}
		if strings.Contains(body, "Latchkey") {
			t.Error("the consent page says Latchkey")
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src 'self' https://books.example;") {
			t.Errorf("CSP %q", csp)
		}
	})
}

// TestPublicNotFoundAndErrorReference: an unknown address on the public
// listener is the 404 page; an error page quotes the request id that the
// response's X-Request-Id and the logs carry.
func TestPublicNotFoundAndErrorReference(t *testing.T) {
	h := newHarness(t, storetest.Backends()[0])
	for _, tc := range []struct {
		path, accept, shows string
		status              int
	}{
		{"/no/such/page", "", "Page not found", http.StatusNotFound},
		{"/static/nothing.css", "", "Page not found", http.StatusNotFound},
		{"/oauth2/authorize?client_id=nobody&response_type=code&ui_locales=fr", "de", "Ce lien de connexion n’est pas valide", http.StatusBadRequest},
		{"/consent?return_to=/elsewhere", "de", "Ungültige Anfrage", http.StatusBadRequest},
	} {
		req, _ := http.NewRequest(http.MethodGet, h.public.URL+tc.path, nil)
		req.Header.Set("Accept-Language", tc.accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		id := resp.Header.Get("X-Request-Id")
		if resp.StatusCode != tc.status || id == "" || !strings.Contains(body, tc.shows) || !strings.Contains(body, "<strong>"+id+"</strong>") || !strings.Contains(body, `href="/login"`) {
			t.Errorf("GET %s: %d (request id %q)\n%s", tc.path, resp.StatusCode, id, body)
		}
		if !strings.Contains(h.logs.String(), id) {
			t.Errorf("GET %s: the logs do not carry request id %s", tc.path, id)
		}
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestQueryBudgetConsentPage: the consent page describes built-in scopes
// from its catalogues, without a query; custom scopes cost one read, for
// all of them together.
func TestQueryBudgetConsentPage(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		rec := &statements{}
		h := newHarnessWithStore(t, b, store.Options{OnStatement: rec.record, ClientCacheTTL: time.Minute})
		h.user("quinn", "quinn-password-1")
		h.adminJSON(http.MethodPut, "/admin/scopes/invoices:read", map[string]any{"description": "Read your invoices"})
		h.adminJSON(http.MethodPut, "/admin/scopes/invoices:write", map[string]any{"description": "Change your invoices"})
		const redirect = "https://books.example/cb"
		c := h.client(map[string]any{"client_name": "Books", "grant_types": []string{"authorization_code"}, "redirect_uris": []string{redirect},
			"scope": "openid email profile invoices:read invoices:write"})
		br := h.browser(redirect)
		signIn(t, br, "quinn", "quinn-password-1")
		measure := func(scopes ...string) (reads, writes int) {
			conf := oauth2.Config{ClientID: c.id, RedirectURL: redirect, Scopes: scopes, Endpoint: oauth2.Endpoint{AuthURL: h.public.URL + "/oauth2/authorize"}}
			resp, page := br.get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
			if !isConsentPage(resp, page) {
				t.Fatalf("no consent page: %d\n%s", resp.StatusCode, page)
			}
			rec.take()
			if resp, page = br.get(resp.Request.URL.String()); !isConsentPage(resp, page) {
				t.Fatalf("consent page again: %d", resp.StatusCode)
			}
			r, w, _ := count(rec.take())
			return r, w
		}
		r0, w0 := measure("openid", "email", "profile")
		r1, w1 := measure("openid", "invoices:read", "invoices:write")
		t.Logf("consent page: built-in scopes %d reads %d writes; custom %d reads %d writes", r0, w0, r1, w1)
		if r0 > 2 || w0 > 1 || r1 != r0+1 || w1 != w0 {
			t.Errorf("consent page over budget: built-in %d reads %d writes (max 2, 1); custom %d reads %d writes (want one read more)", r0, w0, r1, w1)
		}
	})
}
