package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/oauth"
	"github.com/latchkey/latchkey/internal/server"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// keyInstance is a second instance on h's database whose key manager runs
// as in production but refreshes only hourly: on PostgreSQL only the change
// announcement can make it see a revocation promptly.
type keyInstance struct {
	*harness
	keys     *keys.Manager
	reloaded chan struct{}
}

func secondKeyInstance(t *testing.T, h *harness) *keyInstance {
	t.Helper()
	st := storetest.Open(t, h.cfg.DatabaseURL, store.Options{Now: h.clock.Now})
	cfg := *h.cfg
	reloaded := make(chan struct{}, 16)
	srv, err := server.New(context.Background(), &cfg, st, slog.New(slog.DiscardHandler), server.WithClock(h.clock.Now),
		server.WithKeyOptions(func(o *keys.Options) {
			o.RefreshInterval = time.Hour
			o.Reloaded = func() { reloaded <- struct{}{} }
		}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Keys().Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	public, admin := httptest.NewServer(srv.PublicHandler()), httptest.NewServer(srv.AdminHandler())
	t.Cleanup(public.Close)
	t.Cleanup(admin.Close)
	return &keyInstance{harness: &harness{t: t, public: public, admin: admin, store: st, cfg: &cfg, logs: &syncBuffer{}, clock: h.clock, srv: srv},
		keys: srv.Keys(), reloaded: reloaded}
}

// forget waits until this instance no longer knows kid: on PostgreSQL the
// change is announced; on SQLite the instance reads the keys every refresh
// interval, which the test stands in for.
func (k *keyInstance) forget(t *testing.T, kid string) {
	t.Helper()
	if k.store.Dialect() != store.DialectPostgres {
		if err := k.keys.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		return
	}
	timeout := time.After(10 * time.Second)
	for _, ok := k.keys.Lookup(kid); ok; _, ok = k.keys.Lookup(kid) {
		select {
		case <-k.reloaded:
		case <-timeout:
			t.Fatalf("the second instance still knows %s: the change was not announced", kid)
		}
	}
}

// POST /admin/keys/{kid}/revoke on one instance: the access tokens the key
// signed are inactive at introspection and refused by userinfo on a second
// instance sharing the database, neither JWKS has the key, and both sign
// with a new key of the same algorithm at once. Refresh tokens keep working
// and give tokens signed by the new key. An unknown kid is 404.
func TestAdminKeyRevoke(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, withFormat(config.FormatJWT))
		other := secondKeyInstance(t, h)
		svc := h.serviceClient("read introspect")
		h.user("rita", "rita-password-1")
		app := h.client(map[string]any{"trusted": true, "grant_types": []string{"password", "refresh_token"}, "scope": "openid offline_access"})
		pw := h.token(app, url.Values{"grant_type": {"password"}, "username": {"rita"}, "password": {"rita-password-1"}, "scope": {"openid offline_access"}})
		at := pw["access_token"].(string)
		cc := h.token(svc, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})["access_token"].(string)
		kid := kidOf(t, at)
		if other.introspect(svc, at)["active"] != true {
			t.Fatal("the token is not active on the second instance before the revocation")
		}
		h.clock.advance(time.Second)

		resp, m := h.adminJSON(http.MethodPost, "/admin/keys/"+kid+"/revoke", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke: %d %v", resp.StatusCode, m)
		}
		revoked, _ := m["revoked"].(map[string]any)
		replaced, _ := m["replaced_by"].(map[string]any)
		if revoked["kid"] != kid || revoked["state"] != "revoked" || replaced["state"] != "active" || replaced["alg"] != "ES256" {
			t.Fatalf("revoke answered %v", m)
		}
		other.forget(t, kid)
		for name, inst := range map[string]*harness{"first": h, "second": other.harness} {
			for _, tok := range []string{at, cc} {
				if got := inst.introspect(svc, tok); got["active"] != false {
					t.Fatalf("%s instance: a token signed by the revoked key introspects %v", name, got)
				}
			}
			if resp, _ := inst.userinfo(http.MethodGet, withBearer(at)); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("%s instance: userinfo with a revoked key's token: %d, want 401", name, resp.StatusCode)
			}
			if set := inst.jwks(); len(set.Key(kid)) != 0 {
				t.Fatalf("%s instance still publishes the revoked key", name)
			}
			next := inst.token(svc, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})["access_token"].(string)
			if got := kidOf(t, next); got != replaced["kid"] {
				t.Fatalf("%s instance signs with %s, want the replacement %s", name, got, replaced["kid"])
			}
			if inst.introspect(svc, next)["active"] != true {
				t.Fatalf("%s instance: a token signed by the replacement is not active", name)
			}
		}
		// The refresh token is not signed with the key: the client gets a
		// new access token, signed by the replacement.
		refreshed := other.token(app, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {pw["refresh_token"].(string)}})
		if kidOf(t, refreshed["access_token"].(string)) != replaced["kid"] || kidOf(t, refreshed["id_token"].(string)) != replaced["kid"] {
			t.Fatal("the refreshed tokens are not signed by the replacement")
		}
		resp, m = h.adminJSON(http.MethodPost, "/admin/keys/"+kid+"/revoke", nil)
		wantError(t, resp, m, http.StatusNotFound, "not_found")
		resp, m = h.adminJSON(http.MethodPost, "/admin/keys/no-such-kid/revoke", nil)
		wantError(t, resp, m, http.StatusNotFound, "not_found")
	})
}

