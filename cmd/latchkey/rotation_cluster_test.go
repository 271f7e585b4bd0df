package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

// startInstances starts one `latchkey serve` per env list on dbURL, all at
// once, behind one issuer, and waits until every one is ready. stop ends
// them (and is also run at the end of the test).
func startInstances(t *testing.T, bin, dbURL string, envs ...[]string) (insts []*instance, stop func()) {
	t.Helper()
	issuer := ""
	for i, extra := range envs {
		in := &instance{public: freeAddr(t), admin: freeAddr(t), dbURL: dbURL, logs: &bytes.Buffer{}}
		if i == 0 {
			issuer = "http://" + in.public
		}
		in.cmd = exec.Command(bin, "serve", "--migrate")
		in.cmd.Env = append(append(os.Environ(),
			"LATCHKEY_DATABASE_URL="+dbURL, "LATCHKEY_ADMIN_TOKEN="+clusterAdmin,
			"LATCHKEY_PUBLIC_ADDR="+in.public, "LATCHKEY_ADMIN_ADDR="+in.admin, "LATCHKEY_ISSUER="+issuer,
			"LATCHKEY_LOG_LEVEL=warn"), extra...)
		in.cmd.Stdout, in.cmd.Stderr = in.logs, in.logs
		insts = append(insts, in)
	}
	var wg sync.WaitGroup
	for _, in := range insts {
		wg.Add(1)
		go func() { defer wg.Done(); _ = in.cmd.Start() }()
	}
	wg.Wait()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			for i, in := range insts {
				if in.cmd.Process == nil {
					continue
				}
				_ = in.cmd.Process.Signal(os.Interrupt)
				_ = in.cmd.Wait()
				if t.Failed() {
					t.Logf("instance %d logs:\n%s", i, in.logs.String())
				}
			}
		})
	}
	t.Cleanup(stop)
	for _, in := range insts {
		waitReady(t, in)
	}
	return insts, stop
}

func (in *instance) keys(t *testing.T) []map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+in.admin+"/admin/keys", nil)
	req.Header.Set("Authorization", "Bearer "+clusterAdmin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	if err := decodeJSON(resp, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func kidOf(t *testing.T, jwt string) string {
	t.Helper()
	header, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		KID string `json:"kid"`
	}
	if err := json.Unmarshal(header, &h); err != nil {
		t.Fatal(err)
	}
	return h.KID
}

// A fleet restarted with LATCHKEY_SECRET=new,old, all instances at once,
// and half of it switched to opaque access tokens: the instances make one
// replacement signing key between them, and a token of either format
// revoked at an instance of the other format is dead everywhere.
func TestClusterSecretRotationAndFormatSwitch(t *testing.T) {
	if os.Getenv(storetest.PostgresEnv) == "" {
		t.Skipf("%s is not set", storetest.PostgresEnv)
	}
	dbURL := storetest.PostgresURL(t)
	bin := filepath.Join(t.TempDir(), "latchkey")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	const newSecret = "cluster-test-NEW-secret-0123456789-0123456789"
	// One issuer across the restart, as behind a load balancer (the last
	// value of a variable wins).
	const issuer = "LATCHKEY_ISSUER=http://localhost:1"
	before, stop := startInstances(t, bin, dbURL, []string{issuer, "LATCHKEY_SECRET=" + clusterSecret}, []string{issuer, "LATCHKEY_SECRET=" + clusterSecret})
	_, pwd := before[0].adminCall(t, http.MethodPost, "/admin/clients", map[string]any{"trusted": true,
		"grant_types": []string{"password", "refresh_token"}, "scope": "read offline_access"})
	id, secret := pwd["client_id"].(string), pwd["client_secret"].(string)
	if st, m := before[0].adminCall(t, http.MethodPost, "/admin/users", map[string]string{"username": "una", "password": "una-password-1"}); st != http.StatusCreated {
		t.Fatalf("create user: %d %v", st, m)
	}
	login := url.Values{"grant_type": {"password"}, "username": {"una"}, "password": {"una-password-1"}, "scope": {"read offline_access"}}
	_, old := before[1].form(t, "/oauth2/token", id, secret, login)
	oldKID := kidOf(t, old["access_token"].(string))
	stop()

	rotated := []string{issuer, "LATCHKEY_SECRET=" + newSecret + "," + clusterSecret}
	after, _ := startInstances(t, bin, dbURL,
		append(rotated, "LATCHKEY_ACCESS_TOKEN_FORMAT=jwt"), append(rotated, "LATCHKEY_ACCESS_TOKEN_FORMAT=opaque"),
		append(rotated, "LATCHKEY_ACCESS_TOKEN_FORMAT=jwt"))
	jwtInst, opaqueInst := after[0], after[1]

	t.Run("instances started together with new,old make one replacement key", func(t *testing.T) {
		for i, in := range after {
			ks := in.keys(t)
			if len(ks) != 6 {
				t.Fatalf("instance %d keys: %v", i, ks)
			}
			// One chain per algorithm, each listed oldest first: the old key
			// and one replacement in every chain.
			for c := 0; c < len(ks); c += 2 {
				if ks[c]["alg"] != ks[c+1]["alg"] || ks[c]["sealed"] != "older secret" ||
					ks[c+1]["state"] != "pending" || ks[c+1]["sealed"] != "current secret" {
					t.Fatalf("instance %d keys: %v", i, ks)
				}
			}
			if ks[0]["kid"] != oldKID {
				t.Fatalf("instance %d: the ES256 chain does not start with the key that signed: %v", i, ks)
			}
		}
	})

	t.Run("a JWT from before, revoked at an opaque instance, is dead at a JWT instance", func(t *testing.T) {
		if _, in := jwtInst.form(t, "/oauth2/introspect", id, secret, url.Values{"token": {old["access_token"].(string)}}); in["active"] != true {
			t.Fatalf("before revocation: %v", in)
		}
		if st, m := opaqueInst.form(t, "/oauth2/revoke", id, secret, url.Values{"token": {old["access_token"].(string)}}); st != http.StatusOK {
			t.Fatalf("revoke: %d %v", st, m)
		}
		for i, in := range after {
			inactiveWithinNotice(t, fmt.Sprintf("still active at instance %d", i), in, id, secret, old["access_token"].(string))
			if st, _ := in.form(t, "/oauth2/token", id, secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {old["refresh_token"].(string)}}); st != http.StatusBadRequest {
				t.Fatalf("refresh at instance %d: %d", i, st)
			}
		}
	})

	t.Run("an opaque token revoked at a JWT instance is dead at the opaque instance", func(t *testing.T) {
		_, tok := opaqueInst.form(t, "/oauth2/token", id, secret, login)
		if st, m := jwtInst.form(t, "/oauth2/revoke", id, secret, url.Values{"token": {tok["access_token"].(string)}}); st != http.StatusOK {
			t.Fatalf("revoke: %d %v", st, m)
		}
		if _, m := opaqueInst.form(t, "/oauth2/introspect", id, secret, url.Values{"token": {tok["access_token"].(string)}}); m["active"] != false {
			t.Fatalf("still active at the opaque instance: %v", m)
		}
	})
}
