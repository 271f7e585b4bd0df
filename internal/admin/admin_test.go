package admin

import (
	"sync"
	"time"

	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// service is a Service over a fresh, migrated database of the backend,
// with the hasher it uses so tests can verify stored secrets.
func service(t *testing.T, b storetest.Backend) (*Service, *store.Store, *secrets.ClientSecretHasher) {
	t.Helper()
	return serviceAt(t, b, nil)
}

// serviceAt is service with the store and the service on one clock (nil is
// the wall clock).
func serviceAt(t *testing.T, b storetest.Backend, now func() time.Time) (*Service, *store.Store, *secrets.ClientSecretHasher) {
	t.Helper()
	st := storetest.Open(t, b.URL(t), store.Options{Now: now})
	h, err := secrets.NewClientSecretHasher(secrets.ParseSystemSecrets("admin-test-secret-0123456789-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	return NewService(st, h, Policy{Now: now}), st, h
}

// fakeClock is a clock that moves only when a test advances it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// ecJWKS is a one-key JWK Set of a fresh P-256 key, as a client would
// register it; with private set the "d" member is in it too.
func ecJWKS(t *testing.T, private bool) (json.RawMessage, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var key any = &k.PublicKey
	if private {
		key = k
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key, KeyID: "k1", Algorithm: "ES256"}}})
	if err != nil {
		t.Fatal(err)
	}
	if private != strings.Contains(string(b), `"d"`) {
		t.Fatalf("the test key set is not what it claims (private %v): %s", private, b)
	}
	return b, k
}

