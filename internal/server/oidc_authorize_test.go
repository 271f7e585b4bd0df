package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/server"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// The OpenID Connect authorization request (Core §3.1.2.1): prompt,
// max_age, id_token_hint, login_hint, nonce, the parameters Latchkey does
// not serve, unserved scopes, and POST.

const rpRedirect = "https://rp.example/cb"

// oidcURL is an authorization request of conf with PKCE, state
// "state-oidc" and the extra parameters kv (name, value, …).
func oidcURL(conf oauth2.Config, kv ...string) string {
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(oauth2.GenerateVerifier())}
	for i := 0; i+1 < len(kv); i += 2 {
		opts = append(opts, oauth2.SetAuthURLParam(kv[i], kv[i+1]))
	}
	return conf.AuthCodeURL("state-oidc", opts...)
}

var usernameRe = regexp.MustCompile(`name="username"[^>]*value="([^"]*)"`)

func isLoginPage(resp *http.Response, page string) bool {
	return resp.StatusCode == http.StatusOK && strings.Contains(page, `name="password"`)
}

// wantRedirectError checks an error redirect to the client with state and
// iss (RFC 9207).
func wantRedirectError(t *testing.T, h *harness, resp *http.Response, code string) {
	t.Helper()
	q := callback(t, resp, rpRedirect)
	if q.Get("error") != code || q.Get("state") != "state-oidc" || q.Get("iss") != h.cfg.Issuer || q.Get("code") != "" {
		t.Fatalf("want error=%s with state and iss, got %v", code, q)
	}
}

func wantCode(t *testing.T, resp *http.Response) string {
	t.Helper()
	q := callback(t, resp, rpRedirect)
	if q.Get("code") == "" {
		t.Fatalf("want a code, got %v", q)
	}
	return q.Get("code")
}

// signIDToken signs claims as an ID token with the server's current key,
// as the token endpoint will.
func (h *harness) signIDToken(claims map[string]any) string {
	h.t.Helper()
	ko := server.KeyOptions(h.cfg, slog.New(slog.DiscardHandler))
	ko.Now = h.now
	km, err := keys.New(context.Background(), h.store, h.cfg.SystemSecrets(), ko)
	if err != nil {
		h.t.Fatal(err)
	}
	k, err := km.Current()
	if err != nil {
		h.t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	tok, err := k.Sign(keys.TypIDToken, payload)
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

// idTokenFor is an ID token for sub issued to aud, valid for an hour.
func (h *harness) idTokenFor(sub, aud string) string {
	now := h.now()
	return h.signIDToken(map[string]any{"iss": h.cfg.Issuer, "sub": sub, "aud": aud,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "sid": "sid-1"})
}

// foreignIDToken is a well-formed ID token signed by a key not ours.
func foreignIDToken(t *testing.T, iss, sub, aud string) string {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k, KeyID: "foreign"}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(map[string]any{"iss": iss, "sub": sub, "aud": aud, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()})
	jws, _ := signer.Sign(payload)
	s, _ := jws.CompactSerialize()
	return s
}

// A trusted OpenID client: no consent page, so each test is about login.
func (h *harness) rp() spa {
	return h.spa(rpRedirect, true, "openid profile email groups offline_access")
}

func TestPromptValues(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("pia", "pia-password-1")
		app := h.rp()
		br := h.browser(rpRedirect)
		signIn(t, br, "pia", "pia-password-1")

		for _, bad := range []string{"bogus", "none login", "none consent", "login nonsense", "none select_account"} {
			resp, _ := br.get(oidcURL(app.conf, "prompt", bad))
			wantRedirectError(t, h, resp, "invalid_request")
		}
		// select_account: one account per browser, so choosing is signing
		// in (perhaps as someone else); the sign-in satisfies it once.
		resp, page := br.get(oidcURL(app.conf, "prompt", "select_account"))
		if !isLoginPage(resp, page) {
			t.Fatalf("prompt=select_account: %d", resp.StatusCode)
		}
		resp, _ = br.login(page, "pia", "pia-password-1")
		wantCode(t, resp)
		// login and consent together: a trusted client skips consent, the
		// login is asked once.
		resp, page = br.get(oidcURL(app.conf, "prompt", "login consent"))
		if !isLoginPage(resp, page) {
			t.Fatalf("prompt=login consent: %d", resp.StatusCode)
		}
		resp, _ = br.login(page, "pia", "pia-password-1")
		wantCode(t, resp)
	})
}

