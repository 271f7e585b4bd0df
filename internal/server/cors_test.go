package server_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/oauth"
	"github.com/latchkey/latchkey/internal/server"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// corsPreflight sends a browser's preflight for a POST with a DPoP header.
func corsPreflight(t *testing.T, base, path, origin string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodOptions, base+path, nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "dpop")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// corsPost posts a form from origin, with Basic auth when user is set.
func corsPost(t *testing.T, base, path, origin, user, pass string, v url.Values) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", origin)
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func allowOrigin(resp *http.Response) string { return resp.Header.Get("Access-Control-Allow-Origin") }

// Issue 18: a client's allowed_cors_origins (or, when it registered none,
// the origins of its redirect URIs) may call the token, revocation, PAR and
// device authorization endpoints as that client, and only as that client.
func TestCORSPerClient(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		base := h.public.URL
		spa := h.client(map[string]any{"client_name": "spa", "token_endpoint_auth_method": "none",
			"grant_types":   []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"},
			"redirect_uris": []string{"https://spa.example/cb"}, "allowed_cors_origins": []string{"https://SPA.example:443/", "http://localhost:5173"}})
		derived := h.client(map[string]any{"client_name": "derived", "token_endpoint_auth_method": "none", "application_type": "native",
			"redirect_uris": []string{"https://derived.example/app/cb", "com.example.derived:/cb"}})
		svc := h.client(map[string]any{"client_name": "svc", "grant_types": []string{"client_credentials"},
			"allowed_cors_origins": []string{"https://svc.example"}})

		// A preflight names no client: any origin some client allows passes,
		// and only those.
		for _, path := range []string{oauth.PathToken, oauth.PathRevoke, oauth.PathPAR, oauth.PathDeviceAuthorization} {
			for _, origin := range []string{"https://spa.example", "http://localhost:5173", "https://derived.example", "https://svc.example"} {
				resp := corsPreflight(t, base, path, origin)
				if resp.StatusCode != http.StatusNoContent || allowOrigin(resp) != origin || resp.Header.Get("Access-Control-Allow-Credentials") != "" ||
					!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "DPoP") || !strings.Contains(resp.Header.Get("Vary"), "Origin") {
					t.Errorf("preflight to %s from %s: %d %v", path, origin, resp.StatusCode, resp.Header)
				}
			}
			for _, origin := range []string{"https://evil.example", "com.example.derived://", "null", "https://spa.example:8443", "http://spa.example"} {
				if resp := corsPreflight(t, base, path, origin); allowOrigin(resp) != "" {
					t.Errorf("preflight to %s from %s, which no client allows, was allowed", path, origin)
				}
			}
		}

		bogusCode := url.Values{"grant_type": {"authorization_code"}, "code": {"nope"}, "redirect_uri": {"https://spa.example/cb"}, "code_verifier": {strings.Repeat("v", 43)}}
		as := func(id string) url.Values {
			v := url.Values{}
			for k, vs := range bogusCode {
				v[k] = vs
			}
			v.Set("client_id", id)
			return v
		}
		for _, tc := range []struct {
			name, path, origin, user, pass string
			form                           url.Values
			allowed                        bool
		}{
			{"the client's own origin reads its token error", oauth.PathToken, "https://spa.example", "", "", as(spa.id), true},
			{"its second origin", oauth.PathToken, "http://localhost:5173", "", "", as(spa.id), true},
			{"revocation", oauth.PathRevoke, "https://spa.example", "", "", url.Values{"client_id": {spa.id}, "token": {"x"}}, true},
			{"device authorization", oauth.PathDeviceAuthorization, "https://spa.example", "", "", url.Values{"client_id": {spa.id}}, true},
			{"PAR", oauth.PathPAR, "https://spa.example", "", "", url.Values{"client_id": {spa.id}, "response_type": {"code"}}, true},
			{"another client's origin with this client's id", oauth.PathToken, "https://derived.example", "", "", as(spa.id), false},
			{"derived from the redirect URIs", oauth.PathToken, "https://derived.example", "", "", as(derived.id), true},
			{"a derived client is not the explicit one's", oauth.PathToken, "https://spa.example", "", "", as(derived.id), false},
			{"Basic auth names the client", oauth.PathToken, "https://svc.example", svc.id, svc.secret, url.Values{"grant_type": {"client_credentials"}}, true},
			{"Basic auth wins over a client_id in the body", oauth.PathToken, "https://spa.example", svc.id, svc.secret, url.Values{"grant_type": {"client_credentials"}, "client_id": {spa.id}}, false},
			{"an unknown client", oauth.PathToken, "https://spa.example", "", "", as("nobody"), false},
			{"no client named", oauth.PathToken, "https://spa.example", "", "", bogusCode, false},
			{"an origin no one allows", oauth.PathToken, "https://evil.example", "", "", as(spa.id), false},
		} {
			resp := corsPost(t, base, tc.path, tc.origin, tc.user, tc.pass, tc.form)
			if got := allowOrigin(resp) == tc.origin; got != tc.allowed || (allowOrigin(resp) != "" && allowOrigin(resp) != tc.origin) {
				t.Errorf("%s: %s from %s answered %d with Access-Control-Allow-Origin %q; want allowed=%v", tc.name, tc.path, tc.origin, resp.StatusCode, allowOrigin(resp), tc.allowed)
			}
			if !strings.Contains(resp.Header.Get("Vary"), "Origin") {
				t.Errorf("%s: no Vary: Origin", tc.name)
			}
		}
		// The real token call succeeds, readable from the client's origin.
		if resp := corsPost(t, base, oauth.PathToken, "https://svc.example", svc.id, svc.secret, url.Values{"grant_type": {"client_credentials"}}); resp.StatusCode != http.StatusOK || allowOrigin(resp) != "https://svc.example" {
			t.Errorf("client_credentials from the client's origin: %d, Allow-Origin %q", resp.StatusCode, allowOrigin(resp))
		}

		// [] registers none: the redirect URIs no longer speak for it.
		resp, m := h.adminJSON(http.MethodPut, "/admin/clients/"+derived.id, map[string]any{"token_endpoint_auth_method": "none", "application_type": "native",
			"redirect_uris": []string{"https://derived.example/app/cb"}, "allowed_cors_origins": []string{}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT with no origins: %d %v", resp.StatusCode, m)
		}
		if resp := corsPost(t, base, oauth.PathToken, "https://derived.example", "", "", as(derived.id)); allowOrigin(resp) != "" {
			t.Error("an update to allowed_cors_origins [] left the derived origin allowed")
		}
		if resp := corsPreflight(t, base, oauth.PathToken, "https://derived.example"); allowOrigin(resp) != "" {
			t.Error("a preflight from an origin no client allows any more was allowed")
		}
	})
}

