package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/admin"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/oauth"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// exchangeSetup is a person with a token from a first-party client and a
// backend ("gateway") registered for token exchange.
type exchangeSetup struct {
	h       *harness
	userID  string
	app     testClient // trusted password client: the subject tokens' client
	gateway testClient // registered for token exchange
	rs      testClient // introspects
}

const (
	audAPI    = "https://api.example"
	audOrders = "https://orders.example"
	audOther  = "https://other.example"
)

func newExchangeSetup(h *harness) exchangeSetup {
	return exchangeSetup{
		h:      h,
		userID: h.user("ida", "ida-password-1"),
		app: h.client(map[string]any{
			"grant_types": []string{"password", "refresh_token"}, "trusted": true,
			"scope": "read write admin openid offline_access", "audience": []string{audAPI, audOrders},
		}),
		gateway: exchangeClient(h, "read write admin.other", []string{audOrders, audOther}),
		rs:      h.serviceClient("introspect"),
	}
}

func exchangeClient(h *harness, scope string, audience []string) testClient {
	return h.client(map[string]any{
		"client_name": "gateway", "grant_types": []string{oauth.GrantTypeTokenExchange},
		"scope": scope, "audience": audience,
	})
}

// subject signs the person in at the app: scope read write offline_access,
// audience the app's registered one (api and orders).
func (s exchangeSetup) subject() map[string]any {
	return s.h.token(s.app, url.Values{"grant_type": {"password"}, "username": {"ida"}, "password": {"ida-password-1"},
		"scope": {"read write offline_access"}})
}

