package interop_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	resourceserver "github.com/latchkey/latchkey/clients/resource-server"
	"github.com/latchkey/latchkey/internal/lktest"
)

// oauth2ProxyEnv names the oauth2-proxy binary, which .ci/run builds from
// .ci/interop (a module of its own, so that its dependencies stay out of
// the server's go.mod).
const oauth2ProxyEnv = "LATCHKEY_OAUTH2_PROXY_BIN"

// oauth2-proxy v7 in front of the reference API, configured as its docs say
// for a generic OpenID Connect provider (--provider=oidc with
// --oidc-issuer-url: discovery, its default client authentication), with
// PKCE and a group restriction. A person signs in on Latchkey's pages and
// reaches the API, which sees who they are (X-Forwarded-User and -Email,
// from the ID token) and checks the access token oauth2-proxy passes on with
// the resource-server middleware, scope and audience included.
func TestOAuth2ProxyInFrontOfTheAPI(t *testing.T) {
	bin := os.Getenv(oauth2ProxyEnv)
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set; .ci/run builds oauth2-proxy from .ci/interop", oauth2ProxyEnv)
		}
		t.Skipf("%s is not set: build it with `go -C .ci/interop build -o /tmp/oauth2-proxy github.com/oauth2-proxy/oauth2-proxy/v7` and set %s=/tmp/oauth2-proxy", oauth2ProxyEnv, oauth2ProxyEnv)
	}
	lk := lktest.Start(t, nil)
	addUser(t, lk)

	// The reference API behind oauth2-proxy: the resource-server middleware
	// on the access token oauth2-proxy forwards (--pass-access-token).
	v, err := resourceserver.New(resourceserver.Config{Issuer: lk.Issuer, Audience: "https://api.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	protected := v.Middleware("invoices:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := resourceserver.FromContext(r.Context())
		_ = json.NewEncoder(w).Encode(map[string]string{"token_sub": c.Subject,
			"user": r.Header.Get("X-Forwarded-User"), "email": r.Header.Get("X-Forwarded-Email")})
	}))
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+r.Header.Get("X-Forwarded-Access-Token"))
		protected.ServeHTTP(w, r)
	}))
	t.Cleanup(api.Close)

	addr := freeAddr(t)
	proxyURL := "http://" + addr
	reg := lk.AdminPost("/admin/clients", map[string]any{"client_name": "oauth2-proxy", "trusted": true,
		"grant_types": []string{"authorization_code", "refresh_token"}, "redirect_uris": []string{proxyURL + "/oauth2/callback"},
		"scope": "openid profile email groups invoices:read", "audience": []string{"https://api.example.com"}})
	cookieSecret := make([]byte, 32)
	_, _ = rand.Read(cookieSecret)

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--provider=oidc",
		"--oidc-issuer-url="+lk.Issuer,
		"--client-id="+reg["client_id"].(string),
		"--client-secret="+reg["client_secret"].(string),
		"--redirect-url="+proxyURL+"/oauth2/callback",
		"--scope=openid profile email groups invoices:read",
		"--code-challenge-method=S256",
		"--email-domain=*",
		"--allowed-group=engineers",
		"--cookie-secret="+base64.RawURLEncoding.EncodeToString(cookieSecret),
		"--cookie-secure=false", // plain http on loopback in the test
		"--upstream="+api.URL+"/",
		"--pass-access-token",
		"--skip-provider-button",
		"--http-address="+addr,
	)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("oauth2-proxy said:\n%s", logs.String())
		}
	})
	waitReady(t, proxyURL+"/ping", exited)

	p := newPerson(t, "")
	end, body := p.visit(proxyURL + "/invoices")
	if !p.sawLogin() {
		t.Fatalf("oauth2-proxy let the person in without Latchkey's login page: %s %s", end, body)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("the API did not answer (%s): %q", end, body)
	}
	if got["token_sub"] != user.ID || got["email"] != user.Email || got["user"] != user.ID {
		t.Fatalf("behind oauth2-proxy the API saw %v", got)
	}
	// Signed in: the next request goes straight through.
	if _, body := p.visit(proxyURL + "/invoices"); !strings.Contains(body, user.Email) || p.sawLogin() {
		t.Fatalf("second request: %q", body)
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitReady polls url until it answers 200, the process ends or 20 s pass.
func waitReady(t *testing.T, url string, exited chan error) {
	t.Helper()
	var last error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("oauth2-proxy exited: %v", err)
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
	}
	t.Fatalf("%s never answered: %v", url, last)
}
