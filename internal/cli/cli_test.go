package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

const (
	testSecret     = "cli-test-secret-0123456789-0123456789"
	testAdminToken = "admin-token-0123456789"
	// hangGuard only turns a server that never stops into a failure instead
	// of a stuck test run; nothing waits for it when things work.
	hangGuard = 20 * time.Second
)

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// latchkey runs the command line in process, exactly as cmd/latchkey does.
func latchkey(t *testing.T, environ []string, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(t.Context(), args, environ, strings.NewReader(stdin), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

// latchkeyDev is latchkey with the --dev secrets file kept in dir instead
// of the working directory. It repeats what Main does around rootCommand.
func latchkeyDev(ctx context.Context, dir string, environ []string, stdout, stderr io.Writer, args ...string) int {
	e := &env{environ: environ, stdin: strings.NewReader(""), stdout: stdout, stderr: stderr, devDir: dir}
	root := e.rootCommand()
	root.SetArgs(args)
	root.SetIn(e.stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "latchkey:", err)
		return 1
	}
	return 0
}

func runDev(t *testing.T, dir string, environ []string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := latchkeyDev(t.Context(), dir, environ, &out, &errOut, args...)
	return result{code, out.String(), errOut.String()}
}

// baseEnv is the least a database command needs, on a fresh database.
func baseEnv(t *testing.T, b storetest.Backend) []string {
	return []string{"LATCHKEY_DATABASE_URL=" + b.URL(t), "LATCHKEY_SECRET=" + testSecret, "LATCHKEY_ADMIN_TOKEN=" + testAdminToken}
}

// migrated is baseEnv after a successful `migrate up`.
func migrated(t *testing.T, b storetest.Backend) []string {
	t.Helper()
	environ := baseEnv(t, b)
	if r := latchkey(t, environ, "", "migrate", "up"); r.code != 0 {
		t.Fatalf("migrate up: %v", r)
	}
	return environ
}

func mustSucceed(t *testing.T, r result) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("want exit 0, got %v", r)
	}
	return r
}

func mustFail(t *testing.T, r result, stderrHas ...string) {
	t.Helper()
	if r.code != 1 {
		t.Fatalf("want exit 1, got %v", r)
	}
	for _, s := range stderrHas {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr does not mention %q: %s", s, r.stderr)
		}
	}
}

func decode[T any](t *testing.T, r result) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("output is not JSON (%v): %v", err, r)
	}
	return v
}

// migrationStates is the STATE column of `migrate status`.
func migrationStates(t *testing.T, out string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "VERSION") {
		t.Fatalf("unexpected status output: %q", out)
	}
	var states []string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < 3 {
			t.Fatalf("unexpected status line %q", l)
		}
		states = append(states, f[2])
	}
	return states
}

func allEqual(states []string, want string) bool {
	for _, s := range states {
		if s != want {
			return false
		}
	}
	return len(states) > 0
}

func TestMigrate(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		environ := baseEnv(t, b)

		before := migrationStates(t, mustSucceed(t, latchkey(t, environ, "", "migrate", "status")).stdout)
		if !allEqual(before, "pending") {
			t.Fatalf("fresh database: want every migration pending, got %v", before)
		}
		// Database commands other than migrate refuse a schema that is behind.
		mustFail(t, latchkey(t, environ, "", "client", "list"), "migrate up")

		up := mustSucceed(t, latchkey(t, environ, "", "migrate", "up"))
		if strings.Count(up.stdout, "applied ") != len(before) || !strings.Contains(up.stdout, "applied 00001") {
			t.Fatalf("first migrate up should apply all %d: %q", len(before), up.stdout)
		}
		after := migrationStates(t, mustSucceed(t, latchkey(t, environ, "", "migrate", "status")).stdout)
		if len(after) != len(before) || !allEqual(after, "applied") {
			t.Fatalf("after migrate up: %v", after)
		}

		again := mustSucceed(t, latchkey(t, environ, "", "migrate", "up"))
		if strings.TrimSpace(again.stdout) != "schema is up to date" {
			t.Fatalf("second migrate up changed something: %q", again.stdout)
		}
		if st := migrationStates(t, mustSucceed(t, latchkey(t, environ, "", "migrate", "status")).stdout); len(st) != len(before) || !allEqual(st, "applied") {
			t.Fatalf("status after the second migrate up: %v", st)
		}
	})
}

