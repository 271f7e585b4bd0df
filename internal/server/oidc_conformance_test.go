package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/oauth"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// Cases of the OpenID Foundation's certification modules that no other
// test names (docs/oidc.md, "Conformance map").

// TestOpenIDRedirectURIRequired (oidcc-ensure-redirect-uri-in-authorization-request):
// OpenID Connect makes redirect_uri required (Core §3.1.2.1) where OAuth
// 2.0 lets a client with one registered URI leave it out. Without it an
// OpenID request is refused on a page, never redirected; a plain OAuth
// request still works.
func TestOpenIDRedirectURIRequired(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("rui", "rui-password-1")
		app := h.rp()
		br := h.browser(rpRedirect)
		signIn(t, br, "rui", "rui-password-1")

		noRedirect := func(scope string) string {
			u, _ := url.Parse(oidcURL(app.conf, "scope", scope))
			q := u.Query()
			q.Del("redirect_uri")
			u.RawQuery = q.Encode()
			return u.String()
		}
		resp, _ := br.get(noRedirect("openid profile"))
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Fatalf("openid without redirect_uri: %d %q, want a 400 page", resp.StatusCode, resp.Header.Get("Location"))
		}
		resp, _ = br.get(noRedirect("offline_access"))
		wantCode(t, resp)
	})
}

// The RP-Initiated Logout modules not covered by TestEndSessionWithHint,
// TestEndSessionConfirms and TestEndSessionRefusals: a tampered hint
// (oidcc-rp-initiated-logout-modified-id-token-hint), a registered
// address with a query added (-query-added-to-post-logout-redirect-uri),
// a hint alone (-no-post-logout-redirect-uri: the signed-out page) and no
// state (-no-state: none added).
func TestEndSessionCertificationCases(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		eve := h.user("eve", "eve-password-1")
		app := h.oidcApp("a", nil)
		br := h.browser("https://")
		rt := signInTo(t, h, br, app, "eve", "eve-password-1")
		hint := h.idToken(eve, app.id, br.session().SID)

		parts := strings.Split(hint, ".")
		sig := []byte(parts[2])
		sig[len(sig)/2] ^= 1
		tampered := parts[0] + "." + parts[1] + "." + string(sig)
		for name, q := range map[string]url.Values{
			"tampered hint":     {"id_token_hint": {tampered}, "post_logout_redirect_uri": {"https://a.example/bye"}},
			"query added":       {"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://a.example/bye?x=1"}},
			"trailing slash":    {"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://a.example/bye/"}},
			"another host case": {"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://A.example/bye"}},
		} {
			resp, _ := br.get(h.public.URL + oauth.PathEndSession + "?" + q.Encode())
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
				t.Errorf("%s: %d %q, want a 400 page", name, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
		if !refreshes(h, app, rt) {
			t.Fatal("a refused end-session request ended the session")
		}

		// No state: the redirect carries none.
		resp, _ := br.get(h.public.URL + oauth.PathEndSession + "?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://a.example/bye"}}.Encode())
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "https://a.example/bye" {
			t.Fatalf("no state: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if refreshes(h, app, rt) {
			t.Fatal("the session's grant outlived the logout")
		}

		// A hint alone: the session ends and the signed-out page shows.
		rt = signInTo(t, h, br, app, "eve", "eve-password-1")
		hint = h.idToken(eve, app.id, br.session().SID)
		resp, page := br.get(h.public.URL + oauth.PathEndSession + "?" + url.Values{"id_token_hint": {hint}}.Encode())
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "signed out") {
			t.Fatalf("hint alone: %d\n%s", resp.StatusCode, page)
		}
		if refreshes(h, app, rt) {
			t.Fatal("the session's grant outlived the logout")
		}
		_, page = br.get(app.conf.AuthCodeURL("state-again", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if !strings.Contains(page, `name="password"`) {
			t.Error("still signed in after end_session")
		}
	})
}
