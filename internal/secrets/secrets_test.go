package secrets_test

import (
	"context"
	"encoding/base64"
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/secrets"
)

const systemSecret = "a-system-secret-of-at-least-32-bytes!!"

func TestDeriveKey(t *testing.T) {
	a, err := secrets.DeriveKey([]byte(systemSecret), secrets.PurposeTokenHMAC)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := secrets.DeriveKey([]byte(systemSecret), secrets.PurposeClientSecret)
	again, _ := secrets.DeriveKey([]byte(systemSecret), secrets.PurposeTokenHMAC)
	if len(a) != 32 || string(a) == string(b) || string(a) != string(again) {
		t.Fatal("keys must be 32 bytes, stable, and differ by purpose")
	}
	if _, err := secrets.DeriveKey([]byte("short"), secrets.PurposeTokenHMAC); err == nil {
		t.Fatal("a short system secret was accepted")
	}
}

func TestClientSecret(t *testing.T) {
	s, err := secrets.NewClientSecret()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) != 32 {
		t.Fatalf("secret %q carries %d bytes, want 32 (256 bits)", s, len(raw))
	}
	other, _ := secrets.NewClientSecret()
	if other == s {
		t.Fatal("two secrets are equal")
	}
}

func TestClientSecretHasher(t *testing.T) {
	ctx := context.Background()
	h, err := secrets.NewClientSecretHasher(secrets.ParseSystemSecrets(systemSecret))
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := h.Hash(ctx, []byte("s3cret"))
	if strings.Contains(string(hash), "s3cret") {
		t.Fatal("the hash contains the secret")
	}
	if err := h.Compare(ctx, hash, []byte("s3cret")); err != nil {
		t.Fatalf("right secret: %v", err)
	}
	for name, tc := range map[string]struct{ hash, secret []byte }{
		"wrong secret":     {hash, []byte("s3creT")},
		"prefix":           {hash, []byte("s3cre")},
		"empty secret":     {hash, nil},
		"empty hash":       {nil, []byte("")},
		"truncated hash":   {hash[:16], []byte("s3cret")},
		"public no secret": {nil, nil},
	} {
		if err := h.Compare(ctx, tc.hash, tc.secret); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Another system secret gives another hash: a stolen table is useless
	// without LATCHKEY_SECRET.
	h2, _ := secrets.NewClientSecretHasher(secrets.ParseSystemSecrets(systemSecret + "x"))
	if err := h2.Compare(ctx, hash, []byte("s3cret")); err == nil {
		t.Fatal("a hash verified under another system secret")
	}
}

// Timing is too noisy to measure on shared machines, so the constant-time
// property is pinned in the source: each secret comparison must call a
// constant-time primitive and none of the early-returning ones.
func TestComparisonsAreConstantTime(t *testing.T) {
	for _, fn := range []struct{ file, name string }{
		{"secrets.go", "Compare"},
		{"password.go", "VerifyPassword"},
	} {
		calls := callsIn(t, fn.file, fn.name)
		if !calls["hmac.Equal"] && !calls["subtle.ConstantTimeCompare"] {
			t.Errorf("%s does not compare in constant time", fn.name)
		}
		for _, bad := range []string{"bytes.Equal", "bytes.Compare", "reflect.DeepEqual", "strings.EqualFold"} {
			if calls[bad] {
				t.Errorf("%s calls %s, which returns at the first difference", fn.name, bad)
			}
		}
	}
}

// callsIn lists the package-qualified calls made in a function's body.
func callsIn(t *testing.T, file, fn string) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]bool{}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Name.Name != fn {
			continue
		}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok {
					calls[id.Name+"."+sel.Sel.Name] = true
				}
			}
			return true
		})
		return calls
	}
	t.Fatalf("function %s not found in %s", fn, file)
	return nil
}

func TestClientSecretCompareOneByteOff(t *testing.T) {
	ctx := context.Background()
	h, _ := secrets.NewClientSecretHasher(secrets.ParseSystemSecrets(systemSecret))
	hash, _ := h.Hash(ctx, []byte("secret"))
	first := append([]byte{hash[0] ^ 1}, hash[1:]...)
	last := append(append([]byte{}, hash[:len(hash)-1]...), hash[len(hash)-1]^1)
	for _, bad := range [][]byte{first, last} {
		if err := h.Compare(ctx, bad, []byte("secret")); err == nil {
			t.Fatal("a hash differing in one byte matched")
		}
	}
}

func TestPasswordHash(t *testing.T) {
	p := secrets.Argon2Params{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}
	enc, err := secrets.HashPassword("correct horse", p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=1024,t=1,p=1$") {
		t.Fatalf("hash %q does not carry its parameters", enc)
	}
	if ok, err := secrets.VerifyPassword(enc, "correct horse"); err != nil || !ok {
		t.Fatalf("right password: %v %v", ok, err)
	}
	if ok, _ := secrets.VerifyPassword(enc, "wrong"); ok {
		t.Fatal("wrong password accepted")
	}
	again, _ := secrets.HashPassword("correct horse", p)
	if again == enc {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	// Raising the parameters later leaves old hashes verifiable.
	stronger, _ := secrets.HashPassword("correct horse", secrets.DefaultArgon2Params)
	if ok, _ := secrets.VerifyPassword(stronger, "correct horse"); !ok {
		t.Fatal("default parameters do not verify")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$AAAA$AAAA", "$argon2id$v=18$m=1,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=x$AAAA$AAAA", "plain"} {
		if _, err := secrets.VerifyPassword(bad, "x"); err == nil {
			t.Errorf("malformed hash %q accepted", bad)
		}
	}
}
