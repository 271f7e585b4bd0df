package resourceserver_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	resourceserver "github.com/latchkey/latchkey/clients/resource-server"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/lktest"
	"golang.org/x/oauth2/clientcredentials"
)

type latchkey struct {
	*lktest.Server
	jwksHits atomic.Int64
	issuer   string
}

// startLatchkey runs a real Latchkey (JWT access tokens, SQLite) and counts
// JWKS fetches.
func startLatchkey(t *testing.T) *latchkey {
	lk := &latchkey{}
	lk.Server = lktest.Start(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/.well-known/jwks.json" {
				lk.jwksHits.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	}, func(c *config.Config) { c.KeyPrepublishPeriod = 0 })
	lk.issuer = lk.Issuer
	return lk
}

func (lk *latchkey) adminPost(t *testing.T, path string, body any) map[string]any {
	return lk.AdminPost(path, body)
}

func (lk *latchkey) service(t *testing.T, scope string) clientcredentials.Config {
	c := lk.adminPost(t, "/admin/clients", map[string]any{"grant_types": []string{"client_credentials"}, "scope": scope, "audience": []string{"https://api.example.com"}})
	return clientcredentials.Config{ClientID: c["client_id"].(string), ClientSecret: c["client_secret"].(string),
		TokenURL: lk.issuer + "/oauth2/token", Scopes: strings.Fields(scope)}
}

// api is a resource server protected by the middleware.
func api(t *testing.T, v *resourceserver.Verifier) *httptest.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /invoices", v.Middleware("invoices:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := resourceserver.FromContext(r.Context())
		_, _ = w.Write([]byte(c.Subject))
	})))
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func get(t *testing.T, u, token string) (*http.Response, string) {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp, b.String()
}

