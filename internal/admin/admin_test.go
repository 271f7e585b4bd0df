package admin

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

func service(t *testing.T, b storetest.Backend) (*Service, *store.Store, *secrets.ClientSecretHasher) {
	st := storetest.New(t, b)
	h, _ := secrets.NewClientSecretHasher(secrets.ParseSystemSecrets("admin-test-secret-0123456789-0123456789"))
	return NewService(st, h), st, h
}

func jwks(t *testing.T, private bool) json.RawMessage {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var key any = k.Public()
	if private {
		key = k
	}
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	return b
}

// The registration rules of the contract and RFC 7591, each with its error
// code; a refused registration stores nothing.
func TestRegistrationRules(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		svc, st, _ := service(t, b)
		ctx := context.Background()
		cases := []struct {
			name string
			md   ClientMetadata
			code string // "" = accepted
		}{
			{"service", ClientMetadata{GrantTypes: []string{"client_credentials"}, Scope: "read write"}, ""},
			{"spa", ClientMetadata{TokenEndpointAuthMethod: "none", GrantTypes: []string{"authorization_code", "refresh_token"}, RedirectURIs: []string{"https://app.example/cb"}}, ""},
			{"loopback", ClientMetadata{TokenEndpointAuthMethod: "none", RedirectURIs: []string{"http://127.0.0.1:8080/cb", "http://[::1]/cb"}}, ""},
			{"native scheme", ClientMetadata{TokenEndpointAuthMethod: "none", RedirectURIs: []string{"com.example.app:/callback"}}, ""},
			{"private_key_jwt", ClientMetadata{TokenEndpointAuthMethod: "private_key_jwt", GrantTypes: []string{"client_credentials"}, JWKS: jwks(t, false)}, ""},
			{"public with client_credentials", ClientMetadata{TokenEndpointAuthMethod: "none", GrantTypes: []string{"client_credentials"}}, "invalid_client_metadata"},
			{"public with password", ClientMetadata{TokenEndpointAuthMethod: "none", GrantTypes: []string{"password"}}, "invalid_client_metadata"},
			{"unknown grant", ClientMetadata{GrantTypes: []string{"implicit"}}, "invalid_client_metadata"},
			{"unknown auth method", ClientMetadata{TokenEndpointAuthMethod: "tls_client_auth", GrantTypes: []string{"client_credentials"}}, "invalid_client_metadata"},
			{"token response type", ClientMetadata{ResponseTypes: []string{"token"}, RedirectURIs: []string{"https://a/cb"}}, "invalid_client_metadata"},
			{"fragment", ClientMetadata{RedirectURIs: []string{"https://app.example/cb#x"}}, "invalid_redirect_uri"},
			{"relative", ClientMetadata{RedirectURIs: []string{"/cb"}}, "invalid_redirect_uri"},
			{"plain http", ClientMetadata{RedirectURIs: []string{"http://app.example/cb"}}, "invalid_redirect_uri"},
			{"javascript", ClientMetadata{TokenEndpointAuthMethod: "none", RedirectURIs: []string{"javascript:alert(1)"}}, "invalid_redirect_uri"},
			{"native scheme, confidential", ClientMetadata{RedirectURIs: []string{"com.example.app:/callback"}}, "invalid_redirect_uri"},
			{"code without redirect", ClientMetadata{GrantTypes: []string{"authorization_code"}}, "invalid_redirect_uri"},
			{"scope quote", ClientMetadata{GrantTypes: []string{"client_credentials"}, Scope: `read "x"`}, "invalid_client_metadata"},
			{"jwks missing", ClientMetadata{TokenEndpointAuthMethod: "private_key_jwt", GrantTypes: []string{"client_credentials"}}, "invalid_client_metadata"},
			{"jwks private", ClientMetadata{TokenEndpointAuthMethod: "private_key_jwt", GrantTypes: []string{"client_credentials"}, JWKS: jwks(t, true)}, "invalid_client_metadata"},
			{"jwks on secret client", ClientMetadata{GrantTypes: []string{"client_credentials"}, JWKS: jwks(t, false)}, "invalid_client_metadata"},
			{"bad client id", ClientMetadata{ClientID: "a b", GrantTypes: []string{"client_credentials"}}, "invalid_client_metadata"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before, _ := st.ListClients(ctx)
				out, err := svc.CreateClient(ctx, &tc.md)
				after, _ := st.ListClients(ctx)
				if tc.code == "" {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					if out.ClientID == "" {
						t.Fatal("no client_id")
					}
					return
				}
				var me *MetadataError
				if !errors.As(err, &me) || me.Code != tc.code {
					t.Fatalf("got %v, want %s", err, tc.code)
				}
				if len(after) != len(before) {
					t.Fatal("a refused registration was stored")
				}
			})
		}
		dup := ClientMetadata{ClientID: "dup", GrantTypes: []string{"client_credentials"}}
		if _, err := svc.CreateClient(ctx, &dup); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.CreateClient(ctx, &dup); err == nil {
			t.Fatal("a duplicate client_id was accepted")
		}
	})
}