// POST /admin/keys/rotate?now=true (or {"now": true}): the next token has
// the new kid, on this instance and the other, and a token signed before
// still verifies. The plain call keeps its staged behaviour.
func TestAdminKeyRotateNow(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, withFormat(config.FormatJWT))
		other := secondKeyInstance(t, h)
		svc := h.serviceClient("read introspect")
		issue := func(inst *harness) string {
			return inst.token(svc, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})["access_token"].(string)
		}
		before := issue(h)
		h.clock.advance(time.Second)

		resp, m := h.adminJSON(http.MethodPost, "/admin/keys/rotate", nil)
		if resp.StatusCode != http.StatusOK || m["state"] != "pending" {
			t.Fatalf("plain rotate: %d %v, want a pending key", resp.StatusCode, m)
		}
		if got := kidOf(t, issue(h)); got != kidOf(t, before) {
			t.Fatal("a plain rotation signs before its pre-publication ends")
		}
		resp, m = h.adminJSON(http.MethodPost, "/admin/keys/rotate?now=maybe", nil)
		wantError(t, resp, m, http.StatusBadRequest, "invalid_request")
		resp, m = h.adminJSON(http.MethodPost, "/admin/keys/rotate", map[string]any{"now": true, "later": 1})
		wantError(t, resp, m, http.StatusBadRequest, "invalid_request")

		for i, rotate := range []func() (*http.Response, map[string]any){
			func() (*http.Response, map[string]any) {
				return h.adminJSON(http.MethodPost, "/admin/keys/rotate?now=true", nil)
			},
			func() (*http.Response, map[string]any) {
				return h.adminJSON(http.MethodPost, "/admin/keys/rotate", map[string]any{"now": true})
			},
		} {
			h.clock.advance(time.Second)
			resp, m := rotate()
			if resp.StatusCode != http.StatusOK || m["state"] != "active" || m["alg"] != "ES256" {
				t.Fatalf("rotate now #%d: %d %v", i, resp.StatusCode, m)
			}
			kid := m["kid"].(string)
			if got := kidOf(t, issue(h)); got != kid {
				t.Fatalf("rotate now #%d: next token has kid %s, want %s", i, got, kid)
			}
			// The other instance learns of the new key from the shared
			// database: at once on PostgreSQL (announced), at its next
			// refresh on SQLite.
			if other.store.Dialect() == store.DialectPostgres {
				timeout := time.After(10 * time.Second)
				for k, err := other.keys.Current(); err != nil || k.KID != kid; k, err = other.keys.Current() {
					select {
					case <-other.reloaded:
					case <-timeout:
						t.Fatal("the second instance did not hear of the emergency rotation")
					}
				}
			} else if err := other.keys.Reload(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := kidOf(t, issue(other.harness)); got != kid {
				t.Fatalf("rotate now #%d: the second instance signs with %s, want %s", i, got, kid)
			}
			for name, inst := range map[string]*harness{"first": h, "second": other.harness} {
				if inst.introspect(svc, before)["active"] != true {
					t.Fatalf("%s instance: a token signed before the emergency rotation is no longer active", name)
				}
				if set := inst.jwks(); len(set.Key(kidOf(t, before))) != 1 || len(set.Key(kid)) != 1 {
					t.Fatalf("%s instance: the JWKS lacks the old or the new key", name)
				}
			}
		}
	})
}