// migrate needs only the database: no secret, no admin token.
func TestMigrateNeedsOnlyTheDatabase(t *testing.T) {
	r := latchkey(t, []string{"LATCHKEY_DATABASE_URL=" + storetest.SQLiteURL(t), "LATCHKEY_ISSUER=not a url"}, "", "migrate", "up")
	mustSucceed(t, r)
}

// serve on a schema that is behind stops at once with the fix, before it
// opens any listener: it returns without its context being cancelled,
// which a serving server never does.
func TestServeRefusesUnmigratedDatabase(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		environ := append(baseEnv(t, b), "LATCHKEY_PUBLIC_ADDR=127.0.0.1:0", "LATCHKEY_ADMIN_ADDR=127.0.0.1:0")
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var out, errOut bytes.Buffer
		done := make(chan int, 1)
		go func() { done <- Main(ctx, []string{"serve"}, environ, strings.NewReader(""), &out, &errOut) }()
		select {
		case code := <-done:
			r := result{code, out.String(), errOut.String()}
			mustFail(t, r, "migrate up")
			if strings.Contains(r.stderr, "latchkey serving") {
				t.Errorf("started listening: %s", r.stderr)
			}
		case <-time.After(hangGuard):
			cancel()
			<-done
			t.Fatal("serve started on an unmigrated database")
		}
		// Refusing must not have migrated anything either.
		if st := migrationStates(t, latchkey(t, environ, "", "migrate", "status").stdout); !allEqual(st, "pending") {
			t.Fatalf("serve changed the schema: %v", st)
		}
	})
}

func TestClientCommands(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		environ := migrated(t, b)
		listIsEmpty := func(t *testing.T) {
			t.Helper()
			if out := mustSucceed(t, latchkey(t, environ, "", "client", "list")).stdout; strings.TrimSpace(out) != "[]" {
				t.Fatalf("client list: want [], got %q", out)
			}
		}
		listIsEmpty(t)

		// Rule-breaking registrations fail and store nothing.
		invalid := []struct {
			name  string
			stdin string
			args  []string
			code  string
		}{
			{"public client with client_credentials", "", []string{"--auth-method", "none", "--grant-type", "client_credentials"}, "invalid_client_metadata"},
			{"public client with password", "", []string{"--auth-method", "none", "--grant-type", "password"}, "invalid_client_metadata"},
			{"public client with token exchange", "", []string{"--auth-method", "none", "--grant-type", "urn:ietf:params:oauth:grant-type:token-exchange"}, "invalid_client_metadata"},
			{"unknown grant type", "", []string{"--grant-type", "implicit"}, "invalid_client_metadata"},
			{"redirect URI with a fragment", "", []string{"--grant-type", "authorization_code", "--redirect-uri", "https://app.example.com/cb#x"}, "invalid_redirect_uri"},
			{"invalid JSON on stdin", `{"grant_types":`, []string{"--from-json", "-"}, "client metadata"},
			{"public client from JSON", `{"token_endpoint_auth_method":"none","grant_types":["client_credentials"]}`, []string{"--from-json", "-"}, "invalid_client_metadata"},
			{"unknown field in JSON", `{"grant_types":["client_credentials"],"tos_uri":"https://x/tos"}`, []string{"--from-json", "-"}, `unknown field "tos_uri"`},
		}
		for _, tc := range invalid {
			t.Run(tc.name, func(t *testing.T) {
				mustFail(t, latchkey(t, environ, tc.stdin, append([]string{"client", "create"}, tc.args...)...), tc.code)
				listIsEmpty(t)
			})
		}

		created := decode[map[string]any](t, mustSucceed(t, latchkey(t, environ, "",
			"client", "create", "--name", "svc", "--grant-type", "client_credentials", "--scope", "invoices:read")))
		id, _ := created["client_id"].(string)
		secret, _ := created["client_secret"].(string)
		// 256 bits in unpadded base64url is 43 characters.
		if id == "" || len(secret) < 43 {
			t.Fatalf("client create: want a client_id and a secret of at least 43 characters, got %v", created)
		}
		if created["client_name"] != "svc" || created["scope"] != "invoices:read" {
			t.Errorf("client create ignored flags: %v", created)
		}

		fromJSON := decode[map[string]any](t, mustSucceed(t, latchkey(t, environ,
			`{"client_id":"from-json","client_name":"From JSON","grant_types":["client_credentials"],"scope":"read"}`,
			"client", "create", "--from-json", "-")))
		if fromJSON["client_id"] != "from-json" || fromJSON["client_name"] != "From JSON" {
			t.Fatalf("client create --from-json -: %v", fromJSON)
		}
		if s, _ := fromJSON["client_secret"].(string); len(s) < 43 {
			t.Fatalf("confidential client from JSON got no secret: %v", fromJSON)
		}

		list := decode[[]map[string]any](t, mustSucceed(t, latchkey(t, environ, "", "client", "list")))
		if len(list) != 2 {
			t.Fatalf("client list: want 2 clients, got %v", list)
		}

		got := mustSucceed(t, latchkey(t, environ, "", "client", "get", id))
		if c := decode[map[string]any](t, got); c["client_id"] != id {
			t.Fatalf("client get: %v", got)
		} else if _, ok := c["client_secret"]; ok || strings.Contains(got.stdout, secret) {
			t.Fatalf("client get shows the secret, which is shown only once: %v", got)
		}

		mustFail(t, latchkey(t, environ, "", "client", "get", "no-such-client"), "no-such-client")
		mustFail(t, latchkey(t, environ, "", "client", "delete", "no-such-client"), "no-such-client")

		if del := decode[map[string]string](t, mustSucceed(t, latchkey(t, environ, "", "client", "delete", id))); del["deleted"] != id {
			t.Fatalf("client delete: %v", del)
		}
		mustFail(t, latchkey(t, environ, "", "client", "get", id), id)
		if list := decode[[]map[string]any](t, mustSucceed(t, latchkey(t, environ, "", "client", "list"))); len(list) != 1 || list[0]["client_id"] != "from-json" {
			t.Fatalf("client list after delete: %v", list)
		}

		mustFail(t, latchkey(t, environ, "", "client", "get"))
	})
}