// max_age (Core §3.1.2.1): a sign-in older than max_age seconds asks for
// the password again, prompt=none then answers login_required, and the
// fresh sign-in satisfies it (no loop). Bad values are invalid_request.
func TestMaxAge(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("max", "max-password-1")
		app := h.rp()
		br := h.browser(rpRedirect)
		signIn(t, br, "max", "max-password-1")

		resp, _ := br.get(oidcURL(app.conf, "max_age", "3600"))
		wantCode(t, resp)
		resp, _ = br.get(oidcURL(app.conf, "max_age", "99999999999999999999999"))
		wantCode(t, resp)

		h.clock.advance(2 * time.Second)
		resp, _ = br.get(oidcURL(app.conf, "max_age", "1", "prompt", "none"))
		wantRedirectError(t, h, resp, "login_required")
		resp, page := br.get(oidcURL(app.conf, "max_age", "1"))
		if !isLoginPage(resp, page) {
			t.Fatalf("max_age=1 two seconds after sign-in: %d, want the login page", resp.StatusCode)
		}
		resp, _ = br.login(page, "max", "max-password-1")
		wantCode(t, resp)
		// The new sign-in counts from now.
		resp, _ = br.get(oidcURL(app.conf, "max_age", "60", "prompt", "none"))
		wantCode(t, resp)

		// max_age=0: always sign in again.
		resp, page = br.get(oidcURL(app.conf, "max_age", "0"))
		if !isLoginPage(resp, page) {
			t.Fatalf("max_age=0: %d, want the login page", resp.StatusCode)
		}
		resp, _ = br.login(page, "max", "max-password-1")
		wantCode(t, resp)

		for _, bad := range []string{"-1", "abc", "1.5", "", " 5", "+5", "0x10", "1e3"} {
			resp, _ := br.get(oidcURL(app.conf, "max_age", bad))
			wantRedirectError(t, h, resp, "invalid_request")
		}
	})
}

// A consent page left open longer than max_age does not send the person
// who has just signed in back to the login page.
func TestMaxAgeThroughConsent(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("con", "con-password-1")
		app := h.spa(rpRedirect, false, "openid profile")
		br := h.browser(rpRedirect)
		resp, page := br.get(oidcURL(app.conf, "max_age", "1"))
		resp, page = br.login(page, "con", "con-password-1")
		if !isConsentPage(resp, page) {
			t.Fatalf("want the consent page, got %d", resp.StatusCode)
		}
		h.clock.advance(5 * time.Second)
		resp, _ = br.consent(page, "allow")
		wantCode(t, resp)
	})
}

