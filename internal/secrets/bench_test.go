package secrets_test

import (
	"context"
	"testing"

	"github.com/latchkey/latchkey/internal/secrets"
)

// The client-secret check runs on every token request; argon2id runs on
// every sign-in. Their ratio is why client secrets are not password-hashed.
func BenchmarkClientSecretCompare(b *testing.B) {
	ctx := context.Background()
	h, _ := secrets.NewClientSecretHasher(secrets.ParseSystemSecrets(systemSecret))
	secret, _ := secrets.NewClientSecret()
	hash, _ := h.Hash(ctx, []byte(secret))
	b.ReportAllocs()
	for b.Loop() {
		if err := h.Compare(ctx, hash, []byte(secret)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPasswordVerifyArgon2id(b *testing.B) {
	hash, _ := secrets.HashPassword("correct horse battery staple", secrets.DefaultArgon2Params)
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := secrets.VerifyPassword(hash, "correct horse battery staple"); !ok {
			b.Fatal("mismatch")
		}
	}
}

func BenchmarkSignatureKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = secrets.SignatureKey("kLm0lNuR5bE4Zc9yX2qW8vT1sA6dF3gH7jK0pO4iU2y")
	}
}