func TestUserCommands(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		environ := migrated(t, b)
		user := decode[map[string]any](t, mustSucceed(t, latchkey(t, environ, "user-password-1\n", "user", "create", "uma")))
		id, _ := user["id"].(string)
		if id == "" || user["username"] != "uma" {
			t.Fatalf("user create: %v", user)
		}
		// Passwords come from stdin only, never argv.
		mustFail(t, latchkey(t, environ, "", "user", "create", "vic"), "stdin")
		mustSucceed(t, latchkey(t, environ, "another-password\n", "user", "set-password", id))
		mustFail(t, latchkey(t, environ, "", "user", "set-password", id), "stdin")

		out := mustSucceed(t, latchkey(t, environ, "", "user", "list")).stdout
		if !strings.Contains(out, `"uma"`) || strings.Contains(out, "argon2") || strings.Contains(out, "password") {
			t.Fatalf("user list: %q", out)
		}
		mustSucceed(t, latchkey(t, environ, "", "user", "delete", id))
		if out := mustSucceed(t, latchkey(t, environ, "", "user", "list")).stdout; strings.TrimSpace(out) != "[]" {
			t.Fatalf("user list after delete: %q", out)
		}
	})
}

func TestKeysAndJanitor(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		environ := migrated(t, b)
		if out := mustSucceed(t, latchkey(t, environ, "", "keys", "rotate")).stdout; !strings.Contains(out, `"pending"`) {
			t.Fatalf("keys rotate: %q", out)
		}
		// rotate gives every algorithm's chain a successor: two keys each.
		if out := mustSucceed(t, latchkey(t, environ, "", "keys", "list")).stdout; strings.Count(out, `"kid"`) != 6 ||
			strings.Count(out, `"RS256"`) != 2 || strings.Count(out, `"EdDSA"`) != 2 {
			t.Fatalf("keys list: %q", out)
		}
		// The keys are sealed with LATCHKEY_SECRET; another secret cannot open them.
		other := append(environ[:len(environ):len(environ)], "LATCHKEY_SECRET=a-different-secret-0123456789-abcdef")
		mustFail(t, latchkey(t, other, "", "keys", "list"))

		janitor := decode[map[string]any](t, mustSucceed(t, latchkey(t, environ, "", "janitor")))
		if janitor["ran"] != true {
			t.Fatalf("janitor: %v", janitor)
		}
	})
}