// id_token_hint (Core §3.1.2.1): only an ID token this server issued to
// this client is a hint; an expired one is accepted; with prompt=none a
// hint of someone other than the signed-in person is login_required; without
// it, the login page, where signing in as the hinted person succeeds and
// as anyone else is login_required.
func TestIDTokenHint(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, func(c *config.Config) { c.AccessTokenFormat = config.FormatJWT })
		ida := h.user("ida", "ida-password-1")
		jon := h.user("jon", "jon-password-1")
		app := h.rp()
		other := h.spa("https://other.example/cb", true, "openid")
		svc := h.serviceClient("read")
		accessJWT := h.token(svc, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})["access_token"].(string)
		now := h.now()

		// Signed out, prompt=none: login_required whatever the hint.
		resp, _ := h.browser(rpRedirect).get(oidcURL(app.conf, "prompt", "none", "id_token_hint", h.idTokenFor(ida, app.id)))
		wantRedirectError(t, h, resp, "login_required")

		br := h.browser(rpRedirect)
		signIn(t, br, "ida", "ida-password-1")

		bad := map[string]string{
			"garbage":            "not-a-jwt",
			"empty segments":     "..",
			"foreign key":        foreignIDToken(t, h.cfg.Issuer, ida, app.id),
			"access token":       accessJWT,
			"another client's":   h.idTokenFor(ida, other.id),
			"another issuer":     h.signIDToken(map[string]any{"iss": "https://evil.example", "sub": ida, "aud": app.id, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}),
			"no subject":         h.signIDToken(map[string]any{"iss": h.cfg.Issuer, "aud": app.id, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}),
			"tampered":           h.idTokenFor(ida, app.id) + "x",
			"audience elsewhere": h.signIDToken(map[string]any{"iss": h.cfg.Issuer, "sub": ida, "aud": []string{"x", "y"}, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}),
		}
		for name, hint := range bad {
			for _, prompt := range []string{"", "none"} {
				resp, _ := br.get(oidcURL(app.conf, "id_token_hint", hint, "prompt", prompt))
				if resp.StatusCode/100 != 3 {
					t.Fatalf("%s (prompt=%q): %d, want a redirect", name, prompt, resp.StatusCode)
				}
				wantRedirectError(t, h, resp, "invalid_request")
			}
		}

		// The signed-in person's hint: a code, expired or not, and with an
		// audience list that includes this client.
		expired := h.signIDToken(map[string]any{"iss": h.cfg.Issuer, "sub": ida, "aud": app.id,
			"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()})
		multi := h.signIDToken(map[string]any{"iss": h.cfg.Issuer, "sub": ida, "aud": []string{other.id, app.id},
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
		for _, hint := range []string{h.idTokenFor(ida, app.id), expired, multi} {
			resp, _ := br.get(oidcURL(app.conf, "prompt", "none", "id_token_hint", hint))
			wantCode(t, resp)
		}

		// Another person's hint with prompt=none: login_required.
		jonHint := h.idTokenFor(jon, app.id)
		resp, _ = br.get(oidcURL(app.conf, "prompt", "none", "id_token_hint", jonHint))
		wantRedirectError(t, h, resp, "login_required")

		// Without prompt=none: the login page; signing in as someone other
		// than the hinted person is login_required...
		resp, page := br.get(oidcURL(app.conf, "id_token_hint", jonHint))
		if !isLoginPage(resp, page) {
			t.Fatalf("hint of another user: %d, want the login page", resp.StatusCode)
		}
		resp, _ = br.login(page, "ida", "ida-password-1")
		wantRedirectError(t, h, resp, "login_required")
		// ...and as the hinted person, a code.
		resp, page = br.get(oidcURL(app.conf, "id_token_hint", jonHint))
		resp, _ = br.login(page, "jon", "jon-password-1")
		wantCode(t, resp)
	})
}

// login_hint prefills the username, escaped, only when sent by the
// authorization endpoint (signed), and not when absurdly long.
func TestLoginHint(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		app := h.rp()
		br := h.browser(rpRedirect)
		_, page := br.get(oidcURL(app.conf, "login_hint", "ana@example.com"))
		if !strings.Contains(page, `value="ana@example.com"`) {
			t.Fatalf("login_hint not prefilled:\n%s", page)
		}
		_, page = br.get(oidcURL(app.conf, "login_hint", `"><script>alert(1)</script>`))
		if strings.Contains(page, "<script>") || !strings.Contains(page, "&#34;&gt;&lt;script&gt;") {
			t.Fatalf("login_hint not escaped:\n%s", page)
		}
		for _, bad := range []string{strings.Repeat("a", 300), "a\nb"} {
			_, page = br.get(oidcURL(app.conf, "login_hint", bad))
			if m := usernameRe.FindStringSubmatch(page); m == nil || m[1] != "" {
				t.Fatalf("login_hint %.20q prefilled: %v", bad, m)
			}
		}
	})
}

