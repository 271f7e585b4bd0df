package server_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/oauth"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// The device authorization grant (RFC 8628, issue 16), end to end through
// the HTML pages.

func (h *harness) deviceClient(public bool, scope string) testClient {
	md := map[string]any{"client_name": "Living Room TV", "grant_types": []string{oauth.GrantTypeDeviceCode, "refresh_token"}, "scope": scope}
	if public {
		md["token_endpoint_auth_method"] = "none"
	}
	return h.client(md)
}

// deviceForm posts to a public endpoint as c: Basic auth for a
// confidential client, client_id in the body for a public one.
func (h *harness) deviceForm(path string, c testClient, v url.Values) (*http.Response, map[string]any) {
	h.t.Helper()
	if c.secret == "" {
		v.Set("client_id", c.id)
	}
	return h.form(path, c.id, c.secret, v)
}

func (h *harness) startDevice(c testClient, scope string) map[string]any {
	h.t.Helper()
	resp, m := h.deviceForm(oauth.PathDeviceAuthorization, c, url.Values{"scope": {scope}})
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("device authorization: %d %v", resp.StatusCode, m)
	}
	return m
}

func (h *harness) pollDevice(c testClient, deviceCode string) (*http.Response, map[string]any) {
	h.t.Helper()
	return h.deviceForm(oauth.PathToken, c, url.Values{"grant_type": {oauth.GrantTypeDeviceCode}, "device_code": {deviceCode}})
}

var userCodeRe = regexp.MustCompile(`name="user_code"`)

// enterCode signs br in if asked to, then types code into the device page
// and returns the page that follows (the consent page, for a good code).
func (b *browser) enterCode(code, user, pass string) (*http.Response, string) {
	b.t.Helper()
	resp, page := b.get(b.h.public.URL + oauth.PathDevice)
	if strings.Contains(page, `name="password"`) {
		resp, page = b.login(page, user, pass)
	}
	if resp.StatusCode != http.StatusOK || !userCodeRe.MatchString(page) || !strings.Contains(page, `type="submit"`) {
		b.t.Fatalf("device page: %d\n%s", resp.StatusCode, page)
	}
	return b.post(oauth.PathDevice, url.Values{"csrf_token": {field(b.t, csrfRe, page)}, "user_code": {code}})
}

// approve types code and answers the consent page.
func (b *browser) approve(code, user, pass, answer string) string {
	b.t.Helper()
	resp, page := b.enterCode(code, user, pass)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `value="allow"`) {
		b.t.Fatalf("consent page: %d\n%s", resp.StatusCode, page)
	}
	resp, page = b.consent(page, answer)
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("after consent: %d\n%s", resp.StatusCode, page)
	}
	return page
}