func exchangeForm(subject string, kv ...string) url.Values {
	v := url.Values{"grant_type": {oauth.GrantTypeTokenExchange}, "subject_token": {subject}, "subject_token_type": {oauth.TokenTypeAccessToken}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func TestTokenExchange(t *testing.T) {
	formats(t, func(t *testing.T, b storetest.Backend, format string) {
		h := newHarness(t, b, withFormat(format))
		s := newExchangeSetup(h)
		subject := s.subject()["access_token"].(string)

		resp, m := h.form("/oauth2/token", s.gateway.id, s.gateway.secret, exchangeForm(subject, "scope", "read", "audience", audOrders))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("exchange: %d %v", resp.StatusCode, m)
		}
		if m["issued_token_type"] != oauth.TokenTypeAccessToken || !strings.EqualFold(m["token_type"].(string), "bearer") || m["scope"] != "read" {
			t.Errorf("exchange answer: %v", m)
		}
		if _, ok := m["refresh_token"]; ok {
			t.Errorf("token exchange issued a refresh token: %v", m)
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control = %q", resp.Header.Get("Cache-Control"))
		}
		exchanged := m["access_token"].(string)
		in := h.introspect(s.rs, exchanged)
		act, _ := in["act"].(map[string]any)
		if in["active"] != true || in["sub"] != s.userID || in["client_id"] != s.gateway.id || in["scope"] != "read" ||
			act["sub"] != s.gateway.id || act["act"] != nil || in["username"] != "ida" {
			t.Errorf("introspection of the exchanged token: %v", in)
		}
		if aud, _ := in["aud"].([]any); len(aud) != 1 || aud[0] != audOrders {
			t.Errorf("aud = %v, want [%s]", in["aud"], audOrders)
		}
		if format == config.FormatJWT {
			_, claims := h.verifyJWT(t, exchanged, "at+jwt")
			if a, _ := claims["act"].(map[string]any); a["sub"] != s.gateway.id || claims["sub"] != s.userID || claims["client_id"] != s.gateway.id {
				t.Errorf("JWT claims: %v", claims)
			}
		}
		// The subject token is untouched.
		if in := h.introspect(s.rs, subject); in["active"] != true || in["act"] != nil {
			t.Errorf("subject token after the exchange: %v", in)
		}

		// Nothing asked: the subject's scope and audience the caller is
		// registered for (write and read; offline_access and api are not
		// the gateway's).
		m = h.token(s.gateway, exchangeForm(subject))
		in = h.introspect(s.rs, m["access_token"].(string))
		if got := strings.Fields(in["scope"].(string)); !slices.Equal(sortedCopy(got), []string{"read", "write"}) {
			t.Errorf("default scope = %v, want read write", got)
		}
		if aud, _ := in["aud"].([]any); len(aud) != 1 || aud[0] != audOrders {
			t.Errorf("default aud = %v, want [%s]", in["aud"], audOrders)
		}

		// A second hop: the exchanged token is itself a subject token, and
		// the new act nests the previous actor (RFC 8693 §4.1).
		next := exchangeClient(h, "read", []string{audOrders})
		m = h.token(next, exchangeForm(exchanged, "requested_token_type", oauth.TokenTypeAccessToken))
		in = h.introspect(s.rs, m["access_token"].(string))
		act, _ = in["act"].(map[string]any)
		inner, _ := act["act"].(map[string]any)
		if in["sub"] != s.userID || act["sub"] != next.id || inner["sub"] != s.gateway.id {
			t.Errorf("nested act: %v", in)
		}

		// The exchanged token never outlives the subject token.
		if exp, sexp := in["exp"].(float64), h.introspect(s.rs, subject)["exp"].(float64); exp > sexp {
			t.Errorf("exchanged token expires at %v, after the subject token (%v)", exp, sexp)
		}
	})
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// Every bad exchange gets its RFC 8693 §2.2.2 / RFC 6749 §5.2 error, never a
// 500.
func TestTokenExchangeErrors(t *testing.T) {
	formats(t, func(t *testing.T, b storetest.Backend, format string) {
		h := newHarness(t, b, withFormat(format))
		s := newExchangeSetup(h)
		sub := s.subject()
		subject, refresh := sub["access_token"].(string), sub["refresh_token"].(string)
		// A client credentials token of a client that may also exchange.
		both := h.client(map[string]any{"grant_types": []string{"client_credentials", oauth.GrantTypeTokenExchange},
			"scope": "read", "audience": []string{audOrders}})
		ccToken := h.token(both, url.Values{"grant_type": {"client_credentials"}})["access_token"].(string)
		gatewayCC := h.client(map[string]any{"grant_types": []string{"client_credentials"}, "scope": "read"})
		otherCC := h.token(gatewayCC, url.Values{"grant_type": {"client_credentials"}})["access_token"].(string)

		cases := []struct {
			name   string
			caller testClient
			form   url.Values
			status int
			code   string
		}{
			{"missing subject_token", s.gateway, url.Values{"grant_type": {oauth.GrantTypeTokenExchange}, "subject_token_type": {oauth.TokenTypeAccessToken}}, 400, "invalid_request"},
			{"missing subject_token_type", s.gateway, url.Values{"grant_type": {oauth.GrantTypeTokenExchange}, "subject_token": {subject}}, 400, "invalid_request"},
			{"id_token subject type", s.gateway, exchangeForm(subject, "subject_token_type", "urn:ietf:params:oauth:token-type:id_token"), 400, "invalid_request"},
			{"refresh_token subject type", s.gateway, exchangeForm(refresh, "subject_token_type", "urn:ietf:params:oauth:token-type:refresh_token"), 400, "invalid_request"},
			{"refresh token posing as an access token", s.gateway, exchangeForm(refresh), 400, "invalid_request"},
			{"requested refresh token", s.gateway, exchangeForm(subject, "requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token"), 400, "invalid_request"},
			{"requested jwt", s.gateway, exchangeForm(subject, "requested_token_type", "urn:ietf:params:oauth:token-type:jwt"), 400, "invalid_request"},
			{"garbage subject", s.gateway, exchangeForm("not-a-token"), 400, "invalid_request"},
			{"forged jwt subject", s.gateway, exchangeForm("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.x"), 400, "invalid_request"},
			{"client credentials subject", both, exchangeForm(ccToken), 400, "invalid_request"},
			{"scope wider than the subject's", s.gateway, exchangeForm(subject, "scope", "read admin.other"), 400, "invalid_scope"},
			{"scope the caller is not registered for", s.gateway, exchangeForm(subject, "scope", "admin"), 400, "invalid_scope"},
			{"audience outside the caller's registration", s.gateway, exchangeForm(subject, "audience", audAPI), 400, "invalid_target"},
			{"resource outside the caller's registration", s.gateway, exchangeForm(subject, "resource", audAPI), 400, "invalid_target"},
			{"audience outside the subject's", s.gateway, exchangeForm(subject, "audience", audOther), 400, "invalid_target"},
			{"caller not registered for the grant", gatewayCC, exchangeForm(subject), 400, "unauthorized_client"},
			{"subject token's own client, not registered", s.app, exchangeForm(subject), 400, "unauthorized_client"},
			{"actor_token without its type", s.gateway, exchangeForm(subject, "actor_token", subject), 400, "invalid_request"},
			{"actor_token_type without a token", s.gateway, exchangeForm(subject, "actor_token_type", oauth.TokenTypeAccessToken), 400, "invalid_request"},
			{"actor token of another client", s.gateway, exchangeForm(subject, "actor_token", otherCC, "actor_token_type", oauth.TokenTypeAccessToken), 400, "invalid_request"},
			{"garbage actor token", s.gateway, exchangeForm(subject, "actor_token", "nope", "actor_token_type", oauth.TokenTypeAccessToken), 400, "invalid_request"},
			// fosite answers a request without any client credentials so for
			// every grant; RFC 6749 §5.2 would also allow invalid_client.
			{"no client authentication", testClient{}, exchangeForm(subject), 400, "invalid_request"},
			{"wrong client secret", testClient{id: s.gateway.id, secret: "wrong"}, exchangeForm(subject), 401, "invalid_client"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				resp, m := h.form("/oauth2/token", tc.caller.id, tc.caller.secret, tc.form)
				wantError(t, resp, m, tc.status, tc.code)
			})
		}

		t.Run("actor token issued to the caller", func(t *testing.T) {
			actor := h.token(both, url.Values{"grant_type": {"client_credentials"}})["access_token"].(string)
			// both may exchange but is registered for read and orders only.
			m := h.token(both, exchangeForm(subject, "actor_token", actor, "actor_token_type", oauth.TokenTypeAccessToken))
			in := h.introspect(s.rs, m["access_token"].(string))
			if act, _ := in["act"].(map[string]any); act["sub"] != both.id || in["scope"] != "read" {
				t.Errorf("exchange with an actor token: %v", in)
			}
		})

		t.Run("revoked subject token", func(t *testing.T) {
			sub := s.subject()
			h.form("/oauth2/revoke", s.app.id, s.app.secret, url.Values{"token": {sub["access_token"].(string)}})
			resp, m := h.form("/oauth2/token", s.gateway.id, s.gateway.secret, exchangeForm(sub["access_token"].(string)))
			wantError(t, resp, m, 400, "invalid_request")
		})

		t.Run("expired subject token", func(t *testing.T) {
			sub := s.subject()["access_token"].(string)
			h.clock.advance(16 * time.Minute)
			resp, m := h.form("/oauth2/token", s.gateway.id, s.gateway.secret, exchangeForm(sub))
			wantError(t, resp, m, 400, "invalid_request")
		})
	})
}

// The exchanged token lives in the subject token's grant: whatever revokes
// that grant makes it inactive, in both access token formats.
func TestTokenExchangeRevocation(t *testing.T) {
	formats(t, func(t *testing.T, b storetest.Backend, format string) {
		h := newHarness(t, b, withFormat(format))
		s := newExchangeSetup(h)
		exchange := func(subject string) string {
			t.Helper()
			return h.token(s.gateway, exchangeForm(subject))["access_token"].(string)
		}
		wantInactive := func(what, token string) {
			t.Helper()
			if in := h.introspect(s.rs, token); in["active"] != false {
				t.Errorf("%s: still active: %v", what, in)
			}
		}

		t.Run("RFC 7009 on the grant's refresh token", func(t *testing.T) {
			sub := s.subject()
			exchanged := exchange(sub["access_token"].(string))
			resp, _ := h.form("/oauth2/revoke", s.app.id, s.app.secret, url.Values{"token": {sub["refresh_token"].(string)}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("revoke: %d", resp.StatusCode)
			}
			wantInactive("exchanged token after revoking the refresh token", exchanged)
		})

		t.Run("admin user revocation", func(t *testing.T) {
			exchanged := exchange(s.subject()["access_token"].(string))
			if resp, m := h.adminJSON(http.MethodPost, "/admin/users/"+s.userID+"/revoke-tokens", nil); resp.StatusCode/100 != 2 {
				t.Fatalf("revoke-tokens: %d %v", resp.StatusCode, m)
			}
			wantInactive("exchanged token after user revocation", exchanged)
			// JWTs are deny-listed by iat; the next second's tokens are new.
			h.clock.advance(2 * time.Second)
		})

		t.Run("logout", func(t *testing.T) {
			app := h.spa("https://app.example/cb", true, "read offline_access")
			// The gateway may act for tokens of the app's audience (none:
			// the issuer); it asks for nothing in particular.
			br := h.browser(app.conf.RedirectURL)
			verifier := oauth2.GenerateVerifier()
			resp, page := br.get(app.conf.AuthCodeURL("state-exch01", oauth2.S256ChallengeOption(verifier)))
			resp, _ = br.login(page, "ida", "ida-password-1")
			code := callback(t, resp, app.conf.RedirectURL).Get("code")
			tok, err := app.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatal(err)
			}
			exchanged := exchange(tok.AccessToken)
			if in := h.introspect(s.rs, exchanged); in["active"] != true {
				t.Fatalf("exchanged token before logout: %v", in)
			}
			resp, page = br.get(h.public.URL + "/logout")
			if resp, _ = br.post("/logout", url.Values{"csrf_token": {field(t, csrfRe, page)}}); resp.StatusCode != http.StatusOK {
				t.Fatalf("logout: %d", resp.StatusCode)
			}
			wantInactive("exchanged token after logout", exchanged)
		})

		t.Run("RFC 7009 on the exchanged token", func(t *testing.T) {
			// Revoking the exchanged token itself takes only that token:
			// the person stays signed in at the app.
			sub := s.subject()
			exchanged := exchange(sub["access_token"].(string))
			if resp, m := h.form("/oauth2/revoke", s.gateway.id, s.gateway.secret, url.Values{"token": {exchanged}}); resp.StatusCode != http.StatusOK {
				t.Fatalf("revoke exchanged: %d %v", resp.StatusCode, m)
			}
			wantInactive("exchanged token after its own revocation", exchanged)
			if in := h.introspect(s.rs, sub["access_token"].(string)); in["active"] != true {
				t.Errorf("revoking the exchanged token revoked the subject's grant: %v", in)
			}
			// The gateway cannot revoke the app's grant through it.
			if resp, m := h.form("/oauth2/revoke", s.gateway.id, s.gateway.secret, url.Values{"token": {sub["refresh_token"].(string)}}); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("gateway revoking the app's refresh token: %d %v", resp.StatusCode, m)
			}
		})
	})
}