// Parameters accepted and ignored, parameters refused with Core's errors,
// the nonce bound, and unserved standard scopes dropped rather than refused.
func TestOpenIDRequestParameters(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("otto", "otto-password-1")
		app := h.spa(rpRedirect, true, "openid email")
		rs := h.serviceClient("introspect")
		br := h.browser(rpRedirect)
		signIn(t, br, "otto", "otto-password-1")

		for _, kv := range [][]string{
			{"ui_locales", "de-CH fr"}, {"claims_locales", "en"}, {"acr_values", "urn:mace:incommon:iap:silver"},
			{"display", "popup"}, {"claims", `{"userinfo":{"email":{"essential":true}}}`},
			{"nonce", strings.Repeat("n", 512)}, {"response_mode", "query"},
		} {
			resp, _ := br.get(oidcURL(app.conf, kv...))
			if q := callback(t, resp, rpRedirect); q.Get("code") == "" {
				t.Fatalf("%s: %v", kv[0], q)
			}
		}
		for _, c := range []struct{ name, value, code string }{
			{"request", "eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9.", "request_not_supported"},
			{"request_uri", "https://rp.example/request.jwt", "request_uri_not_supported"},
			{"registration", `{"logo_uri":"https://rp.example/logo.png"}`, "registration_not_supported"},
			{"nonce", strings.Repeat("n", 513), "invalid_request"},
		} {
			for _, prompt := range []string{"", "none"} {
				resp, _ := br.get(oidcURL(app.conf, c.name, c.value, "prompt", prompt))
				wantRedirectError(t, h, resp, c.code)
			}
		}
		// A refused parameter on a request whose redirect cannot be
		// trusted is the error page, as always.
		bad := oidcURL(app.conf, "request_uri", "https://rp.example/r")
		bad = strings.Replace(bad, url.QueryEscape(rpRedirect), url.QueryEscape("https://evil.example/cb"), 1)
		if resp, _ := br.get(bad); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("request_uri with an unregistered redirect: %d, want the error page", resp.StatusCode)
		}

		// address and phone are not refused, and not granted.
		conf := app.conf
		conf.Scopes = []string{"openid", "email", "address", "phone"}
		verifier := oauth2.GenerateVerifier()
		resp, _ := br.get(conf.AuthCodeURL("state-oidc", oauth2.S256ChallengeOption(verifier)))
		tok, err := conf.Exchange(context.Background(), wantCode(t, resp), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		if in := h.introspect(rs, tok.AccessToken); in["scope"] != "openid email" {
			t.Fatalf("granted scope %v, want openid email", in["scope"])
		}
		// Any other unregistered scope is still refused.
		conf.Scopes = []string{"openid", "profile"}
		resp, _ = br.get(conf.AuthCodeURL("state-oidc", oauth2.S256ChallengeOption(verifier)))
		wantRedirectError(t, h, resp, "invalid_scope")
	})
}