// Secrets: 256 bits, shown once, stored only as an HMAC, replaced by
// rotation, kept or issued or dropped as a client changes type.
func TestSecrets(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		svc, st, h := service(t, b)
		ctx := context.Background()
		out, err := svc.CreateClient(ctx, &ClientMetadata{GrantTypes: []string{"client_credentials"}})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.RawURLEncoding.DecodeString(out.ClientSecret)
		if err != nil || len(raw) != 32 || out.ClientSecretExpiresAt == nil || *out.ClientSecretExpiresAt != 0 {
			t.Fatalf("secret %q", out.ClientSecret)
		}
		row, _ := st.FindClient(ctx, out.ClientID)
		if string(row.SecretHash) == out.ClientSecret || h.Compare(ctx, row.SecretHash, []byte(out.ClientSecret)) != nil {
			t.Fatal("the stored hash does not verify the secret, or is the secret")
		}
		if got, _ := svc.GetClient(ctx, out.ClientID); got.ClientSecret != "" {
			t.Fatal("GetClient showed the secret again")
		}

		rotated, err := svc.RotateSecret(ctx, out.ClientID)
		if err != nil || rotated.ClientSecret == out.ClientSecret {
			t.Fatalf("rotate: %v", err)
		}
		row, _ = st.FindClient(ctx, out.ClientID)
		if h.Compare(ctx, row.SecretHash, []byte(out.ClientSecret)) == nil || h.Compare(ctx, row.SecretHash, []byte(rotated.ClientSecret)) != nil {
			t.Fatal("after rotation the old secret works or the new one does not")
		}

		// PUT keeps the secret of a confidential client.
		if _, err := svc.ReplaceClient(ctx, out.ClientID, &ClientMetadata{ClientName: "renamed", GrantTypes: []string{"client_credentials"}}); err != nil {
			t.Fatal(err)
		}
		if again, _ := st.FindClient(ctx, out.ClientID); string(again.SecretHash) != string(row.SecretHash) || again.Name != "renamed" {
			t.Fatal("PUT lost the secret or the change")
		}
		if _, err := svc.ReplaceClient(ctx, out.ClientID, &ClientMetadata{ClientID: "other"}); err == nil {
			t.Fatal("a body client_id differing from the path was accepted")
		}

		pub, _ := svc.CreateClient(ctx, &ClientMetadata{TokenEndpointAuthMethod: "none", RedirectURIs: []string{"https://a/cb"}})
		if pub.ClientSecret != "" {
			t.Fatal("a public client got a secret")
		}
		if _, err := svc.RotateSecret(ctx, pub.ClientID); !errors.Is(err, ErrPublicClient) {
			t.Fatalf("rotating a public client's secret: %v", err)
		}
		conf, err := svc.ReplaceClient(ctx, pub.ClientID, &ClientMetadata{GrantTypes: []string{"client_credentials"}})
		if err != nil || conf.ClientSecret == "" {
			t.Fatalf("a public client turned confidential got no secret: %v", err)
		}
		back, _ := svc.ReplaceClient(ctx, pub.ClientID, &ClientMetadata{TokenEndpointAuthMethod: "none", RedirectURIs: []string{"https://a/cb"}})
		if row, _ := st.FindClient(ctx, pub.ClientID); len(row.SecretHash) != 0 || back.ClientSecret != "" {
			t.Fatal("a client turned public kept its secret")
		}
	})
}
