package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

// keys rotate --now, keys revoke and keys import from the shell: the
// emergency key signs at once, a revoked signing key is replaced, an
// unknown kid and a public key are refused, and the imported private key is
// never printed.
func TestKeysEmergencyCommands(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		environ := migrated(t, b)
		mustSucceed(t, latchkey(t, environ, "", "keys", "list"))

		rotated := decode[map[string]any](t, mustSucceed(t, latchkey(t, environ, "", "keys", "rotate", "--now")))
		if rotated["state"] != "active" || rotated["alg"] != "ES256" {
			t.Fatalf("keys rotate --now: %v", rotated)
		}
		kid := rotated["kid"].(string)

		rev := decode[map[string]map[string]any](t, mustSucceed(t, latchkey(t, environ, "", "keys", "revoke", "--", kid)))
		if rev["revoked"]["kid"] != kid || rev["replaced_by"]["state"] != "active" || rev["replaced_by"]["kid"] == kid {
			t.Fatalf("keys revoke: %v", rev)
		}
		list := mustSucceed(t, latchkey(t, environ, "", "keys", "list")).stdout
		if strings.Contains(list, kid) {
			t.Fatalf("the revoked key is still listed: %s", list)
		}
		mustFail(t, latchkey(t, environ, "", "keys", "revoke", "--", kid), "no signing key with that kid")
		// One kid in 64 starts with "-"; pasted bare, it gets a way out.
		mustFail(t, latchkey(t, environ, "", "keys", "revoke", "-BCQTHXZ8P5wbg"), `latchkey keys revoke -- -BCQTHXZ8P5wbg`)

		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		r := mustSucceed(t, latchkey(t, environ, keyPEM, "keys", "import", "--kid", "hsm-1", "--now", "-"))
		imported := decode[map[string]any](t, r)
		if imported["kid"] != "hsm-1" || imported["state"] != "active" || imported["alg"] != "ES256" {
			t.Fatalf("keys import: %v", imported)
		}
		body := strings.Split(keyPEM, "\n")[1]
		if strings.Contains(r.stdout+r.stderr, body) {
			t.Fatal("keys import printed the private key")
		}

		pubDER, _ := x509.MarshalPKIXPublicKey(k.Public())
		file := filepath.Join(t.TempDir(), "pub.pem")
		if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600); err != nil {
			t.Fatal(err)
		}
		mustFail(t, latchkey(t, environ, "", "keys", "import", file), "not a private key")
		mustFail(t, latchkey(t, environ, "", "keys", "import", "--alg", "RS256", "-"), "no PEM block")
	})
}
