package server_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/server"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// sibling starts a second instance on h's database, with its own store (a
// connection pool and client cache of its own) and h's configuration
// changed by tune.
func sibling(t *testing.T, h *harness, tune func(*config.Config), opts ...server.Option) *harness {
	t.Helper()
	st := storetest.Open(t, h.cfg.DatabaseURL, store.Options{})
	cfg := *h.cfg
	tune(&cfg)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv, err := server.New(context.Background(), &cfg, st, slog.New(slog.NewJSONHandler(logs, nil)), opts...)
	if err != nil {
		t.Fatal(err)
	}
	public, admin := httptest.NewServer(srv.PublicHandler()), httptest.NewServer(srv.AdminHandler())
	t.Cleanup(public.Close)
	t.Cleanup(admin.Close)
	return &harness{t: t, public: public, admin: admin, store: st, cfg: &cfg, logs: logs}
}

// A fleet in the middle of a LATCHKEY_ACCESS_TOKEN_FORMAT switch: one
// instance issues JWTs, the other opaque tokens, on one database. Every
// revocation, at either instance, of either token, revokes the whole grant
// in both representations, and outstanding JWTs still introspect at the
// opaque instance.
func TestRevocationAcrossFormats(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		jwtInst := newHarness(t, b, withFormat(config.FormatJWT))
		opaqueInst := sibling(t, jwtInst, withFormat(config.FormatOpaque))
		instances := map[string]*harness{"jwt": jwtInst, "opaque": opaqueInst}
		svc := jwtInst.serviceClient("read")
		jwtInst.user("mia", "mia-password-1")
		pwd := passwordClient(jwtInst, true)

		for _, tc := range []struct {
			name                        string
			issueAt, refreshAt, revokAt string // refreshAt "" for no refresh
			revoke                      string // access_token or refresh_token
		}{
			{name: "JWT revoked at an opaque instance", issueAt: "jwt", revokAt: "opaque", revoke: "access_token"},
			{name: "refresh token of a JWT grant revoked at an opaque instance", issueAt: "jwt", revokAt: "opaque", revoke: "refresh_token"},
			{name: "opaque token revoked at a JWT instance", issueAt: "opaque", revokAt: "jwt", revoke: "access_token"},
			{name: "refresh token of an opaque grant revoked at a JWT instance", issueAt: "opaque", revokAt: "jwt", revoke: "refresh_token"},
			{name: "grant holding both formats revoked by its JWT", issueAt: "opaque", refreshAt: "jwt", revokAt: "jwt", revoke: "access_token"},
			{name: "grant holding both formats revoked by its opaque token", issueAt: "jwt", refreshAt: "opaque", revokAt: "opaque", revoke: "access_token"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				issued := instances[tc.issueAt].token(pwd, url.Values{"grant_type": {"password"}, "username": {"mia"}, "password": {"mia-password-1"}, "scope": {"read offline_access"}})
				access := []string{issued["access_token"].(string)}
				last := issued
				if tc.refreshAt != "" {
					last = instances[tc.refreshAt].token(pwd, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {issued["refresh_token"].(string)}})
					access = append(access, last["access_token"].(string))
				}
				for name, inst := range instances {
					for _, at := range access {
						if in := inst.introspect(svc, at); in["active"] != true {
							t.Fatalf("before revocation, a live token is inactive at the %s instance: %v", name, in)
						}
					}
				}
				resp, m := instances[tc.revokAt].form("/oauth2/revoke", pwd.id, pwd.secret, url.Values{"token": {last[tc.revoke].(string)}})
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("revoke: %d %v", resp.StatusCode, m)
				}
				for name, inst := range instances {
					for i, at := range access {
						if in := inst.introspect(svc, at); in["active"] != false {
							t.Errorf("access token %d still active at the %s instance after revocation at the %s instance", i, name, tc.revokAt)
						}
					}
					resp, m := refresh(inst, pwd, last["refresh_token"].(string))
					wantError(t, resp, m, http.StatusBadRequest, "invalid_grant")
				}
			})
		}
	})
}

// unsealBackup opens a signing key row the way someone holding secret and
// a copy of the database would.
func unsealBackup(t *testing.T, secret string, row store.SigningKey) *jose.JSONWebKey {
	t.Helper()
	k, err := secrets.DeriveKey([]byte(secret), keys.PurposeKeyEncryption)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(k)
	aead, _ := cipher.NewGCM(block)
	ns := aead.NonceSize()
	plain, err := aead.Open(nil, row.PrivateKey[:ns], row.PrivateKey[ns:], []byte(row.KID))
	if err != nil {
		t.Fatalf("the old secret does not open the backup: %v", err)
	}
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(plain, &jwk); err != nil {
		t.Fatal(err)
	}
	return &jwk
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	parsed, err := josejwt.ParseSigned(token, keys.Algorithms)
	if err != nil {
		t.Fatal(err)
	}
	return parsed.Headers[0].KeyID
}

