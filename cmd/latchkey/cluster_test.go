package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// instance is one `latchkey serve` process.
type instance struct {
	public, admin string
	dbURL         string
	cmd           *exec.Cmd
	logs          *bytes.Buffer
}

func freeAddr(t *testing.T) string {
	t.Helper()
	// The listener closes before the process under test binds the port, so
	// the kernel may offer the same port to the next call (seen: a public
	// and an admin listener given one address). Never hand one out twice.
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		if !handedOut.addrs[addr] {
			handedOut.addrs[addr] = true
			return addr
		}
	}
	t.Fatal("no free port that was not handed out before")
	return ""
}

// handedOut remembers the addresses freeAddr gave this test binary.
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

const (
	clusterSecret = "cluster-test-secret-0123456789-0123456789"
	clusterAdmin  = "cluster-admin-token-0123456789"
)

// startCluster builds the binary and starts n instances on one PostgreSQL
// database, all behind one issuer as a load balancer would present them.
func startCluster(t *testing.T, n int) []*instance {
	t.Helper()
	return startClusterOn(t, n, storetest.PostgresURL(t))
}

// startClusterOn is startCluster on the database at dbURL, with env added
// to each instance's environment.
func startClusterOn(t *testing.T, n int, dbURL string, env ...string) []*instance {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "latchkey")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var insts []*instance
	issuer := ""
	for i := range n {
		in := &instance{public: freeAddr(t), admin: freeAddr(t), dbURL: dbURL, logs: &bytes.Buffer{}}
		if i == 0 {
			issuer = "http://" + in.public
		}
		in.cmd = exec.Command(bin, "serve", "--migrate")
		in.cmd.Env = append(os.Environ(),
			"LATCHKEY_DATABASE_URL="+dbURL, "LATCHKEY_SECRET="+clusterSecret, "LATCHKEY_ADMIN_TOKEN="+clusterAdmin,
			"LATCHKEY_PUBLIC_ADDR="+in.public, "LATCHKEY_ADMIN_ADDR="+in.admin, "LATCHKEY_ISSUER="+issuer,
			"LATCHKEY_KEY_PREPUBLISH_PERIOD=0s", "LATCHKEY_LOG_LEVEL=warn")
		in.cmd.Env = append(in.cmd.Env, env...)
		in.cmd.Stdout, in.cmd.Stderr = in.logs, in.logs
		if err := in.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = in.cmd.Process.Signal(os.Interrupt)
			_ = in.cmd.Wait()
			if t.Failed() {
				t.Logf("instance %d logs:\n%s", i, in.logs.String())
			}
		})
		insts = append(insts, in)
	}
	for _, in := range insts {
		waitReady(t, in)
	}
	return insts
}

func waitReady(t *testing.T, in *instance) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + in.public + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance on %s never became ready:\n%s", in.public, in.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func decodeJSON(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

func call(t *testing.T, hc *http.Client, method, u string, body io.Reader, hdr map[string]string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, u, body)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func (in *instance) adminCall(t *testing.T, method, path string, body any) (int, map[string]any) {
	b, _ := json.Marshal(body)
	return call(t, http.DefaultClient, method, "http://"+in.admin+path, bytes.NewReader(b),
		map[string]string{"Authorization": "Bearer " + clusterAdmin, "Content-Type": "application/json"})
}

