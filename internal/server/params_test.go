package server_test

import (
	"bytes"
	"encoding/base64"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// multipartBody encodes pairs (name, value, name, value…) as
// multipart/form-data, repeats included.
func multipartBody(t *testing.T, pairs ...string) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := mw.WriteField(pairs[i], pairs[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), buf.Bytes()
}

// The token, revocation and introspection endpoints take only
// application/x-www-form-urlencoded bodies, with no parameter repeated
// (RFC 6749 §3.2) and nothing in the query string. Before, a multipart body
// slipped past the repeat check: `-F scope=read -F scope=write` got a token.
func TestFormEndpointsAreStrict(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		svc := h.serviceClient("read write introspect")
		issued := h.token(svc, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})["access_token"].(string)
		tokensBefore := len(storetest.RawSignatures(t, h.store, "access_tokens"))
		form := "application/x-www-form-urlencoded"
		mpRepeat, mpRepeatBody := multipartBody(t, "grant_type", "client_credentials", "scope", "read", "scope", "write")
		mpOnce, mpOnceBody := multipartBody(t, "grant_type", "client_credentials", "scope", "read")
		mpRevoke, mpRevokeBody := multipartBody(t, "token", issued, "token", "other")
		mpIntro, mpIntroBody := multipartBody(t, "token", issued)

		cases := []struct {
			name, path, query, ctype, body string
		}{
			{"multipart with a repeated scope", "/oauth2/token", "", mpRepeat, string(mpRepeatBody)},
			{"multipart without repeats", "/oauth2/token", "", mpOnce, string(mpOnceBody)},
			{"JSON body", "/oauth2/token", "", "application/json", `{"grant_type":"client_credentials"}`},
			{"form body labelled text/plain", "/oauth2/token", "", "text/plain", "grant_type=client_credentials"},
			{"no content type", "/oauth2/token", "", "", "grant_type=client_credentials"},
			{"repeated scope", "/oauth2/token", "", form, "grant_type=client_credentials&scope=read&scope=write"},
			{"repeated grant_type", "/oauth2/token", "", form, "grant_type=client_credentials&grant_type=password"},
			{"repeated empty value", "/oauth2/token", "", form, "grant_type=client_credentials&scope=&scope=read"},
			{"scope in the query too", "/oauth2/token", "scope=write", form, "grant_type=client_credentials&scope=read"},
			{"only in the query", "/oauth2/token", "grant_type=client_credentials", form, ""},
			{"secret in the query", "/oauth2/token", "client_secret=" + url.QueryEscape(svc.secret), form, "grant_type=client_credentials"},
			{"revoke multipart", "/oauth2/revoke", "", mpRevoke, string(mpRevokeBody)},
			{"revoke repeated token", "/oauth2/revoke", "", form, "token=" + issued + "&token=other"},
			{"revoke query", "/oauth2/revoke", "token=" + issued, form, "token=other"},
			{"introspect multipart", "/oauth2/introspect", "", mpIntro, string(mpIntroBody)},
			{"introspect repeated token", "/oauth2/introspect", "", form, "token=" + issued + "&token=" + issued},
			{"introspect JSON", "/oauth2/introspect", "", "application/json", `{"token":"` + issued + `"}`},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				u := h.public.URL + c.path
				if c.query != "" {
					u += "?" + c.query
				}
				req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(c.body))
				if c.ctype != "" {
					req.Header.Set("Content-Type", c.ctype)
				}
				req.SetBasicAuth(svc.id, svc.secret)
				resp, m := h.do(req)
				wantError(t, resp, m, http.StatusBadRequest, "invalid_request")
			})
		}
		if n := len(storetest.RawSignatures(t, h.store, "access_tokens")); n != tokensBefore {
			t.Errorf("refused requests issued %d access tokens", n-tokensBefore)
		}
		if h.introspect(svc, issued)["active"] != true {
			t.Error("a refused revocation revoked the token")
		}

		// What stays allowed: a charset parameter, and RFC 8707 resource
		// indicators (and audience), which may repeat.
		req, _ := http.NewRequest(http.MethodPost, h.public.URL+"/oauth2/token", strings.NewReader(
			"grant_type=client_credentials&scope=read&resource=https%3A%2F%2Fapi.example&resource=https%3A%2F%2Fother.example"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
		req.SetBasicAuth(svc.id, svc.secret)
		if resp, m := h.do(req); resp.StatusCode != http.StatusOK {
			t.Fatalf("repeated resource: %d %v", resp.StatusCode, m)
		}
	})
}