func TestDeviceFlow(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		userID := h.user("tess", "tess-password-1")
		tv := h.deviceClient(true, "openid profile offline_access")
		rs := h.serviceClient("introspect")

		_, md := h.do(mustRequest(t, http.MethodGet, h.public.URL+oauth.PathOpenIDConfiguration))
		if md["device_authorization_endpoint"] != h.cfg.IssuerURL(oauth.PathDeviceAuthorization) ||
			!strings.Contains(strings.Join(anyStrings(md["grant_types_supported"]), " "), oauth.GrantTypeDeviceCode) {
			t.Fatalf("metadata: %v %v", md["device_authorization_endpoint"], md["grant_types_supported"])
		}

		m := h.startDevice(tv, "openid profile offline_access")
		userCode, _ := m["user_code"].(string)
		if !regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`).MatchString(userCode) {
			t.Fatalf("user_code %q", userCode)
		}
		if m["verification_uri"] != h.cfg.IssuerURL("/device") || m["verification_uri_complete"] != h.cfg.IssuerURL("/device")+"?user_code="+userCode ||
			m["expires_in"] != float64(600) || m["interval"] != float64(5) || len(m["device_code"].(string)) < 43 {
			t.Fatalf("device authorization answer: %v", m)
		}
		deviceCode := m["device_code"].(string)
		for _, col := range []string{"signature", "user_code"} {
			for _, v := range storetest.RawColumn(t, h.store, "device_codes", col) {
				if v == deviceCode || strings.Contains(v, strings.ReplaceAll(userCode, "-", "")) {
					t.Fatalf("device_codes.%s stores a code itself", col)
				}
			}
		}

		resp, body := h.pollDevice(tv, deviceCode)
		wantError(t, resp, body, http.StatusBadRequest, "authorization_pending")

		// Typed in lower case with spaces instead of the dash.
		br := h.browser(h.public.URL + "/nowhere")
		typed := strings.ToLower(userCode[:4]) + " " + strings.ToLower(userCode[5:])
		resp, page := br.enterCode(typed, "tess", "tess-password-1")
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Living Room TV") || !strings.Contains(page, "offline_access") {
			t.Fatalf("consent page: %d\n%s", resp.StatusCode, page)
		}
		if resp, page = br.consent(page, "allow"); resp.StatusCode != http.StatusOK || !strings.Contains(page, "Device connected") {
			t.Fatalf("after allow: %d\n%s", resp.StatusCode, page)
		}

		h.clock.advance(6 * time.Second)
		resp, tok := h.pollDevice(tv, deviceCode)
		if resp.StatusCode != http.StatusOK || tok["refresh_token"] == nil || tok["scope"] != "openid profile offline_access" {
			t.Fatalf("token: %d %v", resp.StatusCode, tok)
		}
		claims := h.verifyIDToken(t, tok["id_token"].(string), tv.id)
		ls := br.session()
		if claims["sub"] != userID || claims["sid"] != ls.SID || claims["auth_time"] != float64(ls.AuthTime.Unix()) ||
			claims["preferred_username"] != "tess" || anyStrings(claims["amr"])[0] != "pwd" || claims["nonce"] != nil {
			t.Errorf("id_token claims: %v", claims)
		}
		if in := h.introspect(rs, tok["access_token"].(string)); in["active"] != true || in["sub"] != userID || in["client_id"] != tv.id {
			t.Errorf("introspection: %v", in)
		}

		// Single use: the code redeems once, the user code works once.
		resp, body = h.pollDevice(tv, deviceCode)
		wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
		resp, page = br.enterCode(userCode, "", "")
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "not valid") {
			t.Fatalf("a used user code: %d\n%s", resp.StatusCode, page)
		}

		// The refresh token works as in the code flow.
		resp, body = h.deviceForm(oauth.PathToken, tv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
		if resp.StatusCode != http.StatusOK || body["id_token"] == nil {
			t.Fatalf("refresh: %d %v", resp.StatusCode, body)
		}
	})
}

// A confidential client, and verification_uri_complete: the link carries
// the code, nothing is typed. The sign-in comes first and returns to it.
func TestDeviceFlowConfidentialClientWithCompleteURI(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("uma", "uma-password-1")
		box := h.deviceClient(false, "read")
		m := h.startDevice(box, "read")
		br := h.browser(h.public.URL + "/nowhere")
		resp, page := br.get(m["verification_uri_complete"].(string))
		if !strings.Contains(page, `name="password"`) {
			t.Fatalf("not asked to sign in: %d\n%s", resp.StatusCode, page)
		}
		resp, page = br.login(page, "uma", "uma-password-1")
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, `value="allow"`) {
			t.Fatalf("consent page: %d\n%s", resp.StatusCode, page)
		}
		br.consent(page, "allow")
		h.clock.advance(6 * time.Second)
		resp, tok := h.pollDevice(box, m["device_code"].(string))
		if resp.StatusCode != http.StatusOK || tok["refresh_token"] != nil || tok["id_token"] != nil || tok["scope"] != "read" {
			t.Fatalf("token: %d %v", resp.StatusCode, tok)
		}
		// A wrong secret is a failed client authentication, at both endpoints.
		resp, body := h.form(oauth.PathDeviceAuthorization, box.id, "wrong", url.Values{"scope": {"read"}})
		wantError(t, resp, body, http.StatusUnauthorized, "invalid_client")
	})
}

func TestDevicePollingErrors(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("vic", "vic-password-1")
		tv := h.deviceClient(true, "openid")
		other := h.deviceClient(true, "openid")

		t.Run("slow_down grows the interval and holds", func(t *testing.T) {
			code := h.startDevice(tv, "openid")["device_code"].(string)
			resp, m := h.pollDevice(tv, code)
			wantError(t, resp, m, http.StatusBadRequest, "authorization_pending")
			resp, m = h.pollDevice(tv, code)
			wantError(t, resp, m, http.StatusBadRequest, "slow_down")
			// The interval is 10 s now: 6 s later is still too soon.
			h.clock.advance(6 * time.Second)
			resp, m = h.pollDevice(tv, code)
			wantError(t, resp, m, http.StatusBadRequest, "slow_down")
			h.clock.advance(15 * time.Second)
			resp, m = h.pollDevice(tv, code)
			wantError(t, resp, m, http.StatusBadRequest, "authorization_pending")
		})
		t.Run("unknown code", func(t *testing.T) {
			resp, m := h.pollDevice(tv, "no-such-device-code-0123456789012345678901234")
			wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")
		})
		t.Run("another client's code", func(t *testing.T) {
			code := h.startDevice(tv, "openid")["device_code"].(string)
			resp, m := h.pollDevice(other, code)
			wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")
			// The owner's polling is not disturbed.
			resp, m = h.pollDevice(tv, code)
			wantError(t, resp, m, http.StatusBadRequest, "authorization_pending")
		})
		t.Run("missing device_code", func(t *testing.T) {
			resp, m := h.deviceForm(oauth.PathToken, tv, url.Values{"grant_type": {oauth.GrantTypeDeviceCode}})
			wantError(t, resp, m, http.StatusBadRequest, "invalid_request")
		})
		t.Run("expired", func(t *testing.T) {
			m := h.startDevice(tv, "openid")
			h.clock.advance(h.cfg.DeviceCodeTTL + time.Second)
			resp, body := h.pollDevice(tv, m["device_code"].(string))
			wantError(t, resp, body, http.StatusBadRequest, "expired_token")
			resp, page := h.browser(h.public.URL+"/nowhere").enterCode(m["user_code"].(string), "vic", "vic-password-1")
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("an expired user code: %d\n%s", resp.StatusCode, page)
			}
		})
		t.Run("denied", func(t *testing.T) {
			m := h.startDevice(tv, "openid")
			page := h.browser(h.public.URL+"/nowhere").approve(m["user_code"].(string), "vic", "vic-password-1", "deny")
			if !strings.Contains(page, "denied") {
				t.Errorf("after deny:\n%s", page)
			}
			h.clock.advance(6 * time.Second)
			resp, body := h.pollDevice(tv, m["device_code"].(string))
			wantError(t, resp, body, http.StatusBadRequest, "access_denied")
		})
		t.Run("client not registered for the grant", func(t *testing.T) {
			svc := h.serviceClient("read")
			resp, m := h.form(oauth.PathDeviceAuthorization, svc.id, svc.secret, url.Values{"scope": {"read"}})
			wantError(t, resp, m, http.StatusBadRequest, "unauthorized_client")
			resp, m = h.form(oauth.PathToken, svc.id, svc.secret, url.Values{"grant_type": {oauth.GrantTypeDeviceCode}, "device_code": {"x"}})
			wantError(t, resp, m, http.StatusBadRequest, "unauthorized_client")
		})
		t.Run("scope not registered", func(t *testing.T) {
			resp, m := h.deviceForm(oauth.PathDeviceAuthorization, tv, url.Values{"scope": {"openid admin"}})
			wantError(t, resp, m, http.StatusBadRequest, "invalid_scope")
		})
	})
}

// More than 5 wrong codes a minute from one browser: 429, and a right code
// is refused too until the minute is over. A right code does not count.
func TestDeviceWrongUserCodesThrottled(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("wes", "wes-password-1")
		tv := h.deviceClient(true, "openid")
		good := h.startDevice(tv, "openid")["user_code"].(string)
		br := h.browser(h.public.URL + "/nowhere")
		br.enterCode(good, "wes", "wes-password-1") // signs in; a right code
		statuses := []int{}
		for range 10 {
			resp, _ := br.enterCode("BBBB-BBBB", "", "")
			statuses = append(statuses, resp.StatusCode)
		}
		for i, s := range statuses {
			want := http.StatusBadRequest
			if i >= 5 {
				want = http.StatusTooManyRequests
			}
			if s != want {
				t.Fatalf("wrong code %d: %d, want %d (all: %v)", i+1, s, want, statuses)
			}
		}
		if resp, _ := br.enterCode(good, "", ""); resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("a right code while locked: %d, want 429", resp.StatusCode)
		}
		h.clock.advance(61 * time.Second)
		if resp, page := br.enterCode(good, "", ""); resp.StatusCode != http.StatusOK || !strings.Contains(page, `value="allow"`) {
			t.Errorf("a right code a minute later: %d", resp.StatusCode)
		}
	})
}

// Logout ends the device grant like any other, redeemed or not; so does
// revoking the user.
func TestDeviceGrantEndsWithLogoutAndUserRevocation(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		userID := h.user("xan", "xan-password-1")
		tv := h.deviceClient(true, "openid offline_access")
		rs := h.serviceClient("introspect")
		br := h.browser(h.public.URL + "/nowhere")

		redeemed := h.startDevice(tv, "openid offline_access")
		br.approve(redeemed["user_code"].(string), "xan", "xan-password-1", "allow")
		waiting := h.startDevice(tv, "openid offline_access")
		br.approve(waiting["user_code"].(string), "", "", "allow")
		h.clock.advance(6 * time.Second)
		resp, tok := h.pollDevice(tv, redeemed["device_code"].(string))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("token: %d %v", resp.StatusCode, tok)
		}

		resp, page := br.get(h.public.URL + "/logout")
		resp, _ = br.post("/logout", url.Values{"csrf_token": {field(t, csrfRe, page)}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("logout: %d", resp.StatusCode)
		}
		if in := h.introspect(rs, tok["access_token"].(string)); in["active"] != false {
			t.Errorf("access token after logout: %v", in)
		}
		resp, m := h.deviceForm(oauth.PathToken, tv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
		wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")
		resp, m = h.pollDevice(tv, waiting["device_code"].(string))
		wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")

		// Approved, then the user is revoked through the admin API.
		br = h.browser(h.public.URL + "/nowhere")
		last := h.startDevice(tv, "openid")
		br.approve(last["user_code"].(string), "xan", "xan-password-1", "allow")
		if resp, m := h.adminJSON(http.MethodPost, "/admin/users/"+userID+"/revoke-tokens", nil); resp.StatusCode/100 != 2 {
			t.Fatalf("revoke user: %d %v", resp.StatusCode, m)
		}
		h.clock.advance(6 * time.Second)
		resp, m = h.pollDevice(tv, last["device_code"].(string))
		wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")
	})
}

// Parallel redemptions of one approved code, on PostgreSQL with real
// concurrency: exactly one gets tokens.
func TestDeviceParallelRedemptionOneWinner(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		h.user("yul", "yul-password-1")
		tv := h.deviceClient(true, "openid offline_access")
		m := h.startDevice(tv, "openid offline_access")
		h.browser(h.public.URL+"/nowhere").approve(m["user_code"].(string), "yul", "yul-password-1", "allow")
		h.clock.advance(6 * time.Second)
		const n = 12
		var wg sync.WaitGroup
		statuses := make([]int, n)
		codes := make([]any, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, body := h.pollDevice(tv, m["device_code"].(string))
				statuses[i], codes[i] = resp.StatusCode, body["error"]
			}()
		}
		wg.Wait()
		wins := 0
		for i, s := range statuses {
			switch {
			case s == http.StatusOK:
				wins++
			case codes[i] != "invalid_grant":
				t.Errorf("loser %d: %d %v", i, s, codes[i])
			}
		}
		if wins != 1 {
			t.Fatalf("%d redemptions won, want exactly 1 (%v %v)", wins, statuses, codes)
		}
	})
}

func mustRequest(t *testing.T, method, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func anyStrings(v any) []string {
	var out []string
	for _, x := range anySlice(v) {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func anySlice(v any) []any {
	a, _ := v.([]any)
	return a
}
