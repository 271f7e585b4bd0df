package interop_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/lktest"
)

// openid-client on a server (Node), where it usually runs, as a
// confidential client with its default client authentication
// (client_secret_post, so the client registers that): discovery, PKCE
// without state, the code grant with the ID token checked, userinfo, a
// refresh with a new ID token, and an end-session URL that signs the person
// out of Latchkey. When Latchkey offers DPoP, openid-client's DPoP handle
// (getDPoPHandle, an ES256 key) proves possession on the code grant,
// UserInfo and the refresh: the tokens come back token_type DPoP, and the
// access token sent to UserInfo without a proof is refused. The person
// signs in through Latchkey's pages (person).
func TestOpenIDClientOnNode(t *testing.T) {
	runOpenIDClientOnNode(t, "")
}

// The same with pushed authorization requests (RFC 9126): openid-client's
// buildAuthorizationUrlWithPAR, for a client that registered
// require_pushed_authorization_requests, so that a request it did not push
// would fail.
func TestOpenIDClientOnNodeWithPAR(t *testing.T) {
	runOpenIDClientOnNode(t, "par")
}

func runOpenIDClientOnNode(t *testing.T, mode string) {
	requireNode(t)
	lk := lktest.Start(t, nil)
	addUser(t, lk)
	const redirect = "http://127.0.0.1:5556/callback"
	reg := lk.AdminPost("/admin/clients", map[string]any{"client_name": "openid-client on Node",
		"token_endpoint_auth_method": "client_secret_post",
		"grant_types":                []string{"authorization_code", "refresh_token"}, "redirect_uris": []string{redirect},
		"post_logout_redirect_uris": []string{redirect}, "scope": "openid profile email offline_access",
		"require_pushed_authorization_requests": mode == "par"})

	script := startNode(t, "web/node/openid-client.mjs", lk.Issuer, reg["client_id"].(string), reg["client_secret"].(string), redirect, mode)

	start := script.read()
	if start["state_sent"] != false {
		t.Fatalf("openid-client sent a state: %v", start)
	}
	if mode == "par" {
		// RFC 9126 §4: the browser carries client_id and request_uri only.
		u, _ := url.Parse(start["authorize"].(string))
		if q := u.Query(); len(q) != 2 || !strings.HasPrefix(q.Get("request_uri"), "urn:ietf:params:oauth:request_uri:") {
			t.Fatalf("openid-client's pushed authorization URL: %s", u)
		}
	}
	p := newPerson(t, redirect)
	back, body := p.visit(start["authorize"].(string))
	if back == nil || back.Query().Get("code") == "" {
		t.Fatalf("no code: %v %s", back, body)
	}
	script.send(back.String())
	got := script.read()
	if got["sub"] != user.ID || got["name"] != user.Name || got["email"] != user.Email || got["userinfo_email"] != user.Email ||
		got["refreshed_sub"] != user.ID || got["refreshed_sid"] != got["sid"] || (mode == "par") != (got["nonce"] != nil) {
		t.Fatalf("openid-client validated %v", got)
	}
	if got["dpop"] == true {
		if got["token_type"] != "dpop" || got["refreshed_token_type"] != "dpop" || got["refreshed_userinfo_sub"] != user.ID ||
			!strings.Contains(got["userinfo_without_proof"].(string), "401") {
			t.Fatalf("openid-client with DPoP: %v", got)
		}
	} else {
		t.Log("Latchkey has no DPoP yet (no dpop_signing_alg_values_supported in its metadata): openid-client ran without DPoP; server DPoP (issue 15) is needed for that part")
	}

	// The end-session URL it built ends the Latchkey session.
	p.sawLogin()
	end, _ := p.visit(got["end_session"].(string))
	if end == nil || !strings.HasPrefix(end.String(), redirect) || end.Query().Get("state") != "bye" {
		t.Fatalf("end session came back to %v", end)
	}
	if mode == "par" {
		// The pushed request_uri was spent on the first visit.
		return
	}
	back, _ = p.visit(start["authorize"].(string))
	if !p.sawLogin() {
		t.Fatalf("after the end session the person was let in without the login page (%v)", back)
	}
}

// openid-client's device authorization grant (RFC 8628) on Node, as a
// public client: initiateDeviceAuthorization, the person signs in and
// approves through the verification_uri_complete link on Latchkey's pages,
// then pollDeviceAuthorizationGrant gets tokens whose ID token it checks,
// and the refresh token refreshes.
func TestOpenIDClientDeviceFlowOnNode(t *testing.T) {
	requireNode(t)
	// A 1 s interval: the client waits it before every poll.
	lk := lktest.Start(t, nil, func(c *config.Config) { c.DevicePollInterval = time.Second })
	addUser(t, lk)
	reg := lk.AdminPost("/admin/clients", map[string]any{"client_name": "openid-client device", "token_endpoint_auth_method": "none",
		"grant_types": []string{deviceGrant, "refresh_token"}, "scope": "openid profile offline_access"})

	script := startNode(t, "web/node/device-flow.mjs", lk.Issuer, reg["client_id"].(string))
	start := script.read()
	if start["verification_uri"] != lk.Issuer+"/device" || start["interval"] != float64(1) {
		t.Fatalf("device authorization: %v", start)
	}
	p := newPerson(t, "")
	if _, body := p.visit(start["verification_uri_complete"].(string)); !strings.Contains(body, "Device connected") {
		t.Fatalf("approval through the pages %v:\n%s", p.pages, body)
	}
	script.send("approved")
	got := script.read()
	if got["sub"] != user.ID || got["name"] != user.Name || got["sid"] == nil || got["refreshed_sub"] != user.ID ||
		got["scope"] != "openid profile offline_access" {
		t.Fatalf("openid-client validated %v", got)
	}
}

// requireNode skips a test without Node or the interop pages' modules;
// in CI a missing module fails it, since .ci/run installs them.
func requireNode(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("web/node_modules/openid-client"); err != nil {
		msg := "internal/interop/web/node_modules is missing: run `npm ci` in internal/interop/web (.ci/run does)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	return node
}

// nodeScript is a Node script under test that answers in JSON lines on
// stdout and is told what happened in the browser by lines on stdin.
type nodeScript struct {
	t      *testing.T
	stdin  io.Writer
	lines  *bufio.Scanner
	stderr *strings.Builder
}

// startNode runs script with args for at most a minute; the test's end
// waits for it.
func startNode(t *testing.T, script string, args ...string) *nodeScript {
	t.Helper()
	node := requireNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	ns := &nodeScript{t: t, stdin: stdin, lines: bufio.NewScanner(stdout), stderr: &strings.Builder{}}
	cmd.Stderr = ns.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
		cancel()
	})
	return ns
}

// read is the script's next answer; an answer with "error" fails the test.
func (ns *nodeScript) read() map[string]any {
	ns.t.Helper()
	if !ns.lines.Scan() {
		ns.t.Fatalf("the Node script said nothing more (%v); stderr: %s", ns.lines.Err(), ns.stderr.String())
	}
	var m map[string]any
	if err := json.Unmarshal(ns.lines.Bytes(), &m); err != nil {
		ns.t.Fatalf("the Node script: %q", ns.lines.Text())
	}
	if m["error"] != nil {
		ns.t.Fatalf("the Node script: %v", m["error"])
	}
	return m
}

// send tells the script one line.
func (ns *nodeScript) send(line string) {
	_, _ = io.WriteString(ns.stdin, line+"\n")
}