// may_act (RFC 8693 §4.4) in the subject token names the only party that
// may act for its subject. Latchkey issues none itself; a token that carries
// one (planted here in an opaque token's stored session) is honoured.
func TestTokenExchangeMayAct(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, withFormat(config.FormatOpaque))
		s := newExchangeSetup(h)
		other := exchangeClient(h, "read", []string{audOrders})
		subject := s.subject()["access_token"].(string)
		n := execSQL(t, h.cfg.DatabaseURL, "UPDATE access_tokens SET session_data = REPLACE(session_data, '{\"sub\":', '{\"may_act\":{\"sub\":\""+s.gateway.id+"\"},\"sub\":') WHERE client_id = ?", s.app.id)
		if n != 1 {
			t.Fatalf("planted may_act in %d rows", n)
		}
		resp, m := h.form("/oauth2/token", other.id, other.secret, exchangeForm(subject))
		wantError(t, resp, m, http.StatusBadRequest, "invalid_request")
		h.token(s.gateway, exchangeForm(subject))
	})
}

// A DPoP proof at the exchange binds the new token (RFC 9449 §5).
func TestTokenExchangeDPoP(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := jwtHarness(t, b)
		s := newExchangeSetup(h)
		key, _ := dpopKey(t)
		subject := s.subject()["access_token"].(string)
		resp, m := h.tokenWithProofs(s.gateway, exchangeForm(subject), h.proof(key, "POST", "/oauth2/token", "", ""))
		if resp.StatusCode != http.StatusOK || m["token_type"] != "DPoP" {
			t.Fatalf("exchange with DPoP: %d %v", resp.StatusCode, m)
		}
		in := h.introspect(s.rs, m["access_token"].(string))
		if cnf, _ := in["cnf"].(map[string]any); in["token_type"] != "DPoP" || cnf["jkt"] == nil {
			t.Errorf("introspection of the bound exchanged token: %v", in)
		}
	})
}