// service -> Latchkey -> resource server, with the reference service's
// library (x/oauth2 client credentials) and this middleware.
func TestServiceToResourceServer(t *testing.T) {
	lk := startLatchkey(t)
	v, err := resourceserver.New(resourceserver.Config{Issuer: lk.issuer, Audience: "https://api.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	rs := api(t, v)
	svc := lk.service(t, "invoices:read")

	client := svc.Client(context.Background())
	resp, err := client.Get(rs.URL + "/invoices")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("service call: %v %v", err, resp)
	}
	resp.Body.Close()

	tok, _ := svc.Token(context.Background())
	cases := []struct {
		name, token string
		status      int
		challenge   string
	}{
		{"no token", "", 401, `Bearer realm="api"`},
		{"garbage", "not-a-jwt", 401, `error="invalid_token"`},
		{"tampered", tok.AccessToken[:len(tok.AccessToken)-4] + "AAAA", 401, `error="invalid_token"`},
		{"alg none", "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0." + strings.Split(tok.AccessToken, ".")[1] + ".", 401, `error="invalid_token"`},
	}
	noScope := lk.service(t, "reports:read")
	other, _ := noScope.Token(context.Background())
	cases = append(cases, struct {
		name, token string
		status      int
		challenge   string
	}{"missing scope", other.AccessToken, 403, `error="insufficient_scope"`})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := get(t, rs.URL+"/invoices", tc.token)
			if resp.StatusCode != tc.status || !strings.Contains(resp.Header.Get("WWW-Authenticate"), tc.challenge) {
				t.Fatalf("got %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	// A token for another API is refused.
	wrongAud, _ := resourceserver.New(resourceserver.Config{Issuer: lk.issuer, Audience: "https://other.example"})
	if _, err := wrongAud.Verify(context.Background(), tok.AccessToken); err == nil {
		t.Fatal("a token for another audience was accepted")
	}
}

// A key rotation is picked up by refetching on an unknown kid, but forged
// kids cannot make the middleware fetch more than once per interval.
func TestKeyRotationAndRefetchLimit(t *testing.T) {
	lk := startLatchkey(t)
	v, _ := resourceserver.New(resourceserver.Config{Issuer: lk.issuer, Audience: "https://api.example.com", RefetchInterval: time.Hour})
	rs := api(t, v)
	svc := lk.service(t, "invoices:read")
	tok, _ := svc.Token(context.Background())
	if resp, _ := get(t, rs.URL+"/invoices", tok.AccessToken); resp.StatusCode != 200 {
		t.Fatal("first call")
	}
	hits := lk.jwksHits.Load()
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","kid":"forged","typ":"at+jwt"}`))
	for range 20 {
		get(t, rs.URL+"/invoices", header+"."+strings.Split(tok.AccessToken, ".")[1]+".AAAA")
	}
	if n := lk.jwksHits.Load() - hits; n > 1 {
		t.Fatalf("forged kids caused %d JWKS fetches", n)
	}

	clk := newClock()
	v2, _ := resourceserver.New(resourceserver.Config{Issuer: lk.issuer, Audience: "https://api.example.com", RefetchInterval: time.Second, Now: clk.now})
	rs2 := api(t, v2)
	if resp, _ := get(t, rs2.URL+"/invoices", tok.AccessToken); resp.StatusCode != 200 {
		t.Fatal("warm-up")
	}
	lk.adminPost(t, "/admin/keys/rotate", nil)
	clk.add(2 * time.Second)                    // past RefetchInterval: the new kid may be fetched
	fresh, _ := svc.Token(context.Background()) // Config.Token always asks Latchkey anew
	if resp, _ := get(t, rs2.URL+"/invoices", fresh.AccessToken); resp.StatusCode != 200 {
		t.Fatal("a token signed by the rotated key was refused")
	}
}

// A key the issuer revokes (latchkey keys revoke) stops verifying here
// once the keys are older than MaxKeyAge, without a restart; until then,
// and while the issuer is unreachable, the fetched keys stay in use.
func TestRevokedKeyStopsVerifyingAfterMaxKeyAge(t *testing.T) {
	lk := startLatchkey(t)
	svc := lk.service(t, "invoices:read")
	clk := newClock()
	v, _ := resourceserver.New(resourceserver.Config{Issuer: lk.issuer, Audience: "https://api.example.com",
		MaxKeyAge: time.Minute, RefetchInterval: time.Second, Now: clk.now})
	rs := api(t, v)
	tok, _ := svc.Token(context.Background())
	if resp, _ := get(t, rs.URL+"/invoices", tok.AccessToken); resp.StatusCode != 200 {
		t.Fatal("a valid token was refused")
	}
	header, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok.AccessToken, ".")[0])
	var h struct{ Kid string }
	if err := json.Unmarshal(header, &h); err != nil || h.Kid == "" {
		t.Fatalf("token header %s: %v", header, err)
	}
	lk.adminPost(t, "/admin/keys/"+h.Kid+"/revoke", nil)
	hits := lk.jwksHits.Load()
	clk.add(30 * time.Second)
	if resp, _ := get(t, rs.URL+"/invoices", tok.AccessToken); resp.StatusCode != 200 || lk.jwksHits.Load() != hits {
		t.Fatalf("within MaxKeyAge: %d, %d fetches; want the cached key used without a fetch", resp.StatusCode, lk.jwksHits.Load()-hits)
	}
	clk.add(31 * time.Second)
	if resp, _ := get(t, rs.URL+"/invoices", tok.AccessToken); resp.StatusCode != 401 {
		t.Fatalf("a token signed by a revoked key, after MaxKeyAge: %d, want 401", resp.StatusCode)
	}
	fresh, _ := svc.Token(context.Background())
	if resp, _ := get(t, rs.URL+"/invoices", fresh.AccessToken); resp.StatusCode != 200 {
		t.Fatalf("a token signed by the key that took over: %d", resp.StatusCode)
	}
}

// Introspection mode sees a revocation (within its cache time); local
// verification accepts the token until it expires, as documented.
func TestIntrospectionModeSeesRevocation(t *testing.T) {
	lk := startLatchkey(t)
	svc := lk.service(t, "invoices:read")
	caller := lk.adminPost(t, "/admin/clients", map[string]any{"grant_types": []string{"client_credentials"}})
	clk := newClock()
	v, _ := resourceserver.New(resourceserver.Config{Issuer: lk.issuer, Audience: "https://api.example.com",
		IntrospectionURL: lk.issuer + "/oauth2/introspect", ClientID: caller["client_id"].(string),
		ClientSecret: caller["client_secret"].(string), IntrospectionCacheTTL: time.Second, Now: clk.now})
	local, _ := resourceserver.New(resourceserver.Config{Issuer: lk.issuer, Audience: "https://api.example.com"})
	rs, rsLocal := api(t, v), api(t, local)
	tok, _ := svc.Token(context.Background())
	if resp, _ := get(t, rs.URL+"/invoices", tok.AccessToken); resp.StatusCode != 200 {
		t.Fatal("introspection mode refused a valid token")
	}
	form := url.Values{"token": {tok.AccessToken}}
	req, _ := http.NewRequest(http.MethodPost, lk.issuer+"/oauth2/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(svc.ClientID, svc.ClientSecret)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatal("revoke")
	}
	clk.add(2 * time.Second) // past IntrospectionCacheTTL
	if resp, _ := get(t, rs.URL+"/invoices", tok.AccessToken); resp.StatusCode != 401 {
		t.Fatalf("introspection mode after revocation: %d", resp.StatusCode)
	}
	if resp, _ := get(t, rsLocal.URL+"/invoices", tok.AccessToken); resp.StatusCode != 200 {
		t.Fatalf("local verification after revocation: %d (documented to accept until expiry)", resp.StatusCode)
	}
}

// Whatever arrives as a bearer token, Verify neither panics nor accepts a
// token Latchkey did not sign.
func FuzzVerify(f *testing.F) {
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","use":"sig",` +
			`"x":"ESBSqiCwZ3XKzg4KqQBuyLF01ZMZ6FJiejteBEFUUdo","y":"DZ7m1NUYuiVvWm1Dq8dKNZCbtn8mM8Rv4EMxBs8ZMsg"}]}`))
	}))
	f.Cleanup(keys.Close)
	v, _ := resourceserver.New(resourceserver.Config{Issuer: "https://issuer.example", Audience: "api", JWKSURL: keys.URL})
	for _, seed := range []string{"", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiYXQrand0In0.e30.AAAA"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		if c, err := v.Verify(context.Background(), token); err == nil {
			t.Fatalf("accepted %q: %+v", token, c)
		}
	})
}
