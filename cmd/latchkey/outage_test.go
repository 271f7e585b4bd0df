//go:build outage

package main

// This file is compiled only with -tags outage: TestDatabaseOutage stops and
// restarts the machine's PostgreSQL, which no ordinary `go test ./...` may
// do, even with LATCHKEY_FAULT_TESTS set by accident. .ci/run runs it last
// and alone.

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// The database stopped under load: 503 with Retry-After (never a 500),
// /readyz fails, and everything works again once it is back, without a
// restart. It stops the machine's PostgreSQL, so it runs only when asked
// (-tags outage and LATCHKEY_FAULT_TESTS=1; .ci/run does, after the other tests).
func TestDatabaseOutage(t *testing.T) {
	needPostgres(t)
	if os.Getenv("LATCHKEY_FAULT_TESTS") != "1" {
		t.Skip("stops the local PostgreSQL; set LATCHKEY_FAULT_TESTS=1 and build with -tags outage (.ci/run does)")
	}
	in := startCluster(t, 1)[0]
	_, svc := in.adminCall(t, http.MethodPost, "/admin/clients", map[string]any{"grant_types": []string{"client_credentials"}})
	id, secret := svc["client_id"].(string), svc["client_secret"].(string)
	_, tok := in.form(t, "/oauth2/token", id, secret, url.Values{"grant_type": {"client_credentials"}})

	pg := func(action string) {
		out, err := exec.Command("sh", "-c", "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | sort -V | tail -n 1) main "+action).CombinedOutput()
		if err != nil {
			t.Fatalf("pg_ctlcluster %s: %v %s", action, err, out)
		}
	}
	// Load runs through the outage and the recovery: no answer may be a 500.
	loadCtx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	// warm is closed once the load has had answers, so the outage begins
	// under load without waiting on a timer.
	warm, warmOnce := make(chan struct{}), sync.Once{}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 3 * time.Second}
			for loadCtx.Err() == nil {
				req, _ := http.NewRequest(http.MethodPost, "http://"+in.public+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(id, secret)
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				resp.Body.Close()
				mu.Lock()
				statuses[resp.StatusCode]++
				if statuses[http.StatusOK] >= 20 {
					warmOnce.Do(func() { close(warm) })
				}
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	defer func() {
		stopLoad()
		wg.Wait()
		if statuses[http.StatusInternalServerError] > 0 {
			t.Errorf("answers during the outage: %v (a 500 among them)", statuses)
		}
		t.Logf("answers under load through the outage: %v", statuses)
	}()
	select {
	case <-warm:
	case <-time.After(30 * time.Second):
		t.Fatal("the load got no answers before the outage")
	}

	pg("stop")
	t.Cleanup(func() {
		_ = exec.Command("sh", "-c", "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | sort -V | tail -n 1) main start").Run()
	})

	resp, err := http.Get("http://" + in.public + "/readyz")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz with the database down: %v %v", err, resp)
	}
	resp.Body.Close()
	status, m := in.form(t, "/oauth2/introspect", id, secret, url.Values{"token": {tok["access_token"].(string)}})
	if status != http.StatusServiceUnavailable || m["error"] != "temporarily_unavailable" {
		t.Fatalf("introspection with the database down: %d %v", status, m)
	}
	status, m = in.form(t, "/oauth2/revoke", id, secret, url.Values{"token": {tok["access_token"].(string)}})
	if status != http.StatusServiceUnavailable {
		t.Fatalf("revocation with the database down: %d %v", status, m)
	}

	pg("start")
	eventually(t, "the server recovers without a restart", func() bool {
		status, m := in.form(t, "/oauth2/introspect", id, secret, url.Values{"token": {tok["access_token"].(string)}})
		return status == http.StatusOK && m["active"] == true
	})
	if status, _ := in.form(t, "/oauth2/token", id, secret, url.Values{"grant_type": {"client_credentials"}}); status != http.StatusOK {
		t.Fatalf("token after recovery: %d", status)
	}
}
