package server_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

// OpenID Connect Discovery 1.0: the document at openid-configuration is
// the RFC 8414 one, with the OpenID fields every library reads.
func TestOpenIDDiscovery(t *testing.T) {
	h := newHarness(t, storetest.Backends()[0])
	_, oidc := h.do(mustGet(h.public.URL + "/.well-known/openid-configuration"))
	resp, rfc8414 := h.do(mustGet(h.public.URL + "/.well-known/oauth-authorization-server"))
	if resp.StatusCode != http.StatusOK || oidc == nil {
		t.Fatalf("discovery: %d %v", resp.StatusCode, oidc)
	}
	iss := h.cfg.Issuer
	for field, want := range map[string]any{
		"issuer": iss, "authorization_endpoint": iss + "/oauth2/authorize", "token_endpoint": iss + "/oauth2/token",
		"jwks_uri": iss + "/.well-known/jwks.json", "userinfo_endpoint": iss + "/oauth2/userinfo",
		"end_session_endpoint":         iss + "/oauth2/logout",
		"backchannel_logout_supported": true, "backchannel_logout_session_supported": true,
		"frontchannel_logout_supported": false, "claims_parameter_supported": false,
		"request_parameter_supported": false,
		// Discovery §3: true when absent, so it must be present.
		"request_uri_parameter_supported": false,
	} {
		if oidc[field] != want {
			t.Errorf("%s = %v, want %v", field, oidc[field], want)
		}
	}
	lists := map[string][]string{
		"scopes_supported":                      {"openid", "profile", "email", "groups", "offline_access"},
		"subject_types_supported":               {"public"},
		"id_token_signing_alg_values_supported": {"RS256", "ES256", "EdDSA"},
		"response_types_supported":              {"code"},
		"prompt_values_supported":               {"none", "login", "consent", "select_account"},
		"claims_supported": {"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "amr",
			"name", "given_name", "family_name", "preferred_username", "picture", "locale", "updated_at",
			"email", "email_verified", "groups"},
		"grant_types_supported": {"authorization_code", "refresh_token"},
	}
	for field, want := range lists {
		got, _ := oidc[field].([]any)
		for _, w := range want {
			if !slices.Contains(got, any(w)) {
				t.Errorf("%s = %v lacks %s", field, got, w)
			}
		}
	}
	if _, ok := oidc["userinfo_signing_alg_values_supported"]; ok {
		t.Error("userinfo answers plain JSON only; no signing algs may be advertised")
	}
	// One document at both addresses.
	if len(oidc) != len(rfc8414) {
		t.Errorf("the two metadata documents differ: %d and %d fields", len(oidc), len(rfc8414))
	}
	for k, v := range oidc {
		if _, ok := rfc8414[k]; !ok {
			t.Errorf("%s (%v) missing from RFC 8414 metadata", k, v)
		}
	}
}

// A browser library reads the well-known documents cross-origin, and sees
// their errors as errors, not as CORS failures.
func TestWellKnownCORS(t *testing.T) {
	h := newHarness(t, storetest.Backends()[0])
	for _, tc := range []struct {
		method, path, preflight string
		status                  int
	}{
		{http.MethodGet, "/.well-known/openid-configuration", "", http.StatusOK},
		{http.MethodGet, "/.well-known/oauth-authorization-server", "", http.StatusOK},
		{http.MethodGet, "/.well-known/jwks.json", "", http.StatusOK},
		{http.MethodGet, "/.well-known/openid-configuration/", "", http.StatusNotFound},
		{http.MethodGet, "/.well-known/webfinger", "", http.StatusNotFound},
		{http.MethodPost, "/.well-known/openid-configuration", "", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/.well-known/jwks.json", "", http.StatusMethodNotAllowed},
		{http.MethodOptions, "/.well-known/openid-configuration", "GET", http.StatusNoContent},
		{http.MethodOptions, "/.well-known/jwks.json", "GET", http.StatusNoContent},
	} {
		req, _ := http.NewRequest(tc.method, h.public.URL+tc.path, nil)
		req.Header.Set("Origin", "https://spa.example")
		if tc.preflight != "" {
			req.Header.Set("Access-Control-Request-Method", tc.preflight)
			req.Header.Set("Access-Control-Request-Headers", "x-requested-with")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s %s: %d, Allow-Origin %q; want %d and *", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), tc.status)
		}
		if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("%s %s: credentials allowed cross-origin", tc.method, tc.path)
		}
		if tc.preflight != "" && (resp.Header.Get("Access-Control-Allow-Methods") != "GET" || resp.Header.Get("Access-Control-Allow-Headers") != "x-requested-with") {
			t.Errorf("preflight %s: %v", tc.path, resp.Header)
		}
	}
	// Not under /.well-known/: no wildcard.
	req, _ := http.NewRequest(http.MethodGet, h.public.URL+"/oauth2/authorize", nil)
	req.Header.Set("Origin", "https://spa.example")
	if resp, _ := h.do(req); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("authorize readable cross-origin: %v", resp.Header)
	}
}
