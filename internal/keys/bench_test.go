package keys_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// Signing is the one unavoidable cost of a client-credentials token.
func BenchmarkSign(b *testing.B) {
	for _, alg := range []string{"ES256", "RS256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			st := storetest.New(b, storetest.Backends()[0])
			m, err := keys.New(context.Background(), st, secret, options(&clock{now: time.Now()}, alg))
			if err != nil {
				b.Fatal(err)
			}
			k, _ := m.Current()
			payload := []byte(`{"iss":"https://auth.example","sub":"svc","aud":"https://api.example","exp":1900000000,"iat":1800000000,"jti":"abc","client_id":"svc","scope":"read","gid":"g"}`)
			b.ReportAllocs()
			for b.Loop() {
				jws, err := k.Signer.Sign(payload)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := jws.CompactSerialize(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Verification is what resource servers and introspection pay per token.
func BenchmarkVerify(b *testing.B) {
	st := storetest.New(b, storetest.Backends()[0])
	m, _ := keys.New(context.Background(), st, secret, options(&clock{now: time.Now()}, "ES256"))
	k, _ := m.Current()
	tok, _ := jwt.Signed(k.Signer).Claims(jwt.Claims{Subject: "s"}).Serialize()
	b.ReportAllocs()
	for b.Loop() {
		parsed, err := jwt.ParseSigned(tok, keys.Algorithms)
		if err != nil {
			b.Fatal(err)
		}
		var c jwt.Claims
		if err := parsed.Claims(k.Public.Key, &c); err != nil {
			b.Fatal(err)
		}
	}
}