// LATCHKEY_CORS_ORIGINS keeps working for every client, as before issue 18.
func TestCORSProcessWideList(t *testing.T) {
	h := newHarness(t, storetest.Backends()[0], func(c *config.Config) { c.CORSOrigins = "https://app.example" })
	c := h.client(map[string]any{"client_name": "spa", "token_endpoint_auth_method": "none", "redirect_uris": []string{"https://spa.example/cb"}})
	if resp := corsPost(t, h.public.URL, oauth.PathToken, "https://app.example", "", "", url.Values{"client_id": {c.id}, "grant_type": {"authorization_code"}, "code": {"x"}}); allowOrigin(resp) != "https://app.example" {
		t.Errorf("the process-wide origin may not call the token endpoint for a client: %q", allowOrigin(resp))
	}
}

// Issue 18: a client's origins change on a second instance sharing the
// database without a restart: on PostgreSQL the change is announced
// (LISTEN/NOTIFY drops the cached client and origin set), on SQLite the
// short cache lifetime passes.
func TestCORSClientUpdateAcrossInstances(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		spa := h.client(map[string]any{"client_name": "spa", "token_endpoint_auth_method": "none",
			"redirect_uris": []string{"https://spa.example/cb"}, "allowed_cors_origins": []string{"https://old.example"}})

		// The second instance counts its client reads, to know when it
		// serves them from its cache, and its cache lifetime passes when
		// the test says.
		var clientReads atomic.Int64
		var mu sync.Mutex
		var offset time.Duration
		st := storetest.Open(t, h.cfg.DatabaseURL, store.Options{
			Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(offset) },
			OnStatement: func(_ context.Context, sql string) {
				if strings.Contains(sql, `"clients"`) {
					clientReads.Add(1)
				}
			},
		})
		cfg := *h.cfg
		srv, err := server.New(context.Background(), &cfg, st, slog.New(slog.DiscardHandler), server.WithBackground())
		if err != nil {
			t.Fatal(err)
		}
		other := httptest.NewServer(srv.PublicHandler())
		t.Cleanup(other.Close)

		call := func(base, origin string) string {
			return allowOrigin(corsPost(t, base, oauth.PathToken, origin, "", "", url.Values{"client_id": {spa.id}, "grant_type": {"authorization_code"}, "code": {"x"}}))
		}
		preflight := func(base, origin string) string { return allowOrigin(corsPreflight(t, base, oauth.PathToken, origin)) }
		waitFor := func(what string, ok func() bool) {
			t.Helper()
			deadline := time.Now().Add(5 * time.Second)
			for !ok() {
				if time.Now().After(deadline) {
					t.Fatalf("the second instance: %s", what)
				}
				time.Sleep(20 * time.Millisecond) // polling for LISTEN/NOTIFY
			}
		}
		// Warm the second instance until it answers from its cache (on
		// PostgreSQL the cache turns on once its listener hears).
		waitFor("never answered from its cache", func() bool {
			if call(other.URL, "https://old.example") != "https://old.example" || preflight(other.URL, "https://old.example") != "https://old.example" {
				t.Fatal("the second instance does not allow the client's origin")
			}
			before := clientReads.Load()
			call(other.URL, "https://old.example")
			preflight(other.URL, "https://old.example")
			return clientReads.Load() == before
		})

		resp, m := h.adminJSON(http.MethodPut, "/admin/clients/"+spa.id, map[string]any{"token_endpoint_auth_method": "none",
			"redirect_uris": []string{"https://spa.example/cb"}, "allowed_cors_origins": []string{"https://new.example"}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT: %d %v", resp.StatusCode, m)
		}
		if b.Name == "sqlite" {
			mu.Lock()
			offset += 2 * time.Second // the SQLite cache lifetime is 1s
			mu.Unlock()
		}
		waitFor("the update did not take effect", func() bool {
			return call(other.URL, "https://new.example") == "https://new.example" && call(other.URL, "https://old.example") == "" &&
				preflight(other.URL, "https://new.example") == "https://new.example" && preflight(other.URL, "https://old.example") == ""
		})

		// A client registered on the first instance: its origin passes the
		// second's preflight, whose cached origin set the creation dropped.
		if preflight(other.URL, "https://fresh.example") != "" {
			t.Fatal("an origin no client allows passed the preflight")
		}
		h.client(map[string]any{"client_name": "fresh", "token_endpoint_auth_method": "none", "redirect_uris": []string{"https://fresh.example/cb"}})
		if b.Name == "sqlite" {
			mu.Lock()
			offset += 2 * time.Second
			mu.Unlock()
		}
		waitFor("a new client's origin did not pass the preflight", func() bool { return preflight(other.URL, "https://fresh.example") == "https://fresh.example" })
	})
}