// POST /admin/keys/import: a key brought as PEM or JWK signs (now, or
// after pre-publication) and what it signs verifies against the JWKS with
// go-oidc's remote key set; bad keys are 400 with the reason and a taken
// kid 409, never 500; the private key appears in no answer or log line.
func TestAdminKeyImport(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, withFormat(config.FormatJWT))
		svc := h.serviceClient("read introspect")
		ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.MarshalPKCS8PrivateKey(ec)
		ecPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		h.clock.advance(time.Second)

		resp, m := h.adminJSON(http.MethodPost, "/admin/keys/import", map[string]any{"key": ecPEM, "kid": "hsm-2026", "now": true})
		if resp.StatusCode != http.StatusCreated || m["kid"] != "hsm-2026" || m["alg"] != "ES256" || m["state"] != "active" {
			t.Fatalf("import: %d %v", resp.StatusCode, m)
		}
		tok := h.token(svc, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})["access_token"].(string)
		if kidOf(t, tok) != "hsm-2026" {
			t.Fatalf("access token signed by %s, want the imported key", kidOf(t, tok))
		}
		ctx := context.Background()
		payload, err := oidc.NewRemoteKeySet(ctx, h.public.URL+oauth.PathJWKS).VerifySignature(ctx, tok)
		if err != nil || !strings.Contains(string(payload), `"sub"`) {
			t.Fatalf("go-oidc does not verify a token signed by the imported key: %v", err)
		}
		if h.introspect(svc, tok)["active"] != true {
			t.Fatal("a token signed by the imported key is not active")
		}

		// An RSA key as a JWK object, published now, signing later.
		rk, _ := rsa.GenerateKey(rand.Reader, 2048)
		jwk, _ := json.Marshal(jose.JSONWebKey{Key: rk})
		resp, m = h.adminJSON(http.MethodPost, "/admin/keys/import", map[string]any{"key": json.RawMessage(jwk), "alg": "RS256"})
		if resp.StatusCode != http.StatusCreated || m["alg"] != "RS256" || m["state"] != "pending" {
			t.Fatalf("import JWK: %d %v", resp.StatusCode, m)
		}
		if set := h.jwks(); len(set.Key(m["kid"].(string))) != 1 {
			t.Fatal("a pre-published imported key is not in the JWKS")
		}

		pubDER, _ := x509.MarshalPKIXPublicKey(ec.Public())
		small, _ := rsa.GenerateKey(rand.Reader, 1024)
		smallDER, _ := x509.MarshalPKCS8PrivateKey(small)
		bad := []struct {
			name string
			body any
			want string
		}{
			{"public key", map[string]any{"key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))}, "not a private key"},
			{"symmetric", map[string]any{"key": map[string]any{"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"}}, "symmetric"},
			{"small RSA", map[string]any{"key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: smallDER}))}, "2048"},
			{"alg mismatch", map[string]any{"key": ecPEM, "alg": "EdDSA", "kid": "x"}, "ES256 key"},
			{"garbage", map[string]any{"key": "hello"}, "no PEM block"},
			{"no key", map[string]any{"alg": "ES256"}, "key is required"},
			{"unknown field", map[string]any{"key": ecPEM, "pem": "x"}, "pem"},
			{"not JSON", "just a string", "not a valid JSON object"},
		}
		for _, tc := range bad {
			resp, m := h.adminJSON(http.MethodPost, "/admin/keys/import", tc.body)
			wantError(t, resp, m, http.StatusBadRequest, "invalid_request")
			if desc, _ := m["error_description"].(string); !strings.Contains(desc, tc.want) {
				t.Fatalf("%s: %q, want it to say %q", tc.name, desc, tc.want)
			}
		}
		resp, m = h.adminJSON(http.MethodPost, "/admin/keys/import", map[string]any{"key": ecPEM})
		wantError(t, resp, m, http.StatusConflict, "conflict")

		body := strings.Split(strings.TrimSpace(ecPEM), "\n")[1]
		d, _ := json.Marshal(jose.JSONWebKey{Key: rk})
		var rsaMembers map[string]string
		_ = json.Unmarshal(d, &rsaMembers)
		for _, secret := range []string{body, rsaMembers["d"]} {
			if strings.Contains(h.logs.String(), secret) {
				t.Fatal("private key material was logged")
			}
		}
	})
}