// Registration: only confidential clients may use the grant, and metadata
// says it is supported.
func TestTokenExchangeRegistration(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		resp, m := h.adminJSON(http.MethodPost, "/admin/clients", map[string]any{
			"grant_types": []string{oauth.GrantTypeTokenExchange}, "token_endpoint_auth_method": "none",
		})
		wantError(t, resp, m, http.StatusBadRequest, "invalid_client_metadata")
		exchangeClient(h, "read", nil)

		_, md := h.do(mustRequest(t, http.MethodGet, h.public.URL+oauth.PathMetadata))
		grants, _ := md["grant_types_supported"].([]any)
		if !slices.Contains(grants, any(oauth.GrantTypeTokenExchange)) {
			t.Errorf("grant_types_supported = %v", grants)
		}
	})
}

func mustRequest(t *testing.T, method, u string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The admin package names the grant type without importing the OAuth
// layer; the two must agree.
func TestTokenExchangeGrantTypeAgrees(t *testing.T) {
	if admin.GrantTypeTokenExchange != oauth.GrantTypeTokenExchange {
		t.Fatalf("admin %q, oauth %q", admin.GrantTypeTokenExchange, oauth.GrantTypeTokenExchange)
	}
}

// Parallel exchanges of one subject token racing the revocation of its
// grant (real requests; on PostgreSQL, real concurrency): every exchange
// either fails with an RFC error or yields a token that is inactive once
// the revocation has returned.
func TestTokenExchangeRacesRevocation(t *testing.T) {
	formats(t, func(t *testing.T, b storetest.Backend, format string) {
		h := newHarness(t, b, withFormat(format))
		s := newExchangeSetup(h)
		sub := s.subject()
		const n = 12
		tokens := make([]string, n)
		codes := parallel(t, n+1, func(i int) (*http.Response, error) {
			if i == n {
				v := url.Values{"token": {sub["refresh_token"].(string)}}
				req, _ := http.NewRequest(http.MethodPost, h.public.URL+"/oauth2/revoke", strings.NewReader(v.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(s.app.id, s.app.secret)
				return http.DefaultClient.Do(req)
			}
			req, _ := http.NewRequest(http.MethodPost, h.public.URL+"/oauth2/token", strings.NewReader(exchangeForm(sub["access_token"].(string)).Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(s.gateway.id, s.gateway.secret)
			resp, err := http.DefaultClient.Do(req)
			if err == nil && resp.StatusCode == http.StatusOK {
				var m map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&m)
				tokens[i], _ = m["access_token"].(string)
			}
			return resp, err
		})
		for i, c := range codes {
			if c != http.StatusOK && c != http.StatusBadRequest {
				t.Errorf("request %d: status %d", i, c)
			}
		}
		for i, tok := range tokens {
			if tok == "" {
				continue
			}
			if in := h.introspect(s.rs, tok); in["active"] != false {
				t.Errorf("exchanged token %d outlived the revocation of its grant: %v", i, in)
			}
		}
	})
}