func TestVersion(t *testing.T) {
	out := mustSucceed(t, latchkey(t, nil, "", "version")).stdout
	if !strings.HasPrefix(out, "latchkey ") || !strings.Contains(out, runtime.Version()) || !strings.Contains(out, "commit ") {
		t.Fatalf("version: %q", out)
	}
}

// A bad configuration exits 1 and names the variable to fix.
func TestConfigErrors(t *testing.T) {
	db := "LATCHKEY_DATABASE_URL=" + storetest.SQLiteURL(t)
	cases := []struct {
		name    string
		environ []string
		args    []string
		names   []string
	}{
		{"short secret for serve", []string{db, "LATCHKEY_SECRET=short", "LATCHKEY_ADMIN_TOKEN=" + testAdminToken}, []string{"serve"}, []string{"LATCHKEY_SECRET"}},
		{"short secret for client create", []string{db, "LATCHKEY_SECRET=short"}, []string{"client", "create", "--grant-type", "client_credentials"}, []string{"LATCHKEY_SECRET"}},
		{"serve lists every problem", []string{db, "LATCHKEY_SECRET=short", "LATCHKEY_ISSUER=http://auth.example.com"}, []string{"serve"}, []string{"LATCHKEY_SECRET", "LATCHKEY_ADMIN_TOKEN", "LATCHKEY_ISSUER"}},
		{"no database for migrate", nil, []string{"migrate", "up"}, []string{"LATCHKEY_DATABASE_URL"}},
		{"unsupported database", []string{"LATCHKEY_DATABASE_URL=mysql://db/latchkey"}, []string{"migrate", "status"}, []string{"LATCHKEY_DATABASE_URL"}},
		{"flag beats a good environment", []string{db, "LATCHKEY_SECRET=" + testSecret, "LATCHKEY_ADMIN_TOKEN=" + testAdminToken}, []string{"serve", "--auth-code-ttl", "1h"}, []string{"LATCHKEY_AUTH_CODE_TTL"}},
		{"unit-less duration", []string{db, "LATCHKEY_ACCESS_TOKEN_TTL=900"}, []string{"migrate", "up"}, []string{"access_token_ttl"}},
		{"missing config file", []string{db}, []string{"migrate", "up", "--config", filepath.Join(t.TempDir(), "nope.yaml")}, []string{"nope.yaml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustFail(t, latchkey(t, tc.environ, "", tc.args...), tc.names...)
		})
	}
	t.Run("unknown command", func(t *testing.T) {
		mustFail(t, latchkey(t, nil, "", "frobnicate"), "unknown command")
	})
}

// devFile reads the --dev secrets file as KEY=VALUE pairs.
func devFile(t *testing.T, dir string) (map[string]string, os.FileMode) {
	t.Helper()
	path := filepath.Join(dir, devFileName)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatalf("dev file: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			vals[k] = v
		}
	}
	return vals, info.Mode().Perm()
}

// --dev keeps what it generates in a 0600 file, reuses it on every run, and
// refuses it once others can read it.
func TestDevFile(t *testing.T) {
	dir := t.TempDir()
	// LATCHKEY_DATABASE_URL keeps the database out of the working directory.
	environ := []string{"LATCHKEY_DATABASE_URL=" + storetest.SQLiteURL(t)}

	mustSucceed(t, runDev(t, dir, environ, "migrate", "up", "--dev"))
	first, mode := devFile(t, dir)
	if mode != 0o600 {
		t.Fatalf("dev file mode %v, want 0600", mode)
	}
	if len(first[devSecretKey]) < 32 || len(first[devAdminTokenKey]) < 16 || first[devDemoPasswordKey] == "" {
		t.Fatalf("dev file misses generated values: %v", first)
	}

	// The generated secret is what commands use: client create needs one
	// and none is in the environment.
	mustSucceed(t, runDev(t, dir, environ, "client", "create", "--dev", "--grant-type", "client_credentials"))
	again, _ := devFile(t, dir)
	if again[devSecretKey] != first[devSecretKey] || again[devAdminTokenKey] != first[devAdminTokenKey] {
		t.Fatal("a second --dev run generated new secrets instead of reusing the file")
	}

	// Settings given explicitly win over the file, and are still checked.
	mustFail(t, runDev(t, dir, append(environ, "LATCHKEY_SECRET=short"), "client", "create", "--dev", "--grant-type", "client_credentials"), "LATCHKEY_SECRET")

	if err := os.Chmod(filepath.Join(dir, devFileName), 0o644); err != nil {
		t.Fatal(err)
	}
	mustFail(t, runDev(t, dir, environ, "migrate", "up", "--dev"), "chmod 600")
}