// RFC 6749 §3.1: no authorization request parameter may repeat. A repeated
// client_id or redirect_uri cannot be trusted as a redirect target and gets
// the error page; any other repeat is redirected like other errors.
func TestAuthorizeRepeatedParameters(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("rita", "rita-password-1")
		app := h.spa("https://app.example/cb", true, "openid offline_access")
		other := h.spa("https://app.example/cb", true, "openid offline_access")
		verifier := oauth2.GenerateVerifier()
		base := func() url.Values {
			u, _ := url.Parse(app.conf.AuthCodeURL("state-repeat01", oauth2.S256ChallengeOption(verifier)))
			return u.Query()
		}
		authorize := func(q url.Values) (*http.Response, string) {
			// Signed in, so a request that passed would answer with a code.
			br := h.browser(app.conf.RedirectURL)
			_, page := br.get(h.public.URL + "/login")
			br.login(page, "rita", "rita-password-1")
			return br.get(h.public.URL + "/oauth2/authorize?" + q.Encode())
		}

		pageCases := map[string]func(url.Values){
			"client_id":         func(q url.Values) { q.Add("client_id", other.id) },
			"client_id twice":   func(q url.Values) { q.Add("client_id", app.id) },
			"redirect_uri":      func(q url.Values) { q.Add("redirect_uri", "https://evil.example/cb") },
			"redirect_uri same": func(q url.Values) { q.Add("redirect_uri", app.conf.RedirectURL) },
		}
		for name, mut := range pageCases {
			t.Run("page/"+name, func(t *testing.T) {
				q := base()
				mut(q)
				resp, page := authorize(q)
				if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(page, "not valid") {
					t.Fatalf("got %d Location=%q", resp.StatusCode, resp.Header.Get("Location"))
				}
			})
		}
		redirectCases := map[string]func(url.Values){
			"scope":         func(q url.Values) { q.Add("scope", "openid offline_access") },
			"response_type": func(q url.Values) { q.Add("response_type", "code") },
			"code_challenge": func(q url.Values) {
				q.Add("code_challenge", oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()))
			},
			"code_challenge_method": func(q url.Values) { q.Add("code_challenge_method", "plain") },
			"state":                 func(q url.Values) { q.Add("state", "state-other") },
			"empty nonce twice":     func(q url.Values) { q["nonce"] = []string{"", ""} },
		}
		for name, mut := range redirectCases {
			t.Run("redirect/"+name, func(t *testing.T) {
				q := base()
				mut(q)
				resp, _ := authorize(q)
				cb := callback(t, resp, app.conf.RedirectURL)
				if cb.Get("error") != "invalid_request" || cb.Get("code") != "" || cb.Get("state") != "state-repeat01" || cb.Get("iss") != h.cfg.Issuer {
					t.Fatalf("got %v, want error=invalid_request with state and iss", cb)
				}
			})
		}
		t.Run("no repeats", func(t *testing.T) {
			resp, _ := authorize(base())
			if cb := callback(t, resp, app.conf.RedirectURL); cb.Get("code") == "" {
				t.Fatalf("a clean request got %v", cb)
			}
		})
	})
}

// A Basic header that is not base64, has no colon, or is empty is a failed
// attempt at client authentication: 401 invalid_client with a Basic
// challenge (RFC 6749 §5.2), at every endpoint that authenticates clients.
// It used to fall through to the body and answer 400 invalid_request.
func TestMalformedBasicCredentials(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		svc := h.serviceClient("read")
		b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
		headers := map[string][]string{
			"not base64":        {"Basic !!!not-base64!!!"},
			"no colon":          {"Basic " + b64(svc.id+svc.secret)},
			"empty":             {"Basic "},
			"scheme only":       {"Basic"},
			"empty credentials": {"Basic " + b64(":")},
			"empty client_id":   {"Basic " + b64(":"+svc.secret)},
			"bad form encoding": {"Basic " + b64("%zz:"+svc.secret)},
			"another scheme":    {"Bearer " + svc.secret},
			"empty header":      {""},
			"two headers":       {"Basic " + b64(svc.id+":"+svc.secret), "Basic " + b64(svc.id+":"+svc.secret)},
		}
		bodies := map[string]url.Values{
			"/oauth2/token":      {"grant_type": {"client_credentials"}},
			"/oauth2/revoke":     {"token": {"some-token"}},
			"/oauth2/introspect": {"token": {"some-token"}},
		}
		for path, body := range bodies {
			for name, values := range headers {
				t.Run(path+"/"+name, func(t *testing.T) {
					req, _ := http.NewRequest(http.MethodPost, h.public.URL+path, strings.NewReader(body.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.Header["Authorization"] = values
					resp, m := h.do(req)
					wantError(t, resp, m, http.StatusUnauthorized, "invalid_client")
					if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
						t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
					}
				})
			}
		}
		// Well-formed credentials still work, form-encoded as RFC 6749
		// §2.3.1 asks.
		h.token(svc, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})
	})
}