func (in *instance) form(t *testing.T, path, id, secret string, v url.Values) (int, map[string]any) {
	return call(t, http.DefaultClient, http.MethodPost, "http://"+in.public+path, strings.NewReader(v.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded",
			"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))})
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// inactiveWithinNotice checks that in answers introspection of token with
// active false. Another instance's revocation reaches in's in-memory
// deny-list over LISTEN/NOTIFY within the notification latency (under a
// millisecond; docs/operations.md), not with the commit: asked again for up
// to a second, never longer.
func inactiveWithinNotice(t *testing.T, what string, in *instance, id, secret, token string) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		_, m := in.form(t, "/oauth2/introspect", id, secret, url.Values{"token": {token}})
		if m["active"] == false {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s, a second later: %v", what, m)
		}
		time.Sleep(time.Millisecond)
	}
}

// Three instances on one PostgreSQL act as one server.
func TestClusterActsAsOne(t *testing.T) {
	if os.Getenv(storetest.PostgresEnv) == "" {
		t.Skipf("%s is not set", storetest.PostgresEnv)
	}
	clusterActsAsOne(t, startCluster(t, 3))
}

// Through PgBouncer in transaction mode (docs/operations.md, "PgBouncer"):
// the database URL asks for default_query_exec_mode=exec and
// LATCHKEY_DATABASE_LISTEN_URL goes straight to PostgreSQL, and the three
// instances act as one exactly as on a direct connection; a deleted client
// is refused at once, pushed over LISTEN/NOTIFY.
func TestClusterThroughPgBouncer(t *testing.T) {
	dbURL := storetest.PgBouncerURL(t)
	nodes := startClusterOn(t, 3, dbURL, "LATCHKEY_DATABASE_LISTEN_URL="+storetest.PgBouncerDirectURL(t, dbURL))
	for _, in := range nodes {
		in.waitCacheMode(t, "pushed")
		// With a direct listen URL, "not revoked" costs no query.
		in.waitMetric(t, "latchkey_revocations_in_memory 1")
	}
	clusterActsAsOne(t, nodes)
}

// waitCacheMode waits until /metrics reports the client cache in mode.
func (in *instance) waitCacheMode(t *testing.T, mode string) {
	t.Helper()
	in.waitMetric(t, `latchkey_client_cache_mode{mode="`+mode+`"} 1`)
}

// waitMetric waits until in's /metrics has the line want.
func (in *instance) waitMetric(t *testing.T, want string) {
	t.Helper()
	eventually(t, want+" at "+in.public, func() bool {
		req, _ := http.NewRequest(http.MethodGet, "http://"+in.admin+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+clusterAdmin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), want)
	})
}

