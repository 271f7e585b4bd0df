package cli_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

const deviceGrant = "urn:ietf:params:oauth:grant-type:device_code"

// deviceEndpoint reports whether issuer advertises RFC 8628.
func deviceEndpoint(t *testing.T, issuer string) bool {
	resp, err := http.Get(issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		Device string `json:"device_authorization_endpoint"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return m.Device != ""
}

// lkcli login --device against a real Latchkey: the person types the
// printed code at the printed verification URI (signing in there first)
// and allows; lkcli gets tokens that work and that logout revokes. Then a
// second login, approved through verification_uri_complete, is denied.
func TestDeviceLoginEndToEnd(t *testing.T) {
	e := start(t)
	if !deviceEndpoint(t, e.lk.Issuer) {
		t.Skip("device endpoint not in metadata")
	}
	e.register(deviceGrant)
	tokens := tokensPath(t)
	r := e.app(tokens, &clock{})

	code := r.main("login", "--device")
	verification := r.errOut.next(t)
	complete := r.errOut.next(t)
	userCode := userCodeRe.FindString(r.errOut.String())
	if userCode == "" || !strings.Contains(complete, "user_code=") || strings.Contains(verification, "user_code") {
		t.Fatalf("lkcli printed:\n%s", r.errOut)
	}
	p := newPerson(t)
	p.userCode = strings.ToLower(strings.ReplaceAll(userCode, "-", "")) // as a person might type it
	if status, page := p.visit(verification); status != http.StatusOK {
		t.Fatalf("verification page: %d %s", status, page)
	}
	if c := wait(t, code, r.errOut); c != 0 {
		t.Fatalf("login --device: exit %d\n%s", c, r.errOut)
	}
	checkModes(t, tokens)
	s := readSessions(t, tokens)
	if len(s) != 1 || s[0].RefreshToken == "" {
		t.Fatalf("sessions: %+v", s)
	}
	at := r.mustRun(t, "token")
	if !e.introspect(at) {
		t.Fatal("the device login's access token is not active")
	}
	r.mustRun(t, "logout")
	if e.introspect(s[0].RefreshToken) || e.introspect(at) {
		t.Fatal("device tokens still active after logout")
	}

	r = e.app(tokens, &clock{})
	code = r.main("login", "--device")
	_ = r.errOut.next(t)
	complete = r.errOut.next(t)
	p.consent = "deny"
	p.visit(complete)
	if c := wait(t, code, r.errOut); c == 0 || !strings.Contains(r.errOut.String(), "denied") {
		t.Fatalf("denied device login: exit %d\n%s", c, r.errOut)
	}
}
