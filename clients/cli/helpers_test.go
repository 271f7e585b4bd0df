package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/clients/cli"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/lktest"
)

// env is a running Latchkey with a person, lkcli's registration and a
// confidential client that may introspect.
type env struct {
	t                    *testing.T
	lk                   *lktest.Server
	userID, clientID     string
	introID, introSecret string
	tokenCalls           atomic.Int64 // token endpoint requests
	refreshes            atomic.Int64
}

func start(t *testing.T) *env {
	e := &env{t: t}
	e.lk = lktest.Start(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/oauth2/token" {
				e.tokenCalls.Add(1)
				if r.ParseForm() == nil && r.PostForm.Get("grant_type") == "refresh_token" {
					e.refreshes.Add(1)
				}
			}
			next.ServeHTTP(w, r)
		})
	}, func(c *config.Config) { c.DevicePollInterval = time.Second }) // RFC 8628 polls without 5 s waits
	e.userID = e.lk.AdminPost("/admin/users", map[string]any{"username": "nina", "password": "nina-password-1"})["id"].(string)
	e.register()
	intro := e.lk.AdminPost("/admin/clients", map[string]any{"client_name": "api", "grant_types": []string{"client_credentials"}, "scope": "api"})
	e.introID, e.introSecret = intro["client_id"].(string), intro["client_secret"].(string)
	return e
}

// register makes lkcli's registration, as its README says: a public
// native client with a loopback redirect (any port) and refresh tokens.
func (e *env) register(grantTypes ...string) {
	e.clientID = e.lk.AdminPost("/admin/clients", map[string]any{"client_name": "lkcli", "token_endpoint_auth_method": "none",
		"grant_types":   append([]string{"authorization_code", "refresh_token"}, grantTypes...),
		"redirect_uris": []string{"http://127.0.0.1/callback"}, "scope": "openid offline_access"})["client_id"].(string)
}

// introspect asks Latchkey whether token is active (RFC 7662).
func (e *env) introspect(token string) bool {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.lk.Issuer+"/oauth2/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(e.introID), url.QueryEscape(e.introSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		Active bool `json:"active"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != http.StatusOK {
		e.t.Fatalf("introspection: %d %v", resp.StatusCode, err)
	}
	return m.Active
}

// run is one lkcli process: an App on a tokens file, a settable clock,
// and its stderr watched for URLs.
type run struct {
	app    *cli.App
	out    *bytes.Buffer
	errOut *watcher
}

type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

func (e *env) app(tokens string, clk *clock) *run {
	r := &run{out: &bytes.Buffer{}, errOut: newWatcher()}
	r.app = &cli.App{Stdout: r.out, Stderr: r.errOut, TokensPath: tokens, Now: clk.now,
		Getenv: func(k string) string {
			return map[string]string{"LATCHKEY_ISSUER": e.lk.Issuer, "LKCLI_CLIENT_ID": e.clientID, "LKCLI_NO_BROWSER": "1"}[k]
		},
		OpenBrowser: func(string) error { e.t.Error("LKCLI_NO_BROWSER is set, yet lkcli opened a browser"); return nil }}
	return r
}

// main runs lkcli in the background; the channel gets its exit code.
func (r *run) main(args ...string) <-chan int {
	code := make(chan int, 1)
	go func() { code <- r.app.Main(context.Background(), args) }()
	return code
}

func (r *run) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	r.out.Reset()
	if code := <-r.main(args...); code != 0 {
		t.Fatalf("lkcli %v: exit %d\n%s", args, code, r.errOut)
	}
	return strings.TrimSpace(r.out.String())
}

func wait(t *testing.T, code <-chan int, w *watcher) int {
	t.Helper()
	select {
	case c := <-code:
		return c
	case <-time.After(30 * time.Second):
		t.Fatalf("lkcli did not finish:\n%s", w)
		return -1
	}
}

func tokensPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "config", "lkcli", "tokens.json")
}

func readSessions(t *testing.T, path string) []cli.Session {
	t.Helper()
	var f struct {
		Sessions []cli.Session `json:"sessions"`
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f.Sessions
}

// watcher is a stderr that hands out each URL written to it.
type watcher struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	urls chan string
}

var urlRe = regexp.MustCompile(`https?://\S+`)

func newWatcher() *watcher { return &watcher{urls: make(chan string, 16)} }

func (w *watcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, u := range urlRe.FindAllString(string(p), -1) {
		select {
		case w.urls <- u:
		default:
		}
	}
	return w.buf.Write(p)
}

func (w *watcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func (w *watcher) next(t *testing.T) string {
	t.Helper()
	select {
	case u := <-w.urls:
		return u
	case <-time.After(10 * time.Second):
		t.Fatalf("lkcli printed no URL:\n%s", w)
		return ""
	}
}

// person is someone at a browser: a cookie jar that follows redirects,
// to the loopback listener too, and fills in the forms of Latchkey's
// pages as they come (sign-in, the device code, consent).
type person struct {
	t        *testing.T
	client   *http.Client
	user     string
	password string
	consent  string // allow or deny
	userCode string
}

func newPerson(t *testing.T) *person {
	jar, _ := cookiejar.New(nil)
	return &person{t: t, client: &http.Client{Jar: jar, Timeout: 20 * time.Second}, user: "nina", password: "nina-password-1", consent: "allow"}
}

var (
	formRe  = regexp.MustCompile(`(?s)<form([^>]*)>(.*?)</form>`)
	inputRe = regexp.MustCompile(`<(?:input|button)[^>]*>`)
	attrRe  = regexp.MustCompile(`(\w+)="([^"]*)"`)
)

func attrs(tag string) map[string]string {
	m := map[string]string{}
	for _, a := range attrRe.FindAllStringSubmatch(tag, -1) {
		m[a[1]] = html.UnescapeString(a[2])
	}
	return m
}

// visit opens u and answers every form until a page without one, which
// it returns.
func (p *person) visit(u string) (int, string) {
	p.t.Helper()
	resp, err := p.client.Get(u)
	for range 6 {
		if err != nil {
			p.t.Fatalf("browser: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		f := formRe.FindStringSubmatch(string(body))
		if f == nil {
			return resp.StatusCode, string(body)
		}
		action, _ := url.Parse(attrs(f[1])["action"])
		form := url.Values{}
		for _, tag := range inputRe.FindAllString(f[2], -1) {
			a := attrs(tag)
			switch {
			case a["type"] == "hidden":
				form.Set(a["name"], a["value"])
			case a["name"] == "username":
				form.Set("username", p.user)
			case a["name"] == "password":
				form.Set("password", p.password)
			case a["name"] == "user_code":
				form.Set("user_code", p.userCode)
			case a["name"] == "consent":
				form.Set("consent", p.consent)
			}
		}
		resp, err = p.client.PostForm(resp.Request.URL.ResolveReference(action).String(), form)
	}
	p.t.Fatal("browser: forms without end")
	return 0, ""
}
