package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// RFC 8252 §7.3 and §8.3: a loopback redirect matches on any port only for
// a public native app, and never with user information, a percent-encoded
// path or a port outside 1-65535. Every refusal is the error page, never a
// redirect.
func TestLoopbackRedirectRules(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("val", "val-password-1")
		native := nativeApp(h, map[string]any{"redirect_uris": []string{"http://127.0.0.1/cb", "http://[::1]/cb"}, "trusted": true})
		confidential := h.client(map[string]any{"client_name": "Confidential on loopback", "trusted": true,
			"grant_types": []string{"authorization_code"}, "redirect_uris": []string{"http://127.0.0.1:8400/cb"}, "scope": "openid"})
		web := nativeApp(h, map[string]any{"redirect_uris": []string{"http://127.0.0.1:5173/cb"}, "application_type": "web", "trusted": true})
		localhost := nativeApp(h, map[string]any{"redirect_uris": []string{"http://localhost:5173/cb"}, "trusted": true})

		refused := []struct {
			name, clientID, redirect string
		}{
			{"userinfo", native.id, "http://evil@127.0.0.1:53123/cb"},
			{"user and password", native.id, "http://evil:pw@127.0.0.1:53123/cb"},
			{"percent-encoded path", native.id, "http://127.0.0.1:53123/c%62"},
			{"encoded slash", native.id, "http://127.0.0.1:53123/cb%2F"},
			{"port 0", native.id, "http://127.0.0.1:0/cb"},
			{"port 65536", native.id, "http://127.0.0.1:65536/cb"},
			{"port 99999", native.id, "http://[::1]:99999/cb"},
			{"confidential client on another port", confidential.id, "http://127.0.0.1:8401/cb"},
			{"confidential client without a port", confidential.id, "http://127.0.0.1/cb"},
			{"web app on another port", web.id, "http://127.0.0.1:5174/cb"},
			{"localhost on another port", localhost.id, "http://localhost:5174/cb"},
		}
		for _, tc := range refused {
			t.Run("refused "+tc.name, func(t *testing.T) {
				conf := oauth2.Config{ClientID: tc.clientID, RedirectURL: tc.redirect, Scopes: []string{"openid"},
					Endpoint: oauth2.Endpoint{AuthURL: h.public.URL + "/oauth2/authorize"}}
				// A bad scope too: fosite would otherwise redirect its error
				// to whatever redirect URI it had accepted.
				u := conf.AuthCodeURL("state-rules", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())) + "&scope=nope"
				resp, page := h.browser("never").get(u)
				wantErrorPage(t, resp, page, tc.redirect)
			})
		}

		accepted := []struct {
			name     string
			app      testClient
			redirect string
		}{
			{"native on any port", native.testClient, "http://127.0.0.1:53123/cb"},
			{"native on ipv6", native.testClient, "http://[::1]:65535/cb"},
			{"confidential client on its port", confidential, "http://127.0.0.1:8400/cb"},
			{"web app on its port", web.testClient, "http://127.0.0.1:5173/cb"},
			{"localhost on its port", localhost.testClient, "http://localhost:5173/cb"},
		}
		for _, tc := range accepted {
			t.Run("accepted "+tc.name, func(t *testing.T) {
				conf := oauth2.Config{ClientID: tc.app.id, RedirectURL: tc.redirect, Scopes: []string{"openid"},
					Endpoint: oauth2.Endpoint{AuthURL: h.public.URL + "/oauth2/authorize"}}
				verifier := oauth2.GenerateVerifier()
				code := issueCode(t, h.browser(tc.redirect), conf, verifier, "val", "val-password-1")
				if resp, m := redeem(h, tc.app, code, tc.redirect, verifier); resp.StatusCode != http.StatusOK {
					t.Fatalf("exchange: %d %v", resp.StatusCode, m)
				}
			})
		}
	})
}

// Registration refuses what the authorization endpoint would refuse or
// could misread, stores nothing then, and warns about http://localhost.
func TestRedirectRegistrationRules(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		public := func(uris ...string) map[string]any {
			return map[string]any{"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code"}, "redirect_uris": uris}
		}
		_, before := h.adminList("/admin/clients")
		for _, tc := range []struct {
			name string
			md   map[string]any
			code string
		}{
			{"wildcard host", public("https://*.example.com/cb"), "invalid_redirect_uri"},
			{"wildcard path", public("https://app.example/*"), "invalid_redirect_uri"},
			{"wildcard port", public("http://127.0.0.1:*/cb"), "invalid_redirect_uri"},
			{"loopback userinfo", public("http://user@127.0.0.1/cb"), "invalid_redirect_uri"},
			{"loopback percent-encoded path", public("http://127.0.0.1/c%62"), "invalid_redirect_uri"},
			{"loopback port 0", public("http://127.0.0.1:0/cb"), "invalid_redirect_uri"},
			{"loopback port 65536", public("http://127.0.0.1:65536/cb"), "invalid_redirect_uri"},
			{"localhost port 0", public("http://localhost:0/cb"), "invalid_redirect_uri"},
			{"unknown application_type", func() map[string]any {
				md := public("https://app.example/cb")
				md["application_type"] = "desktop"
				return md
			}(), "invalid_client_metadata"},
			{"web app with a private-use scheme", func() map[string]any {
				md := public("com.example.app:/cb")
				md["application_type"] = "web"
				return md
			}(), "invalid_redirect_uri"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, m := h.adminJSON(http.MethodPost, "/admin/clients", tc.md)
				if resp.StatusCode != http.StatusBadRequest || m["error"] != tc.code {
					t.Fatalf("got %d %v, want 400 %s", resp.StatusCode, m, tc.code)
				}
			})
		}
		if _, after := h.adminList("/admin/clients"); len(after) != len(before) {
			t.Errorf("refused registrations were stored: %d clients, then %d", len(before), len(after))
		}

		for _, tc := range []struct {
			name, appType string
			md            map[string]any
			warns         bool
		}{
			{"loopback defaults to native", "native", public("http://127.0.0.1/cb"), false},
			{"private-use defaults to native", "native", public("com.example.app:/cb"), false},
			{"https defaults to web", "web", public("https://app.example/cb"), false},
			{"localhost is web, with a warning", "web", public("http://localhost:5173/callback", "http://127.0.0.1:5173/callback"), true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, m := h.adminJSON(http.MethodPost, "/admin/clients", tc.md)
				if resp.StatusCode != http.StatusCreated || m["application_type"] != tc.appType {
					t.Fatalf("got %d %v, want 201 application_type %s", resp.StatusCode, m, tc.appType)
				}
				warnings, _ := m["warnings"].([]any)
				if tc.warns != (len(warnings) > 0) || (tc.warns && !strings.Contains(warnings[0].(string), "RFC 8252")) {
					t.Errorf("warnings = %v", m["warnings"])
				}
				id := m["client_id"].(string)
				// Stored, and replaced by PUT.
				md := tc.md
				md["application_type"] = "native"
				if resp, m := h.adminJSON(http.MethodPut, "/admin/clients/"+id, md); resp.StatusCode != http.StatusOK || m["application_type"] != "native" {
					t.Fatalf("PUT: %d %v", resp.StatusCode, m)
				}
				if _, m := h.adminJSON(http.MethodGet, "/admin/clients/"+id, nil); m["application_type"] != "native" {
					t.Fatalf("GET after PUT: %v", m)
				}
			})
		}
	})
}
