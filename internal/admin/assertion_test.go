package admin

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// jwksJSON is a JWK Set of the public halves of keys, with alg and use as
// given ("" leaves them out).
func jwksJSON(t *testing.T, alg, use string, pubs ...any) json.RawMessage {
	t.Helper()
	set := jose.JSONWebKeySet{}
	for i, k := range pubs {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k, KeyID: "k" + string(rune('1'+i)), Algorithm: alg, Use: use})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// token_endpoint_auth_signing_alg (RFC 7591 §2) is checked against the
// registered keys, and private_key_jwt clients never get a client_secret.
func TestPrivateKeyJWTRegistration(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		svc, st, _ := service(t, b)
		ctx := context.Background()
		cc := []string{"client_credentials"}
		ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
		rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
		ed, _, _ := ed25519.GenerateKey(rand.Reader)
		pkj := func(jwks json.RawMessage, alg string) ClientMetadata {
			return ClientMetadata{TokenEndpointAuthMethod: AuthPrivateKeyJWT, GrantTypes: cc, JWKS: jwks, TokenEndpointAuthSigningAlg: alg}
		}
		cases := []struct {
			name string
			md   ClientMetadata
			why  string // "" when accepted
		}{
			{"EC key, no alg", pkj(jwksJSON(t, "", "", &ec.PublicKey), ""), ""},
			{"EC key, ES256", pkj(jwksJSON(t, "", "", &ec.PublicKey), "ES256"), ""},
			{"RSA key, PS256", pkj(jwksJSON(t, "", "", &rsa2048.PublicKey), "PS256"), ""},
			{"Ed25519 key, EdDSA", pkj(jwksJSON(t, "EdDSA", "sig", ed), "EdDSA"), ""},
			{"two keys, one fits", pkj(jwksJSON(t, "", "", &ec.PublicKey, &rsa2048.PublicKey), "RS256"), ""},
			{"jwks_uri with alg", ClientMetadata{TokenEndpointAuthMethod: AuthPrivateKeyJWT, GrantTypes: cc, JWKSURI: "https://keys.example/jwks", TokenEndpointAuthSigningAlg: "ES256"}, ""},

			{"HS256", pkj(jwksJSON(t, "", "", &ec.PublicKey), "HS256"), "token_endpoint_auth_signing_alg"},
			{"none", pkj(jwksJSON(t, "", "", &ec.PublicKey), "none"), "token_endpoint_auth_signing_alg"},
			{"ES256 with an RSA key", pkj(jwksJSON(t, "", "", &rsa2048.PublicKey), "ES256"), "no signature key for"},
			{"ES256 with a P-384 key", pkj(jwksJSON(t, "", "", &p384.PublicKey), "ES256"), "no signature key for"},
			{"key says another alg", pkj(jwksJSON(t, "ES384", "", &ec.PublicKey), ""), "does not fit"},
			{"alg differs from the key's", pkj(jwksJSON(t, "RS256", "", &rsa2048.PublicKey), "PS256"), "no signature key for"},
			{"short RSA key", pkj(jwksJSON(t, "", "", &rsa1024.PublicKey), ""), "2048 bits"},
			{"only an encryption key", pkj(jwksJSON(t, "", "enc", &ec.PublicKey), ""), "no signature key"},
			{"alg on a secret client", ClientMetadata{GrantTypes: cc, TokenEndpointAuthSigningAlg: "ES256"}, "only used with"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := countClients(t, st)
				md := tc.md
				out, err := svc.CreateClient(ctx, &md)
				if tc.why != "" {
					var me *MetadataError
					if !errors.As(err, &me) || me.Code != badMetadata || !strings.Contains(me.Description, tc.why) {
						t.Fatalf("got %v, want invalid_client_metadata mentioning %q", err, tc.why)
					}
					if countClients(t, st) != before {
						t.Error("a refused registration was stored")
					}
					return
				}
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				row, err := st.FindClient(ctx, out.ClientID)
				if err != nil {
					t.Fatal(err)
				}
				if out.ClientSecret != "" || out.ClientSecretExpiresAt != nil || len(row.SecretHash) != 0 {
					t.Errorf("a private_key_jwt client got a secret: %q, hash %x", out.ClientSecret, row.SecretHash)
				}
				if row.TokenEndpointAuthSigningAlg != tc.md.TokenEndpointAuthSigningAlg || out.TokenEndpointAuthSigningAlg != tc.md.TokenEndpointAuthSigningAlg ||
					row.GetTokenEndpointAuthSigningAlgorithm() != tc.md.TokenEndpointAuthSigningAlg {
					t.Errorf("alg stored %q, answered %q", row.TokenEndpointAuthSigningAlg, out.TokenEndpointAuthSigningAlg)
				}
			})
		}

		t.Run("secret follows the method", func(t *testing.T) {
			secretMD := ClientMetadata{GrantTypes: cc}
			out, err := svc.CreateClient(ctx, &secretMD)
			if err != nil || out.ClientSecret == "" {
				t.Fatalf("secret client: %v %+v", err, out)
			}
			id := out.ClientID
			keyMD := pkj(jwksJSON(t, "", "", &ec.PublicKey), "ES256")
			if out, err = svc.ReplaceClient(ctx, id, &keyMD); err != nil || out.ClientSecret != "" {
				t.Fatalf("to private_key_jwt: %v %+v", err, out)
			}
			if row, _ := st.FindClient(ctx, id); len(row.SecretHash) != 0 || row.TokenEndpointAuthSigningAlg != "ES256" {
				t.Fatalf("after the switch: hash %x, alg %q", row.SecretHash, row.TokenEndpointAuthSigningAlg)
			}
			if _, err := svc.RotateSecret(ctx, id); !errors.Is(err, ErrPublicClient) {
				t.Fatalf("rotating a private_key_jwt client's secret: %v", err)
			}
			back := ClientMetadata{GrantTypes: cc}
			if out, err = svc.ReplaceClient(ctx, id, &back); err != nil || out.ClientSecret == "" {
				t.Fatalf("back to a secret: %v %+v", err, out)
			}
			if row, _ := st.FindClient(ctx, id); row.TokenEndpointAuthSigningAlg != "" {
				t.Errorf("the alg outlived private_key_jwt: %q", row.TokenEndpointAuthSigningAlg)
			}
		})
	})
}