func countClients(t *testing.T, st *store.Store) int {
	t.Helper()
	cs, err := st.ListClients(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(cs)
}

func findClient(t *testing.T, st *store.Store, id string) *store.Client {
	t.Helper()
	c, err := st.FindClient(context.Background(), id)
	if err != nil {
		t.Fatalf("find client %q: %v", id, err)
	}
	return c
}

// wantSecret checks a freshly issued secret: 256 random bits as unpadded
// base64url, with client_secret_expires_at 0 (RFC 7591 §3.2.1: never).
func wantSecret(t *testing.T, md *ClientMetadata) {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(md.ClientSecret)
	if err != nil || len(raw) != 32 {
		t.Errorf("client_secret %q is not 32 bytes of base64url (%v)", md.ClientSecret, err)
	}
	if md.ClientSecretExpiresAt == nil || *md.ClientSecretExpiresAt != 0 {
		t.Errorf("client_secret_expires_at %v, want 0", md.ClientSecretExpiresAt)
	}
}

// wantNoSecret checks an answer that must not show a secret, by its JSON
// form too: that is what the API and the CLI print.
func wantNoSecret(t *testing.T, what string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"client_secret":`) || strings.Contains(string(b), `"client_secret_expires_at":`) {
		t.Errorf("%s shows a secret: %s", what, b)
	}
}

var generatedID = regexp.MustCompile(`^[0-9a-f]{32}$`)

const (
	accepted    = ""
	badMetadata = "invalid_client_metadata"
	badRedirect = "invalid_redirect_uri"
)

// Every registration rule of the contract and RFC 7591, through
// CreateClient: what is accepted is stored as answered, and what is refused
// carries its RFC 7591 §3.2.2 code and stores nothing.
func TestRegistrationRules(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		svc, st, h := service(t, b)
		ctx := context.Background()
		cc := []string{"client_credentials"}
		publicJWKS, key := ecJWKS(t, false)
		privateJWKS, _ := ecJWKS(t, true)

		taken, err := svc.CreateClient(ctx, &ClientMetadata{ClientID: "taken", GrantTypes: cc})
		if err != nil {
			t.Fatal(err)
		}

		cases := []struct {
			name string
			md   ClientMetadata
			code string
			// why is part of the refusal's description, so that a case
			// refused by some other rule than the one it is about fails.
			why   string
			check func(t *testing.T, out *ClientMetadata, row *store.Client)
		}{
			{name: "confidential client_credentials", md: ClientMetadata{ClientName: "billing", GrantTypes: cc, Scope: "read write"}, code: accepted,
				check: func(t *testing.T, out *ClientMetadata, row *store.Client) {
					if row.Public || row.TokenEndpointAuthMethod != AuthSecretBasic {
						t.Errorf("public %v, auth method %q; want the RFC 7591 default client_secret_basic", row.Public, row.TokenEndpointAuthMethod)
					}
					if !slices.Equal(row.Scopes, []string{"read", "write"}) || len(row.ResponseTypes) != 0 || len(row.RedirectURIs) != 0 {
						t.Errorf("stored scopes %q, response types %q, redirect URIs %q", row.Scopes, row.ResponseTypes, row.RedirectURIs)
					}
					wantSecret(t, out)
				}},
			{name: "public SPA", md: ClientMetadata{TokenEndpointAuthMethod: AuthNone, GrantTypes: []string{"authorization_code", "refresh_token"}, RedirectURIs: []string{"https://app.example/cb"}}, code: accepted,
				check: func(t *testing.T, out *ClientMetadata, row *store.Client) {
					if !row.Public || out.ClientSecret != "" || out.ClientSecretExpiresAt != nil || len(row.SecretHash) != 0 {
						t.Errorf("public %v, secret %q, expires %v, hash %x", row.Public, out.ClientSecret, out.ClientSecretExpiresAt, row.SecretHash)
					}
					// RFC 7591 §2: response_types defaults to "code".
					if !slices.Equal(row.ResponseTypes, []string{"code"}) || !slices.Equal(row.GrantTypes, []string{"authorization_code", "refresh_token"}) {
						t.Errorf("response types %q, grant types %q", row.ResponseTypes, row.GrantTypes)
					}
				}},
			{name: "loopback redirects", md: ClientMetadata{TokenEndpointAuthMethod: AuthNone, RedirectURIs: []string{"http://127.0.0.1:8080/cb", "http://[::1]/cb"}}, code: accepted,
				check: func(t *testing.T, out *ClientMetadata, row *store.Client) {
					if !slices.Equal(row.RedirectURIs, []string{"http://127.0.0.1:8080/cb", "http://[::1]/cb"}) {
						t.Errorf("redirect URIs %q", row.RedirectURIs)
					}
				}},
			{name: "private-use scheme, public", md: ClientMetadata{TokenEndpointAuthMethod: AuthNone, RedirectURIs: []string{"com.example.app:/callback"}}, code: accepted},
			{name: "private_key_jwt with a public EC key", md: ClientMetadata{TokenEndpointAuthMethod: AuthPrivateKeyJWT, GrantTypes: cc, JWKS: publicJWKS}, code: accepted,
				check: func(t *testing.T, out *ClientMetadata, row *store.Client) {
					var set jose.JSONWebKeySet
					if err := json.Unmarshal([]byte(row.JWKS), &set); err != nil || len(set.Keys) != 1 {
						t.Fatalf("stored jwks %s: %v", row.JWKS, err)
					}
					pub, ok := set.Keys[0].Key.(*ecdsa.PublicKey)
					if !ok || !pub.Equal(&key.PublicKey) || !set.Keys[0].IsPublic() {
						t.Errorf("stored key %#v is not the registered public key", set.Keys[0].Key)
					}
					// fosite only considers keys marked for signatures, and
					// reads them with go-jose v3.
					if set.Keys[0].Use != "sig" {
						t.Errorf("stored key use %q, want sig", set.Keys[0].Use)
					}
					if v3 := row.GetJSONWebKeys(); v3 == nil || len(v3.Key("k1")) != 1 {
						t.Errorf("fosite cannot read the stored key set %s", row.JWKS)
					}
				}},
			{name: "trusted", md: ClientMetadata{GrantTypes: cc, Trusted: true}, code: accepted,
				check: func(t *testing.T, out *ClientMetadata, row *store.Client) {
					if !out.Trusted || !row.Trusted {
						t.Errorf("trusted: answered %v, stored %v", out.Trusted, row.Trusted)
					}
				}},
			// encoding/json gives a json.RawMessage "null" for "jwks": null,
			// which says no more than leaving jwks out.
			{name: "jwks null on a secret client", md: ClientMetadata{GrantTypes: cc, JWKS: json.RawMessage("null")}, code: accepted,
				check: func(t *testing.T, out *ClientMetadata, row *store.Client) {
					if row.JWKS != "" {
						t.Errorf("stored jwks %q", row.JWKS)
					}
				}},
			// OpenID Connect client metadata (issue 14).
			{name: "id_token alg unset is RS256", md: ClientMetadata{GrantTypes: cc}, code: accepted,
				check: func(t *testing.T, out *ClientMetadata, row *store.Client) {
					// Dynamic Client Registration §2's default, stored and answered.
					if row.IDTokenSignedResponseAlg != "RS256" || out.IDTokenSignedResponseAlg != "RS256" {
						t.Errorf("id_token_signed_response_alg stored %q, answered %q; want RS256", row.IDTokenSignedResponseAlg, out.IDTokenSignedResponseAlg)
					}
					if row.BackchannelLogoutURI != "" || row.BackchannelLogoutSessionRequired {
						t.Errorf("back-channel logout %q %v, want none", row.BackchannelLogoutURI, row.BackchannelLogoutSessionRequired)
					}
				}},
			{name: "id_token alg ES256", md: ClientMetadata{GrantTypes: cc, IDTokenSignedResponseAlg: "ES256"}, code: accepted,
				check: func(t *testing.T, out *ClientMetadata, row *store.Client) {
					if row.IDTokenSignedResponseAlg != "ES256" || out.IDTokenSignedResponseAlg != "ES256" {
						t.Errorf("stored %q, answered %q", row.IDTokenSignedResponseAlg, out.IDTokenSignedResponseAlg)
					}
				}},
			{name: "id_token alg EdDSA", md: ClientMetadata{GrantTypes: cc, IDTokenSignedResponseAlg: "EdDSA"}, code: accepted,
				check: func(t *testing.T, out *ClientMetadata, row *store.Client) {
					if row.IDTokenSignedResponseAlg != "EdDSA" {
						t.Errorf("stored %q", row.IDTokenSignedResponseAlg)
					}
				}},
			{name: "back-channel logout", md: ClientMetadata{RedirectURIs: []string{"https://app.example/cb"}, BackchannelLogoutURI: "https://app.example/bcl?tenant=a", BackchannelLogoutSessionRequired: true}, code: accepted,
				check: func(t *testing.T, out *ClientMetadata, row *store.Client) {
					if row.BackchannelLogoutURI != "https://app.example/bcl?tenant=a" || !row.BackchannelLogoutSessionRequired ||
						out.BackchannelLogoutURI != row.BackchannelLogoutURI || !out.BackchannelLogoutSessionRequired {
						t.Errorf("stored %q %v, answered %q %v", row.BackchannelLogoutURI, row.BackchannelLogoutSessionRequired, out.BackchannelLogoutURI, out.BackchannelLogoutSessionRequired)
					}
				}},
			{name: "back-channel logout on loopback http", md: ClientMetadata{GrantTypes: cc, BackchannelLogoutURI: "http://127.0.0.1:9000/bcl"}, code: accepted,
				check: func(t *testing.T, out *ClientMetadata, row *store.Client) {
					if row.BackchannelLogoutURI != "http://127.0.0.1:9000/bcl" || row.BackchannelLogoutSessionRequired {
						t.Errorf("stored %q %v", row.BackchannelLogoutURI, row.BackchannelLogoutSessionRequired)
					}
				}},
			{name: "post-logout redirect", md: ClientMetadata{RedirectURIs: []string{"https://app.example/cb"}, PostLogoutRedirectURIs: []string{"https://app.example/bye", "https://app.example/bye"}}, code: accepted,
				check: func(t *testing.T, out *ClientMetadata, row *store.Client) {
					if !slices.Equal(row.PostLogoutRedirectURIs, []string{"https://app.example/bye"}) {
						t.Errorf("stored post-logout redirect URIs %q", row.PostLogoutRedirectURIs)
					}
				}},

			{name: "id_token alg none", md: ClientMetadata{GrantTypes: cc, IDTokenSignedResponseAlg: "none"}, code: badMetadata, why: "id_token_signed_response_alg"},
			{name: "id_token alg HS256", md: ClientMetadata{GrantTypes: cc, IDTokenSignedResponseAlg: "HS256"}, code: badMetadata, why: "id_token_signed_response_alg"},
			{name: "id_token alg lower case", md: ClientMetadata{GrantTypes: cc, IDTokenSignedResponseAlg: "rs256"}, code: badMetadata, why: "id_token_signed_response_alg"},
			{name: "id_token alg ES384", md: ClientMetadata{GrantTypes: cc, IDTokenSignedResponseAlg: "ES384"}, code: badMetadata, why: "id_token_signed_response_alg"},
			{name: "back-channel logout over http", md: ClientMetadata{GrantTypes: cc, BackchannelLogoutURI: "http://app.example/bcl"}, code: badMetadata, why: "https"},
			{name: "back-channel logout with fragment", md: ClientMetadata{GrantTypes: cc, BackchannelLogoutURI: "https://app.example/bcl#x"}, code: badMetadata, why: "fragment"},
			{name: "back-channel logout with empty fragment", md: ClientMetadata{GrantTypes: cc, BackchannelLogoutURI: "https://app.example/bcl#"}, code: badMetadata, why: "fragment"},
			{name: "back-channel logout relative", md: ClientMetadata{GrantTypes: cc, BackchannelLogoutURI: "/bcl"}, code: badMetadata, why: "absolute"},
			{name: "back-channel logout without host", md: ClientMetadata{GrantTypes: cc, BackchannelLogoutURI: "https:///bcl"}, code: badMetadata, why: "absolute"},
			{name: "back-channel logout with user info", md: ClientMetadata{GrantTypes: cc, BackchannelLogoutURI: "https://user:pw@app.example/bcl"}, code: badMetadata, why: "user information"},
			{name: "back-channel logout private-use scheme", md: ClientMetadata{GrantTypes: cc, BackchannelLogoutURI: "com.example.app://bcl"}, code: badMetadata, why: "https"},
			{name: "back-channel logout javascript", md: ClientMetadata{GrantTypes: cc, BackchannelLogoutURI: "javascript:alert(1)"}, code: badMetadata, why: "backchannel_logout_uri"},
			{name: "require PAR without the code flow", md: ClientMetadata{GrantTypes: cc, RequirePushedAuthorizationRequests: true}, code: badMetadata, why: "require_pushed_authorization_requests needs the authorization_code grant"},
			{name: "require PAR", md: ClientMetadata{TokenEndpointAuthMethod: AuthNone, RedirectURIs: []string{"https://app.example/cb"}, RequirePushedAuthorizationRequests: true}, code: accepted,
				check: func(t *testing.T, out *ClientMetadata, row *store.Client) {
					if !row.RequirePushedAuthorizationRequests || !out.RequirePushedAuthorizationRequests {
						t.Errorf("stored %v, answered %v; want require_pushed_authorization_requests kept", row.RequirePushedAuthorizationRequests, out.RequirePushedAuthorizationRequests)
					}
				}},
			{name: "session required without a URI", md: ClientMetadata{GrantTypes: cc, BackchannelLogoutSessionRequired: true}, code: badMetadata, why: "needs a backchannel_logout_uri"},
			{name: "post-logout redirect with fragment", md: ClientMetadata{RedirectURIs: []string{"https://app.example/cb"}, PostLogoutRedirectURIs: []string{"https://app.example/bye#x"}}, code: badRedirect, why: "post_logout_redirect_uris: redirect URI \"https://app.example/bye#x\" must not have a fragment"},
			{name: "post-logout redirect over http", md: ClientMetadata{RedirectURIs: []string{"https://app.example/cb"}, PostLogoutRedirectURIs: []string{"http://app.example/bye"}}, code: badRedirect, why: "post_logout_redirect_uris: redirect URI \"http://app.example/bye\" must use https"},
			{name: "post-logout redirect relative", md: ClientMetadata{RedirectURIs: []string{"https://app.example/cb"}, PostLogoutRedirectURIs: []string{"/bye"}}, code: badRedirect, why: "post_logout_redirect_uris: redirect URI \"/bye\" must be absolute"},
			{name: "post-logout redirect wildcard", md: ClientMetadata{RedirectURIs: []string{"https://app.example/cb"}, PostLogoutRedirectURIs: []string{"https://*.app.example/bye"}}, code: badRedirect, why: "post_logout_redirect_uris: redirect URI \"https://*.app.example/bye\": wildcards"},
			{name: "post-logout private-use scheme, confidential", md: ClientMetadata{RedirectURIs: []string{"https://app.example/cb"}, PostLogoutRedirectURIs: []string{"com.example.app:/bye"}}, code: badRedirect, why: "public native clients"},
			// A web app cannot receive a private-use scheme after logout
			// any more than after sign-in.
			{name: "post-logout private-use scheme, web", md: ClientMetadata{TokenEndpointAuthMethod: AuthNone, RedirectURIs: []string{"https://app.example/cb"}, PostLogoutRedirectURIs: []string{"com.example.app:/bye"}}, code: badRedirect, why: "application_type \"native\""},

			{name: "public with client_credentials", md: ClientMetadata{TokenEndpointAuthMethod: AuthNone, GrantTypes: cc}, code: badMetadata, why: "public client"},
			{name: "public with password", md: ClientMetadata{TokenEndpointAuthMethod: AuthNone, GrantTypes: []string{"password"}}, code: badMetadata, why: "public client"},
			{name: "unknown grant type", md: ClientMetadata{GrantTypes: []string{"implicit"}}, code: badMetadata, why: "grant type"},
			{name: "redirect with fragment", md: ClientMetadata{RedirectURIs: []string{"https://app.example/cb#frag"}}, code: badRedirect, why: "fragment"},
			{name: "redirect with empty fragment", md: ClientMetadata{RedirectURIs: []string{"https://app.example/cb#"}}, code: badRedirect, why: "fragment"},
			{name: "relative redirect", md: ClientMetadata{RedirectURIs: []string{"/cb"}}, code: badRedirect, why: "absolute"},
			{name: "http, not loopback", md: ClientMetadata{RedirectURIs: []string{"http://app.example/cb"}}, code: badRedirect, why: "https"},
			{name: "javascript scheme", md: ClientMetadata{TokenEndpointAuthMethod: AuthNone, RedirectURIs: []string{"javascript:alert(1)"}}, code: badRedirect, why: "scheme"},
			{name: "private-use scheme, confidential", md: ClientMetadata{RedirectURIs: []string{"com.example.app:/callback"}}, code: badRedirect, why: "public native clients"},
			{name: "authorization_code without redirect URIs", md: ClientMetadata{GrantTypes: []string{"authorization_code"}}, code: badRedirect, why: "redirect URI"},
			{name: "unknown auth method", md: ClientMetadata{TokenEndpointAuthMethod: "tls_client_auth", GrantTypes: cc}, code: badMetadata, why: "token_endpoint_auth_method"},
			{name: "response type token", md: ClientMetadata{ResponseTypes: []string{"token"}, RedirectURIs: []string{"https://app.example/cb"}}, code: badMetadata, why: "response type"},
			{name: "scope with a quote", md: ClientMetadata{GrantTypes: cc, Scope: `read "write"`}, code: badMetadata, why: "scope"},
			{name: "scope with a backslash", md: ClientMetadata{GrantTypes: cc, Scope: `read wr\ite`}, code: badMetadata, why: "scope"},
			{name: "private_key_jwt without jwks", md: ClientMetadata{TokenEndpointAuthMethod: AuthPrivateKeyJWT, GrantTypes: cc}, code: badMetadata, why: "exactly one of jwks and jwks_uri"},
			{name: "private_key_jwt with jwks null", md: ClientMetadata{TokenEndpointAuthMethod: AuthPrivateKeyJWT, GrantTypes: cc, JWKS: json.RawMessage("null")}, code: badMetadata, why: "exactly one of jwks and jwks_uri"},
			{name: "jwks with a private key", md: ClientMetadata{TokenEndpointAuthMethod: AuthPrivateKeyJWT, GrantTypes: cc, JWKS: privateJWKS}, code: badMetadata, why: "public keys only"},
			{name: "jwks on client_secret_basic", md: ClientMetadata{TokenEndpointAuthMethod: AuthSecretBasic, GrantTypes: cc, JWKS: publicJWKS}, code: badMetadata, why: "only used with"},
			{name: "client_id with a space", md: ClientMetadata{ClientID: "a b", GrantTypes: cc}, code: badMetadata, why: "client_id"},
			{name: "client_id with a slash", md: ClientMetadata{ClientID: "a/b", GrantTypes: cc}, code: badMetadata, why: "client_id"},
			{name: "client_id not ASCII", md: ClientMetadata{ClientID: "clïent", GrantTypes: cc}, code: badMetadata, why: "client_id"},
			{name: "client_id too long", md: ClientMetadata{ClientID: strings.Repeat("x", 129), GrantTypes: cc}, code: badMetadata, why: "client_id"},
			{name: "client_id a dot", md: ClientMetadata{ClientID: ".", GrantTypes: cc}, code: badMetadata, why: "client_id"},
			{name: "client_id two dots", md: ClientMetadata{ClientID: "..", GrantTypes: cc}, code: badMetadata, why: "client_id"},
			{name: "duplicate client_id", md: ClientMetadata{ClientID: "taken", GrantTypes: cc}, code: badMetadata, why: "already registered"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := countClients(t, st)
				out, err := svc.CreateClient(ctx, &tc.md)
				after := countClients(t, st)

				if tc.code != accepted {
					var me *MetadataError
					if !errors.As(err, &me) || me.Code != tc.code || !strings.Contains(me.Description, tc.why) {
						t.Errorf("got %v, want %s mentioning %q", err, tc.code, tc.why)
					}
					if after != before {
						t.Errorf("a refused registration was stored: %d clients, then %d", before, after)
					}
					return
				}

				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if after != before+1 {
					t.Errorf("%d clients, then %d", before, after)
				}
				if !generatedID.MatchString(out.ClientID) {
					t.Errorf("generated client_id %q", out.ClientID)
				}
				row := findClient(t, st, out.ClientID)
				// What GetClient shows later is what the registration
				// answered, minus the secret shown only once.
				got, err := svc.GetClient(ctx, out.ClientID)
				if err != nil {
					t.Fatal(err)
				}
				want := *out
				want.ClientSecret, want.ClientSecretExpiresAt = "", nil
				if d := got.ClientIDIssuedAt - want.ClientIDIssuedAt; d < -1 || d > 1 {
					t.Errorf("client_id_issued_at %d, then %d", want.ClientIDIssuedAt, got.ClientIDIssuedAt)
				}
				got.ClientIDIssuedAt = want.ClientIDIssuedAt
				if !reflect.DeepEqual(*got, want) {
					t.Errorf("GetClient\n%+v\nwant the registration answer\n%+v", *got, want)
				}
				if tc.check != nil {
					tc.check(t, out, row)
				}
			})
		}

		// The refused duplicate left the first registration as it was.
		if err := h.Compare(ctx, findClient(t, st, "taken").SecretHash, []byte(taken.ClientSecret)); err != nil {
			t.Errorf("the refused duplicate changed the first client's secret: %v", err)
		}
	})
}

// A confidential client's secret is shown once and stored only as an HMAC;
// a public client has none; reading a client never shows it.
func TestClientSecretIssued(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		svc, st, h := service(t, b)
		ctx := context.Background()
		conf, err := svc.CreateClient(ctx, &ClientMetadata{
			GrantTypes: []string{"client_credentials"},
			// A secret in the body is not the client's to choose.
			ClientSecret: "chosen-by-the-caller",
		})
		if err != nil {
			t.Fatal(err)
		}
		wantSecret(t, conf)
		if conf.ClientSecret == "chosen-by-the-caller" {
			t.Fatal("the secret from the request body was kept")
		}
		row := findClient(t, st, conf.ClientID)
		if len(row.SecretHash) == 0 || strings.Contains(string(row.SecretHash), conf.ClientSecret) {
			t.Fatalf("stored secret hash %x holds the secret or nothing", row.SecretHash)
		}
		if err := h.Compare(ctx, row.SecretHash, []byte(conf.ClientSecret)); err != nil {
			t.Fatalf("the stored hash does not verify the issued secret: %v", err)
		}
		for _, wrong := range []string{"chosen-by-the-caller", "", conf.ClientSecret[:len(conf.ClientSecret)-1]} {
			if h.Compare(ctx, row.SecretHash, []byte(wrong)) == nil {
				t.Errorf("the stored hash verifies %q", wrong)
			}
		}

		other, err := svc.CreateClient(ctx, &ClientMetadata{GrantTypes: []string{"client_credentials"}})
		if err != nil {
			t.Fatal(err)
		}
		if other.ClientSecret == conf.ClientSecret {
			t.Fatal("two clients were issued the same secret")
		}

		pub, err := svc.CreateClient(ctx, &ClientMetadata{TokenEndpointAuthMethod: AuthNone, RedirectURIs: []string{"https://app.example/cb"}})
		if err != nil {
			t.Fatal(err)
		}
		if pub.ClientSecret != "" || pub.ClientSecretExpiresAt != nil {
			t.Errorf("a public client was issued secret %q (expires %v)", pub.ClientSecret, pub.ClientSecretExpiresAt)
		}
		if hash := findClient(t, st, pub.ClientID).SecretHash; len(hash) != 0 {
			t.Errorf("a public client has secret hash %x", hash)
		}

		for _, id := range []string{conf.ClientID, pub.ClientID} {
			got, err := svc.GetClient(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			wantNoSecret(t, "GetClient", got)
		}
		list, err := svc.ListClients(ctx)
		if err != nil || len(list) != 3 {
			t.Fatalf("ListClients: %d clients, %v", len(list), err)
		}
		wantNoSecret(t, "ListClients", list)

		if _, err := svc.GetClient(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetClient of an unknown client: %v, want ErrNotFound", err)
		}
	})
}

// Rotation issues a new secret, shown once, and the old one stops working
// at once; a public client has nothing to rotate.
func TestRotateSecret(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		svc, st, h := service(t, b)
		ctx := context.Background()
		orig, err := svc.CreateClient(ctx, &ClientMetadata{ClientName: "svc", GrantTypes: []string{"client_credentials"}, Scope: "read"})
		if err != nil {
			t.Fatal(err)
		}

		rotated, err := svc.RotateSecret(ctx, orig.ClientID)
		if err != nil {
			t.Fatal(err)
		}
		wantSecret(t, rotated)
		if rotated.ClientSecret == orig.ClientSecret {
			t.Fatal("rotation answered the old secret")
		}
		if rotated.ClientID != orig.ClientID || rotated.ClientName != "svc" || rotated.Scope != "read" {
			t.Errorf("rotation answered another client's metadata: %+v", rotated)
		}
		row := findClient(t, st, orig.ClientID)
		if err := h.Compare(ctx, row.SecretHash, []byte(orig.ClientSecret)); err == nil {
			t.Error("the old secret still verifies after rotation")
		}
		if err := h.Compare(ctx, row.SecretHash, []byte(rotated.ClientSecret)); err != nil {
			t.Errorf("the new secret does not verify: %v", err)
		}
		if row.Name != "svc" || !slices.Equal(row.Scopes, []string{"read"}) {
			t.Errorf("rotation changed the metadata: %+v", row)
		}

		pub, err := svc.CreateClient(ctx, &ClientMetadata{TokenEndpointAuthMethod: AuthNone, RedirectURIs: []string{"https://app.example/cb"}})
		if err != nil {
			t.Fatal(err)
		}
		if out, err := svc.RotateSecret(ctx, pub.ClientID); !errors.Is(err, ErrPublicClient) || out != nil {
			t.Errorf("rotating a public client's secret: %v, %v; want ErrPublicClient", out, err)
		}
		if hash := findClient(t, st, pub.ClientID).SecretHash; len(hash) != 0 {
			t.Errorf("a refused rotation gave a public client hash %x", hash)
		}
		if _, err := svc.RotateSecret(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("rotating an unknown client's secret: %v, want ErrNotFound", err)
		}
		if n := countClients(t, st); n != 2 {
			t.Errorf("%d clients after rotating an unknown one, want 2", n)
		}
	})
}

// PUT keeps a confidential client's secret, issues one to a client that
// becomes confidential and drops it from one that becomes public.
func TestReplaceClientSecrets(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		svc, st, h := service(t, b)
		ctx := context.Background()
		cc := []string{"client_credentials"}
		spa := func() *ClientMetadata {
			return &ClientMetadata{TokenEndpointAuthMethod: AuthNone, RedirectURIs: []string{"https://app.example/cb"}}
		}

		conf, err := svc.CreateClient(ctx, &ClientMetadata{GrantTypes: cc, Trusted: true})
		if err != nil {
			t.Fatal(err)
		}
		before := findClient(t, st, conf.ClientID)

		t.Run("confidential stays confidential", func(t *testing.T) {
			out, err := svc.ReplaceClient(ctx, conf.ClientID, &ClientMetadata{ClientName: "renamed", GrantTypes: cc, TokenEndpointAuthMethod: AuthSecretPost})
			if err != nil {
				t.Fatal(err)
			}
			if out.ClientSecret != "" || out.ClientSecretExpiresAt != nil {
				t.Errorf("PUT showed a secret: %q", out.ClientSecret)
			}
			row := findClient(t, st, conf.ClientID)
			if string(row.SecretHash) != string(before.SecretHash) || h.Compare(ctx, row.SecretHash, []byte(conf.ClientSecret)) != nil {
				t.Error("PUT changed a confidential client's secret")
			}
			// A PUT replaces: trusted, left out, is false now.
			if row.Name != "renamed" || row.TokenEndpointAuthMethod != AuthSecretPost || row.Trusted || out.Trusted {
				t.Errorf("stored %+v after PUT", row)
			}
			if out.ClientIDIssuedAt != conf.ClientIDIssuedAt {
				t.Errorf("client_id_issued_at %d became %d", conf.ClientIDIssuedAt, out.ClientIDIssuedAt)
			}
		})

		t.Run("confidential becomes public", func(t *testing.T) {
			out, err := svc.ReplaceClient(ctx, conf.ClientID, spa())
			if err != nil {
				t.Fatal(err)
			}
			row := findClient(t, st, conf.ClientID)
			if !row.Public || len(row.SecretHash) != 0 || out.ClientSecret != "" {
				t.Errorf("public %v, hash %x, answered secret %q", row.Public, row.SecretHash, out.ClientSecret)
			}
			if h.Compare(ctx, row.SecretHash, []byte(conf.ClientSecret)) == nil {
				t.Error("the old secret still verifies")
			}
		})

		t.Run("public becomes confidential", func(t *testing.T) {
			out, err := svc.ReplaceClient(ctx, conf.ClientID, &ClientMetadata{GrantTypes: cc})
			if err != nil {
				t.Fatal(err)
			}
			wantSecret(t, out)
			if out.ClientSecret == conf.ClientSecret {
				t.Error("the secret dropped when the client became public came back")
			}
			row := findClient(t, st, conf.ClientID)
			if row.Public || h.Compare(ctx, row.SecretHash, []byte(out.ClientSecret)) != nil {
				t.Errorf("public %v; the issued secret does not verify", row.Public)
			}
			got, err := svc.GetClient(ctx, conf.ClientID)
			if err != nil {
				t.Fatal(err)
			}
			wantNoSecret(t, "GetClient after PUT", got)
		})

		t.Run("client_id differs from the path", func(t *testing.T) {
			before := findClient(t, st, conf.ClientID)
			_, err := svc.ReplaceClient(ctx, conf.ClientID, &ClientMetadata{ClientID: "other", ClientName: "hijack", GrantTypes: cc})
			var me *MetadataError
			if !errors.As(err, &me) || me.Code != badMetadata {
				t.Errorf("got %v, want invalid_client_metadata", err)
			}
			if after := findClient(t, st, conf.ClientID); after.Name != before.Name || string(after.SecretHash) != string(before.SecretHash) {
				t.Error("a refused PUT changed the client")
			}
			if _, err := st.FindClient(ctx, "other"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("a refused PUT made client %q: %v", "other", err)
			}
		})

		t.Run("invalid metadata", func(t *testing.T) {
			before := findClient(t, st, conf.ClientID)
			_, err := svc.ReplaceClient(ctx, conf.ClientID, &ClientMetadata{TokenEndpointAuthMethod: AuthNone, GrantTypes: cc})
			var me *MetadataError
			if !errors.As(err, &me) || me.Code != badMetadata {
				t.Errorf("got %v, want invalid_client_metadata", err)
			}
			if after := findClient(t, st, conf.ClientID); after.Public || string(after.SecretHash) != string(before.SecretHash) {
				t.Error("a refused PUT changed the client")
			}
		})

		t.Run("unknown client", func(t *testing.T) {
			if _, err := svc.ReplaceClient(ctx, "nobody", &ClientMetadata{GrantTypes: cc}); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("got %v, want ErrNotFound", err)
			}
			if n := countClients(t, st); n != 1 {
				t.Errorf("%d clients after replacing an unknown one, want 1", n)
			}
		})
	})
}