func TestDevFileIncomplete(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, devFileName), []byte("LATCHKEY_SECRET=short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustFail(t, runDev(t, dir, []string{"LATCHKEY_DATABASE_URL=" + storetest.SQLiteURL(t)}, "migrate", "up", "--dev"), "delete it")
}

// Without --dev nothing is generated and the settings stay required.
func TestNoDevFileWithoutDev(t *testing.T) {
	dir := t.TempDir()
	mustFail(t, runDev(t, dir, []string{"LATCHKEY_DATABASE_URL=" + storetest.SQLiteURL(t)}, "serve"), "LATCHKEY_SECRET", "LATCHKEY_ADMIN_TOKEN")
	if _, err := os.Stat(filepath.Join(dir, devFileName)); !os.IsNotExist(err) {
		t.Fatalf("a dev file appeared without --dev: %v", err)
	}
}

// Zero setup: with --dev and nothing else, the database and the secrets
// file land in the working directory.
func TestDevDefaultsInWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	mustSucceed(t, latchkey(t, nil, "", "migrate", "up", "--dev"))
	for _, name := range []string{"latchkey.db", devFileName} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	mustSucceed(t, latchkey(t, nil, "", "client", "create", "--dev", "--grant-type", "client_credentials"))
}

// logWatch is a running server's stderr: it hands over the first log
// record with the given message, which carries the listeners' addresses.
type logWatch struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	msg  string
	rec  chan map[string]any
	sent bool
}

func (w *logWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	var rec map[string]any
	if !w.sent && json.Unmarshal(p, &rec) == nil && rec["msg"] == w.msg {
		w.sent = true
		w.rec <- rec
	}
	return len(p), nil
}

func (w *logWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// serveDev starts `serve --dev` and waits until it listens. stop cancels
// it and returns how it ended.
func serveDev(t *testing.T, dir string, environ []string) (public, admin string, stop func() result) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	var stdout bytes.Buffer
	stderr := &logWatch{msg: "latchkey serving", rec: make(chan map[string]any, 1)}
	done := make(chan int, 1)
	go func() { done <- latchkeyDev(ctx, dir, environ, &stdout, stderr, "serve", "--dev") }()
	// The server must be gone before the test's directories are removed.
	t.Cleanup(func() { cancel(); <-done })

	select {
	case rec := <-stderr.rec:
		public, admin = fmt.Sprint(rec["public_addr"]), fmt.Sprint(rec["admin_addr"])
	case code := <-done:
		done <- code
		t.Fatalf("serve --dev exited %d before serving: %s", code, stderr)
	case <-time.After(hangGuard):
		t.Fatalf("serve --dev did not start: %s", stderr)
	}
	stop = func() result {
		t.Helper()
		cancel()
		select {
		case code := <-done:
			done <- code
			return result{code, stdout.String(), stderr.String()}
		case <-time.After(hangGuard):
			t.Fatal("serve --dev did not stop after its context ended")
			return result{}
		}
	}
	return public, admin, stop
}