// Through PgBouncer with no LATCHKEY_DATABASE_LISTEN_URL, LISTEN cannot
// work: each instance notices that its heartbeats never come back, says so
// in its log and /metrics, and polls. A client deleted at A is then refused
// at B within the poll interval (1 s), not after the minute a pushed cache
// keeps an entry.
func TestClusterPollsThroughPgBouncer(t *testing.T) {
	dbURL := storetest.PgBouncerURL(t)
	nodes := startClusterOn(t, 2, dbURL)
	a, b := nodes[0], nodes[1]
	b.waitCacheMode(t, "polled")
	// Without a listen URL nothing proves the deny-list complete: every
	// revocation check asks the database.
	b.waitMetric(t, "latchkey_revocations_in_memory 0")
	_, svc := a.adminCall(t, http.MethodPost, "/admin/clients", map[string]any{"grant_types": []string{"client_credentials"}})
	sid, ssecret := svc["client_id"].(string), svc["client_secret"].(string)
	if st, _ := b.form(t, "/oauth2/token", sid, ssecret, url.Values{"grant_type": {"client_credentials"}}); st != http.StatusOK {
		t.Fatal("token at B")
	}
	if st, _ := a.adminCall(t, http.MethodDelete, "/admin/clients/"+sid, nil); st != http.StatusNoContent {
		t.Fatal("delete at A")
	}
	deleted := time.Now()
	// The bound is the poll interval; the margin is for a loaded machine,
	// far below the minute.
	for {
		st, _ := b.form(t, "/oauth2/token", sid, ssecret, url.Values{"grant_type": {"client_credentials"}})
		if st == http.StatusUnauthorized {
			break
		}
		if time.Since(deleted) > 5*time.Second {
			t.Fatalf("B still accepts a client deleted at A %s ago", time.Since(deleted))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("refused at B %s after the deletion at A", time.Since(deleted).Round(time.Millisecond))
	// The log is read once B has stopped writing it.
	_ = b.cmd.Process.Signal(os.Interrupt)
	_ = b.cmd.Wait()
	if !strings.Contains(b.logs.String(), "LATCHKEY_DATABASE_LISTEN_URL") {
		t.Fatalf("the fallback is not logged:\n%s", b.logs.String())
	}
}

func clusterActsAsOne(t *testing.T, nodes []*instance) {
	a, b, c := nodes[0], nodes[1], nodes[2]

	_, pwd := a.adminCall(t, http.MethodPost, "/admin/clients", map[string]any{"trusted": true,
		"grant_types": []string{"password", "refresh_token", "client_credentials"}, "scope": "read offline_access"})
	id, secret := pwd["client_id"].(string), pwd["client_secret"].(string)
	if st, m := a.adminCall(t, http.MethodPost, "/admin/users", map[string]string{"username": "zoe", "password": "zoe-password-1"}); st != http.StatusCreated {
		t.Fatalf("create user: %d %v", st, m)
	}

	t.Run("issued at A, refreshed at B, revoked at C, inactive at A", func(t *testing.T) {
		_, first := a.form(t, "/oauth2/token", id, secret, url.Values{"grant_type": {"password"}, "username": {"zoe"}, "password": {"zoe-password-1"}, "scope": {"read offline_access"}})
		st, second := b.form(t, "/oauth2/token", id, secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first["refresh_token"].(string)}})
		if st != http.StatusOK {
			t.Fatalf("refresh at B: %d %v", st, second)
		}
		if st, _ := c.form(t, "/oauth2/revoke", id, secret, url.Values{"token": {second["refresh_token"].(string)}}); st != http.StatusOK {
			t.Fatalf("revoke at C: %d", st)
		}
		inactiveWithinNotice(t, "introspection at A after revocation at C", a, id, secret, second["access_token"].(string))
	})

	t.Run("a key rotated at B signs at A within seconds", func(t *testing.T) {
		st, rotated := b.adminCall(t, http.MethodPost, "/admin/keys/rotate", nil)
		if st != http.StatusOK {
			t.Fatalf("rotate: %d %v", st, rotated)
		}
		eventually(t, "A signs with the key rotated at B", func() bool {
			_, tok := a.form(t, "/oauth2/token", id, secret, url.Values{"grant_type": {"client_credentials"}})
			header, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok["access_token"].(string), ".")[0])
			return strings.Contains(string(header), rotated["kid"].(string))
		})
	})

	t.Run("a lockout at A holds at B", func(t *testing.T) {
		if st, m := a.adminCall(t, http.MethodPost, "/admin/users", map[string]string{"username": "yuri", "password": "yuri-password-1"}); st != http.StatusCreated {
			t.Fatalf("create user: %d %v", st, m)
		}
		for range 5 {
			a.form(t, "/oauth2/token", id, secret, url.Values{"grant_type": {"password"}, "username": {"yuri"}, "password": {"wrong-password"}})
		}
		if st, m := b.form(t, "/oauth2/token", id, secret, url.Values{"grant_type": {"password"}, "username": {"yuri"}, "password": {"yuri-password-1"}}); st != http.StatusBadRequest {
			t.Fatalf("right password at B during a lockout made at A: %d %v", st, m)
		}
	})

	// Issue 11 item 2: the attempt is reserved in the database before the
	// password is checked, so parallel guesses spread over every instance
	// still get only the limit's worth of checks (401); the rest are
	// refused (429), or turned away for load (503) without counting.
	t.Run("parallel guesses across instances stop at the limit", func(t *testing.T) {
		if st, m := a.adminCall(t, http.MethodPost, "/admin/users", map[string]string{"username": "wanda", "password": "wanda-password-1"}); st != http.StatusCreated {
			t.Fatalf("create user: %d %v", st, m)
		}
		jar, _ := cookiejar.New(nil)
		br := &http.Client{Jar: jar}
		resp, err := br.Get("http://" + a.public + "/login")
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		csrf := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(string(page))
		if csrf == nil {
			t.Fatal("no CSRF token on the login page")
		}
		post := func(in *instance, password string) int {
			resp, err := br.PostForm("http://"+in.public+"/login", url.Values{"csrf_token": {csrf[1]}, "username": {"wanda"}, "password": {password}})
			if err != nil {
				return 0
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}
		codes := make(chan int, 30)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 30 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				codes <- post(nodes[i%3], fmt.Sprintf("wrong-%02d", i))
			}()
		}
		close(start)
		wg.Wait()
		close(codes)
		got := map[int]int{}
		for c := range codes {
			got[c]++
		}
		t.Logf("30 parallel guesses over 3 instances: %v", got)
		if got[http.StatusUnauthorized] > 5 || got[http.StatusUnauthorized]+got[http.StatusTooManyRequests]+got[http.StatusServiceUnavailable] != 30 {
			t.Fatalf("30 parallel guesses over 3 instances: %v; want at most 5 checked (401)", got)
		}
		// Wrong guesses until the limit, then the right password anywhere.
		for i := 0; got[http.StatusUnauthorized] < 5 && i < 50; i++ {
			got[post(nodes[i%3], "wrong-again")]++
		}
		if st := post(c, "wanda-password-1"); st != http.StatusTooManyRequests {
			t.Fatalf("right password at C after the limit was reached: %d, want 429", st)
		}
	})

	t.Run("consent given at A is known at C", func(t *testing.T) {
		_, spa := a.adminCall(t, http.MethodPost, "/admin/clients", map[string]any{"token_endpoint_auth_method": "none",
			"grant_types": []string{"authorization_code"}, "redirect_uris": []string{"https://app.example/cb"}, "scope": "openid"})
		conf := oauth2.Config{ClientID: spa["client_id"].(string), RedirectURL: "https://app.example/cb", Scopes: []string{"openid"}}
		jar, _ := cookiejar.New(nil)
		br := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
			if strings.HasPrefix(r.URL.String(), "https://app.example/") {
				return http.ErrUseLastResponse
			}
			return nil
		}}
		authURL := func(in *instance) string {
			conf.Endpoint.AuthURL = "http://" + in.public + "/oauth2/authorize"
			return conf.AuthCodeURL("state-cluster", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		}
		page := func(resp *http.Response) string {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b)
		}
		fieldRe := func(name string) *regexp.Regexp { return regexp.MustCompile(`name="` + name + `" value="([^"]*)"`) }
		get := func(u string) *http.Response {
			resp, err := br.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}
		post := func(in *instance, path string, v url.Values) *http.Response {
			resp, err := br.PostForm("http://"+in.public+path, v)
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}
		unescape := func(s string) string { return strings.ReplaceAll(s, "&amp;", "&") }

		login := page(get(authURL(a)))
		m := fieldRe("csrf_token").FindStringSubmatch(login)
		r := fieldRe("return_to").FindStringSubmatch(login)
		if m == nil || r == nil {
			t.Fatalf("no login form:\n%s", login)
		}
		consent := page(post(a, "/login", url.Values{"csrf_token": {m[1]}, "return_to": {unescape(r[1])}, "username": {"zoe"}, "password": {"zoe-password-1"}}))
		m = fieldRe("csrf_token").FindStringSubmatch(consent)
		r = fieldRe("return_to").FindStringSubmatch(consent)
		if m == nil || r == nil {
			t.Fatalf("no consent form:\n%s", consent)
		}
		resp := post(a, "/consent", url.Values{"csrf_token": {m[1]}, "return_to": {unescape(r[1])}, "consent": {"allow"}})
		resp.Body.Close()
		// The browser's session cookie is host-wide, as behind a load balancer.
		resp = get(authURL(c))
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if !strings.HasPrefix(loc, "https://app.example/cb?") || !strings.Contains(loc, "code=") {
			t.Fatalf("at C: %d %q", resp.StatusCode, loc)
		}
	})

	t.Run("a client deleted at A is refused at B at once", func(t *testing.T) {
		_, svc := a.adminCall(t, http.MethodPost, "/admin/clients", map[string]any{"grant_types": []string{"client_credentials"}})
		sid, ssecret := svc["client_id"].(string), svc["client_secret"].(string)
		if st, _ := b.form(t, "/oauth2/token", sid, ssecret, url.Values{"grant_type": {"client_credentials"}}); st != http.StatusOK {
			t.Fatal("token at B")
		}
		if st, _ := a.adminCall(t, http.MethodDelete, "/admin/clients/"+sid, nil); st != http.StatusNoContent {
			t.Fatal("delete at A")
		}
		eventually(t, "B refuses the deleted client", func() bool {
			st, _ := b.form(t, "/oauth2/token", sid, ssecret, url.Values{"grant_type": {"client_credentials"}})
			return st == http.StatusUnauthorized
		})
	})
}
