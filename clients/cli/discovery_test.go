package cli_test

import (
	"strings"
	"testing"
)

// Metadata that names another issuer is someone else's (OpenID Connect
// Discovery §4.3): lkcli sends nobody there.
func TestDiscoveryChecksIssuer(t *testing.T) {
	f := newFakeDeviceServer(t)
	r := f.app(tokensPath(t))
	issuer := strings.Replace(f.URL, "127.0.0.1", "localhost", 1) // the same server under another name
	if c := <-r.main("login", "--device", "--issuer", issuer, "--client-id", "lkcli"); c == 0 ||
		!strings.Contains(r.errOut.String(), "says its issuer is") {
		t.Fatalf("exit %d:\n%s", c, r.errOut)
	}
	if strings.Contains(r.errOut.String(), "enter the code") {
		t.Fatal("lkcli started a login at a server that is not the issuer")
	}
}