// httpGet answers status and body, with the bearer token when given.
func httpGet(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Timeout: hangGuard}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// serve --dev migrates, seeds the demo client and user, serves on both
// listeners, and stops cleanly when its context ends.
func TestServeDev(t *testing.T) {
	dir := t.TempDir()
	environ := []string{
		"LATCHKEY_DATABASE_URL=" + storetest.SQLiteURL(t),
		"LATCHKEY_PUBLIC_ADDR=127.0.0.1:0", "LATCHKEY_ADMIN_ADDR=127.0.0.1:0",
	}
	public, admin, stop := serveDev(t, dir, environ)
	vals, _ := devFile(t, dir)
	if code, body := httpGet(t, "http://"+public+"/healthz", ""); code != http.StatusOK {
		t.Errorf("public /healthz: %d %s", code, body)
	}
	if code, _ := httpGet(t, "http://"+admin+"/admin/clients", ""); code != http.StatusUnauthorized {
		t.Errorf("admin API without the token: %d, want 401", code)
	}
	if code, body := httpGet(t, "http://"+admin+"/admin/clients", vals[devAdminTokenKey]); code != http.StatusOK || !strings.Contains(body, devDemoClientID) {
		t.Errorf("admin API with the dev admin token: %d %s", code, body)
	} else if !strings.Contains(body, `"openid profile email offline_access"`) || !strings.Contains(body, `"post_logout_redirect_uris": [`) {
		t.Errorf("the demo client cannot sign in the SPA with OpenID Connect: %s", body)
	}
	// The demo SPA's origin may call the token endpoint (issue 14).
	pre, _ := http.NewRequest(http.MethodOptions, "http://"+public+"/oauth2/token", nil)
	pre.Header.Set("Origin", "http://localhost:5173")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	if resp, err := http.DefaultClient.Do(pre); err != nil {
		t.Error(err)
	} else {
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "http://localhost:5173" {
			t.Errorf("serve --dev: the demo SPA's origin may not call the token endpoint (Access-Control-Allow-Origin %q)", got)
		}
	}
	// They are the demo client's, derived from its redirect URIs (issue
	// 18): the token request names it.
	for origin, want := range map[string]string{"http://localhost:5173": "http://localhost:5173", "http://127.0.0.1:5173": "http://127.0.0.1:5173", "http://localhost:3000": ""} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+public+"/oauth2/token", strings.NewReader("grant_type=authorization_code&code=x&client_id="+devDemoClientID))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		if resp, err := http.DefaultClient.Do(req); err != nil {
			t.Error(err)
		} else {
			resp.Body.Close()
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != want {
				t.Errorf("serve --dev: a token request for the demo client from %s: Access-Control-Allow-Origin %q, want %q", origin, got, want)
			}
		}
	}

	r := stop()
	if r.code != 0 {
		t.Fatalf("serve --dev after its context ended: %v", r)
	}
	for _, want := range []string{devDemoClientID, vals[devAdminTokenKey], vals[devDemoPasswordKey], devFileName, "CORS for http://localhost:5173, http://127.0.0.1:5173"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the dev banner does not show %q: %s", want, r.stdout)
		}
	}
	if out := mustSucceed(t, latchkey(t, environ, "", "user", "list")).stdout; !strings.Contains(out, `"`+devDemoUsername+`"`) {
		t.Errorf("no demo user after serve --dev: %s", out)
	}

	// A second start finds the demo client and user already there.
	_, _, stop = serveDev(t, dir, environ)
	if r := stop(); r.code != 0 {
		t.Fatalf("second serve --dev: %v", r)
	}
}