// POST /oauth2/authorize (Core §3.1.2.1): the same request as a GET, to a
// code; only a form body, nothing in the query; a repeated parameter
// refused as in a GET; and single sign-on works for it.
func TestAuthorizePOST(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("pam", "pam-password-1")
		app := h.spa(rpRedirect, false, "openid profile")
		br := h.browser(rpRedirect)
		verifier := oauth2.GenerateVerifier()
		u, _ := url.Parse(app.conf.AuthCodeURL("state-oidc", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", "n-1")))
		params := u.Query()

		resp, page := br.post("/oauth2/authorize", params)
		if !isLoginPage(resp, page) {
			t.Fatalf("POST authorize: %d, want the login page", resp.StatusCode)
		}
		resp, page = br.login(page, "pam", "pam-password-1")
		if !isConsentPage(resp, page) {
			t.Fatalf("after sign-in: %d, want the consent page", resp.StatusCode)
		}
		resp, _ = br.consent(page, "allow")
		tok, err := app.conf.Exchange(context.Background(), wantCode(t, resp), oauth2.VerifierOption(verifier))
		if err != nil || tok.AccessToken == "" {
			t.Fatalf("exchange: %v", err)
		}

		// Signed in: a POSTed prompt=none request gets a code straight away.
		silent := u.Query()
		silent.Set("prompt", "none")
		resp, _ = br.post("/oauth2/authorize", silent)
		wantCode(t, resp)

		// The POST itself answers 303 to the GET, uncached.
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		raw, err := noFollow.Do(postReq(h.public.URL+"/oauth2/authorize", "application/x-www-form-urlencoded", params.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		raw.Body.Close()
		if loc := raw.Header.Get("Location"); raw.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/oauth2/authorize?") ||
			raw.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("POST answered %d %q", raw.StatusCode, loc)
		} else if got, _ := url.Parse(loc); got.Query().Encode() != params.Encode() {
			t.Fatalf("POST became %q, want the same parameters", loc)
		}

		repeated := u.Query()
		repeated.Add("scope", "openid")
		resp, _ = br.post("/oauth2/authorize", repeated)
		wantRedirectError(t, h, resp, "invalid_request")

		mp, mpBody := multipartBody(t, "client_id", app.id, "response_type", "code")
		for name, req := range map[string]*http.Request{
			"query string":   postReq(h.public.URL+"/oauth2/authorize?state=x", "application/x-www-form-urlencoded", params.Encode()),
			"multipart":      postReq(h.public.URL+"/oauth2/authorize", mp, string(mpBody)),
			"JSON":           postReq(h.public.URL+"/oauth2/authorize", "application/json", `{"client_id":"x"}`),
			"no type":        postReq(h.public.URL+"/oauth2/authorize", "", params.Encode()),
			"bad form":       postReq(h.public.URL+"/oauth2/authorize", "application/x-www-form-urlencoded", "a=%zz"),
			"semicolon form": postReq(h.public.URL+"/oauth2/authorize", "application/x-www-form-urlencoded", "a=1;b=2"),
			"huge":           postReq(h.public.URL+"/oauth2/authorize", "application/x-www-form-urlencoded", params.Encode()+"&ui_locales="+strings.Repeat("x", 20<<10)),
		} {
			resp, err := br.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
				t.Errorf("%s: %d %q, want the 400 error page", name, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
	})
}

func postReq(u, ctype, body string) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	return req
}

// Hostile values in every OpenID parameter, signed in or not, are answered
// by a redirect to the client (an error or a code), the login page, or a
// 4xx: never a 5xx.
func TestHostileOpenIDParameters(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("hal", "hal-password-1")
		app := h.rp()
		signedIn := h.browser(rpRedirect)
		signIn(t, signedIn, "hal", "hal-password-1")
		params := []string{"prompt", "max_age", "id_token_hint", "login_hint", "nonce", "ui_locales", "claims_locales",
			"acr_values", "display", "claims", "request", "request_uri", "registration", "response_mode", "scope"}
		for name, v := range hostileValues {
			if name == "huge" {
				v = strings.Repeat("A", 10_000)
			}
			for _, p := range params {
				for _, br := range []*browser{signedIn, h.browser(rpRedirect)} {
					resp, _ := br.get(oidcURL(app.conf, p, v))
					if resp.StatusCode >= 500 {
						t.Fatalf("%s=%s: %d", p, name, resp.StatusCode)
					}
					if resp.StatusCode/100 == 3 && !strings.HasPrefix(resp.Header.Get("Location"), rpRedirect) {
						t.Fatalf("%s=%s: redirect to %q", p, name, resp.Header.Get("Location"))
					}
				}
			}
		}
	})
}
