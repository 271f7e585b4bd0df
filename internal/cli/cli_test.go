package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

const testSecret = "cli-test-secret-0123456789-0123456789"

// run executes the command line in process with its own environment.
func run(t *testing.T, environ []string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e := &env{environ: environ, stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut, devDir: t.TempDir()}
	root := e.rootCommand()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	code := 0
	if err := root.ExecuteContext(ctx); err != nil {
		errOut.WriteString(err.Error())
		code = 1
	}
	return code, out.String(), errOut.String()
}

func TestCommands(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		environ := []string{"LATCHKEY_DATABASE_URL=" + b.URL(t), "LATCHKEY_SECRET=" + testSecret, "LATCHKEY_LOG_LEVEL=error"}

		// serve refuses a schema that is behind, at once and with the fix.
		code, _, stderr := run(t, append(environ, "LATCHKEY_ADMIN_TOKEN=admin-token-0123456789",
			"LATCHKEY_PUBLIC_ADDR=127.0.0.1:0", "LATCHKEY_ADMIN_ADDR=127.0.0.1:0"), "", "serve")
		if code == 0 || !strings.Contains(stderr, "migrate up") {
			t.Fatalf("serve on an empty database: %d %q", code, stderr)
		}
		if _, out, _ := run(t, environ, "", "migrate", "status"); !strings.Contains(out, "pending") {
			t.Fatalf("status before: %q", out)
		}
		if code, out, stderr := run(t, environ, "", "migrate", "up"); code != 0 || !strings.Contains(out, "applied 00001") {
			t.Fatalf("migrate up: %d %q %q", code, out, stderr)
		}
		if _, out, _ := run(t, environ, "", "migrate", "up"); !strings.Contains(out, "up to date") {
			t.Fatalf("second migrate up: %q", out)
		}
		if _, out, _ := run(t, environ, "", "migrate", "status"); strings.Contains(out, "pending") {
			t.Fatalf("status after: %q", out)
		}

		code, out, stderr := run(t, environ, "", "client", "create", "--name", "svc", "--grant-type", "client_credentials", "--scope", "read")
		var created map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &created) != nil || len(created["client_secret"].(string)) < 43 {
			t.Fatalf("client create: %d %q %q", code, out, stderr)
		}
		id := created["client_id"].(string)
		code, out, _ = run(t, environ, `{"client_id":"from-json","grant_types":["client_credentials"]}`, "client", "create", "--from-json", "-")
		if code != 0 || !strings.Contains(out, `"from-json"`) {
			t.Fatalf("client create --from-json: %d %q", code, out)
		}
		// A rule-breaking registration stores nothing.
		if code, _, stderr := run(t, environ, "", "client", "create", "--auth-method", "none", "--grant-type", "client_credentials"); code == 0 || !strings.Contains(stderr, "invalid_client_metadata") {
			t.Fatalf("public client with client_credentials: %d %q", code, stderr)
		}
		_, out, _ = run(t, environ, "", "client", "list")
		var list []map[string]any
		if json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 {
			t.Fatalf("client list: %q", out)
		}
		if _, out, _ := run(t, environ, "", "client", "get", id); !strings.Contains(out, id) || strings.Contains(out, "client_secret\"") {
			t.Fatalf("client get: %q", out)
		}
		if code, _, _ := run(t, environ, "", "client", "delete", id); code != 0 {
			t.Fatal("client delete")
		}
		if code, _, _ := run(t, environ, "", "client", "get", id); code == 0 {
			t.Fatal("client get of a deleted client succeeded")
		}

		// Users: passwords come from stdin, never argv.
		code, out, stderr = run(t, environ, "user-password-1\n", "user", "create", "uma")
		var user map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &user) != nil || user["username"] != "uma" {
			t.Fatalf("user create: %d %q %q", code, out, stderr)
		}
		if code, _, stderr := run(t, environ, "", "user", "create", "vic"); code == 0 || !strings.Contains(stderr, "stdin") {
			t.Fatalf("user create without a password: %d %q", code, stderr)
		}
		if code, _, _ := run(t, environ, "another-password\n", "user", "set-password", user["id"].(string)); code != 0 {
			t.Fatal("set-password")
		}
		if _, out, _ := run(t, environ, "", "user", "list"); !strings.Contains(out, "uma") || strings.Contains(out, "argon2") {
			t.Fatalf("user list: %q", out)
		}
		if code, _, _ := run(t, environ, "", "user", "delete", user["id"].(string)); code != 0 {
			t.Fatal("user delete")
		}

		if code, out, _ := run(t, environ, "", "keys", "rotate"); code != 0 || !strings.Contains(out, `"pending"`) {
			t.Fatalf("keys rotate: %q", out)
		}
		if _, out, _ := run(t, environ, "", "keys", "list"); strings.Count(out, `"kid"`) != 2 {
			t.Fatalf("keys list: %q", out)
		}
		if code, out, _ := run(t, environ, "", "janitor"); code != 0 || !strings.Contains(out, `"ran": true`) {
			t.Fatalf("janitor: %q", out)
		}
	})
}

func TestVersionAndBadConfig(t *testing.T) {
	if _, out, _ := run(t, nil, "", "version"); !strings.Contains(out, "latchkey") || !strings.Contains(out, "go1.") {
		t.Fatalf("version: %q", out)
	}
	code, _, stderr := run(t, []string{"LATCHKEY_DATABASE_URL=sqlite::memory:", "LATCHKEY_SECRET=short"}, "", "serve")
	if code == 0 || !strings.Contains(stderr, "LATCHKEY_SECRET") || !strings.Contains(stderr, "LATCHKEY_ADMIN_TOKEN") {
		t.Fatalf("bad config: %d %q", code, stderr)
	}
}

// --dev keeps its generated secrets in a 0600 file, reuses them, and
// refuses the file once others can read it.
func TestDevFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, devFileName)
	first, err := loadDevFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(path)
	if info.Mode().Perm() != 0o600 || len(first[devSecretKey]) < 32 || first[devAdminTokenKey] == "" {
		t.Fatalf("dev file mode %v, values %v", info.Mode().Perm(), len(first))
	}
	again, err := loadDevFile(path)
	if err != nil || again[devSecretKey] != first[devSecretKey] {
		t.Fatal("the dev secret changed between runs")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadDevFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable dev file: %v", err)
	}
}