// A dev file without DEMO_PASSWORD is complete as far as readDevFile is
// concerned; serve --dev then skips the demo user rather than failing.
func TestServeDevWithoutDemoPassword(t *testing.T) {
	dir := t.TempDir()
	file := devSecretKey + "=" + testSecret + "\n" + devAdminTokenKey + "=" + testAdminToken + "\n"
	if err := os.WriteFile(filepath.Join(dir, devFileName), []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	environ := []string{
		"LATCHKEY_DATABASE_URL=" + storetest.SQLiteURL(t),
		"LATCHKEY_PUBLIC_ADDR=127.0.0.1:0", "LATCHKEY_ADMIN_ADDR=127.0.0.1:0",
	}
	_, admin, stop := serveDev(t, dir, environ)
	if code, body := httpGet(t, "http://"+admin+"/admin/clients", testAdminToken); code != http.StatusOK || !strings.Contains(body, devDemoClientID) {
		t.Errorf("admin API: %d %s", code, body)
	}
	if r := stop(); r.code != 0 {
		t.Fatalf("serve --dev: %v", r)
	}
	if out := mustSucceed(t, latchkey(t, environ, "", "user", "list")).stdout; strings.TrimSpace(out) != "[]" {
		t.Errorf("a demo user without a password: %s", out)
	}
}

// Each command offers the flags of the settings it uses, with their
// defaults: server flags belong to serve (issue 13: `user list --help`
// listed --pprof).
func TestHelpFlagsPerCommand(t *testing.T) {
	cases := []struct {
		args     []string
		has, not []string
	}{
		{[]string{"serve", "--help"}, []string{"--pprof", "--issuer", "--access-token-ttl duration", "(default 15m0s)", "--login-user-limit int", "(default 5)", "--database-max-open-conns", "--config", "--log-level"}, nil},
		{[]string{"user", "list", "--help"}, []string{"--database-url", "--access-token-ttl", "--config", "--dev"}, []string{"--pprof", "--issuer", "--public-addr", "--signing-alg", "--cors-origins"}},
		{[]string{"migrate", "up", "--help"}, []string{"--database-url", "--database-max-open-conns"}, []string{"--pprof", "--issuer", "--access-token-ttl"}},
		{[]string{"keys", "rotate", "--help"}, []string{"--signing-alg", "--key-prepublish-period", "(default 15m0s)"}, []string{"--pprof", "--issuer"}},
		{[]string{"janitor", "--help"}, []string{"--audit-retention", "(default 8760h0m0s)", "--login-failure-window"}, []string{"--pprof", "--issuer"}},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args[:len(tc.args)-1], " "), func(t *testing.T) {
			r := mustSucceed(t, latchkey(t, nil, "", tc.args...))
			for _, s := range tc.has {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("help does not show %q:\n%s", s, r.stdout)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(r.stdout, s) {
					t.Errorf("help shows %q:\n%s", s, r.stdout)
				}
			}
		})
	}
	mustFail(t, latchkey(t, nil, "", "user", "list", "--pprof"), "unknown flag: --pprof")
}

// A bad duration is one problem among the others, all in one message.
func TestBadDurationWithOtherProblems(t *testing.T) {
	environ := []string{"LATCHKEY_DATABASE_URL=" + storetest.SQLiteURL(t), "LATCHKEY_SECRET=short", "LATCHKEY_SESSION_TTL=a week"}
	mustFail(t, latchkey(t, environ, "", "serve", "--config", writeConfig(t, "auth_code_ttl: 60\nemail: x\n")),
		"LATCHKEY_SESSION_TTL", "LATCHKEY_AUTH_CODE_TTL", "unknown keys email", "LATCHKEY_SECRET", "LATCHKEY_ADMIN_TOKEN")
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "latchkey.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// LATCHKEY_DATABASE_MAX_OPEN_CONNS sizes the store's pool.
func TestPoolSizeSetting(t *testing.T) {
	cfg := config.Default()
	if got := storeOptions(cfg, nil).MaxOpenConns; got != 20 {
		t.Errorf("default pool %d, want 20 (the store's former built-in)", got)
	}
	cfg.DatabaseMaxOpenConns = 64
	if got := storeOptions(cfg, nil).MaxOpenConns; got != 64 {
		t.Errorf("pool %d, want 64", got)
	}
}

// LATCHKEY_DATABASE_LISTEN_URL reaches the store's listener.
func TestListenURLSetting(t *testing.T) {
	cfg := config.Default()
	if got := storeOptions(cfg, nil).ListenURL; got != "" {
		t.Errorf("default listen URL %q, want none (the database URL)", got)
	}
	cfg.DatabaseListenURL = "postgres://latchkey@db:5432/latchkey"
	if got := storeOptions(cfg, nil).ListenURL; got != cfg.DatabaseListenURL {
		t.Errorf("listen URL %q, want %q", got, cfg.DatabaseListenURL)
	}
}

// A --dev command run where serve --dev never ran says there is no dev
// database here, instead of making an empty one and calling its schema
// behind, and leaves no generated secrets behind.
func TestDevCommandWithoutDevDatabase(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	mustFail(t, runDev(t, dir, nil, "client", "create", "--dev", "--grant-type", "client_credentials"), "no dev database")
	for _, name := range []string{devDatabaseFile, devFileName} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("the failed command left %s behind", name)
		}
	}
}