// The attack on a LATCHKEY_SECRET rotation: someone holds the old secret
// and a backup from before it, so they hold the signing key of that time
// and mint tokens for any subject, scope and audience. After the rotation
// procedure (start with "new,old") that key signs for one pre-publication
// period more and leaves the JWKS once its tokens have expired; and at no
// time is a token accepted that claims a longer life than Latchkey issues.
func TestSecretRotationRetiresSigningKeys(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := jwtHarness(t, b)
		svc := h.serviceClient("read")
		before := h.token(svc, url.Values{"grant_type": {"client_credentials"}})["access_token"].(string)
		all, err := h.store.ListSigningKeys(context.Background())
		if err != nil || len(all) != 3 {
			t.Fatalf("backup: %d keys, %v", len(all), err)
		}
		// The key that signs access tokens: the configured algorithm's.
		backup := slices.DeleteFunc(all, func(k store.SigningKey) bool { return k.Alg != h.cfg.SigningAlg })
		stolen := unsealBackup(t, testSecret, backup[0])
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(stolen.Algorithm), Key: stolen}, (&jose.SignerOptions{}).WithType("at+jwt"))
		if err != nil {
			t.Fatal(err)
		}
		c := &testClock{now: time.Now()}
		forge := func(lifetime time.Duration) string {
			now := c.Now()
			tok, err := josejwt.Signed(signer).Claims(rfc9068Claims{
				Claims: josejwt.Claims{Issuer: h.cfg.Issuer, Subject: "user-victim", Audience: josejwt.Audience{"https://api.example"},
					IssuedAt: josejwt.NewNumericDate(now), Expiry: josejwt.NewNumericDate(now.Add(lifetime)), ID: "forged-" + now.String()},
				ClientID: svc.id, Scope: "read admin", GrantID: "forged-grant",
			}).Serialize()
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}

		rotated := sibling(t, h, func(cfg *config.Config) { cfg.Secret = "a-brand-new-system-secret-0123456789-xyz," + testSecret }, server.WithClock(c.Now))
		if in := rotated.introspect(svc, before); in["active"] != true {
			t.Fatalf("a token from before the rotation: %v", in)
		}
		if in := rotated.introspect(svc, forge(365*24*time.Hour)); in["active"] != false {
			t.Fatalf("a token claiming a year's life is accepted: %v", in)
		}
		// The window the procedure leaves: the old key verifies what it may
		// have signed until that has expired.
		if in := rotated.introspect(svc, forge(h.cfg.AccessTokenTTL)); in["active"] != true {
			t.Fatalf("the old key stopped verifying before its tokens expired: %v", in)
		}

		c.Add(h.cfg.KeyPrepublishPeriod)
		after := rotated.token(svc, url.Values{"grant_type": {"client_credentials"}})["access_token"].(string)
		if kidOf(t, after) == backup[0].KID {
			t.Fatal("after the pre-publication period the old key still signs")
		}
		// A forgery verified in the old key's last seconds (and so cached)
		// dies with the key, though its exp is a lifetime away.
		c.Add(h.cfg.AccessTokenTTL + time.Minute - 2*time.Second)
		late := forge(h.cfg.AccessTokenTTL)
		if in := rotated.introspect(svc, late); in["active"] != true {
			t.Fatalf("the old key stopped verifying before its tokens expired: %v", in)
		}
		c.Add(3 * time.Second)
		if in := rotated.introspect(svc, late); in["active"] != false {
			t.Fatalf("a forgery verified before the old key left is still accepted after: %v", in)
		}
		if in := rotated.introspect(svc, forge(h.cfg.AccessTokenTTL)); in["active"] != false {
			t.Fatalf("a token forged with the key from the backup is accepted after the rotation: %v", in)
		}
		published := rotated.jwks().Keys
		if len(published) == 0 {
			t.Fatal("no key is published after the rotation")
		}
		for _, k := range published {
			if k.KeyID == backup[0].KID {
				t.Fatal("the old key is still published after its tokens expired")
			}
		}
		if !strings.HasPrefix(after, "ey") {
			t.Fatal("not a JWT")
		}
	})
}
