package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

func needPostgres(t *testing.T) {
	if os.Getenv(storetest.PostgresEnv) == "" {
		t.Skipf("%s is not set", storetest.PostgresEnv)
	}
}

// Slow clients that never finish their headers, and huge bodies, do not
// take the server down: normal requests keep being served, the stalled
// connections are cut, and a 10 MB body is refused before it is read.
func TestSlowClientsAndHugeBodies(t *testing.T) {
	needPostgres(t)
	in := startCluster(t, 1)[0]
	var conns []net.Conn
	for range 200 {
		c, err := net.Dial("tcp", in.public)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-w")
		conns = append(conns, c)
	}
	start := time.Now()
	resp, err := http.Get("http://" + in.public + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK || time.Since(start) > 2*time.Second {
		t.Fatalf("healthz while 200 connections stall: %v %v", err, time.Since(start))
	}
	resp.Body.Close()
	// ReadHeaderTimeout is 5 s: every stalled connection is closed by then.
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
			// A 408 line is fine too; what matters is that the server ends it.
			_, err = bufio.NewReader(c).ReadString('\n')
		}
		c.Close()
	}
	if time.Since(start) > 12*time.Second {
		t.Fatalf("stalled connections were held for %s", time.Since(start))
	}

	req, _ := http.NewRequest(http.MethodPost, "http://"+in.public+"/oauth2/token", strings.NewReader(strings.Repeat("a", 10<<20)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	start = time.Now()
	resp, err = http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("10 MB body: %d", resp.StatusCode)
		}
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("10 MB body took %s to refuse", time.Since(start))
	}
}

// kill -9 under a refresh load, then restart: every refresh token a client
// received either works or its whole grant was revoked; no grant is left
// half-written with two live refresh tokens.
func TestKillDuringRefreshes(t *testing.T) {
	needPostgres(t)
	in := startCluster(t, 1)[0]
	_, pwd := in.adminCall(t, http.MethodPost, "/admin/clients", map[string]any{"trusted": true,
		"grant_types": []string{"password", "refresh_token"}, "scope": "read offline_access"})
	id, secret := pwd["client_id"].(string), pwd["client_secret"].(string)
	in.adminCall(t, http.MethodPost, "/admin/users", map[string]string{"username": "kim", "password": "kim-password-1"})

	const workers = 8
	latest := make([]string, workers)
	for i := range workers {
		_, m := in.form(t, "/oauth2/token", id, secret, url.Values{"grant_type": {"password"}, "username": {"kim"}, "password": {"kim-password-1"}, "scope": {"read offline_access"}})
		latest[i] = m["refresh_token"].(string)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 2 * time.Second}
			for ctx.Err() == nil {
				mu.Lock()
				rt := latest[i]
				mu.Unlock()
				req, _ := http.NewRequest(http.MethodPost, "http://"+in.public+"/oauth2/token",
					strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(id, secret)
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				var m map[string]any
				_ = decodeJSON(resp, &m)
				if next, ok := m["refresh_token"].(string); ok {
					mu.Lock()
					latest[i] = next
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	_ = in.cmd.Process.Kill()
	_ = in.cmd.Wait()
	cancel()
	wg.Wait()

	// Restart on the same database; --migrate again must be a no-op.
	env := in.cmd.Env
	in.cmd = exec.Command(in.cmd.Path, in.cmd.Args[1:]...)
	in.cmd.Env = env
	in.cmd.Stdout, in.cmd.Stderr = in.logs, in.logs
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, in)

	st := storetest.Open(t, in.dbURL, store.Options{})
	for i, rt := range latest {
		status, _ := in.form(t, "/oauth2/token", id, secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		if status == http.StatusOK {
			continue
		}
		// Not usable: then the grant must be dead as a whole.
		rec, err := st.FindRefreshToken(context.Background(), rt[strings.LastIndexByte(rt, '.')+1:], nil)
		if err != nil {
			t.Fatalf("worker %d: the last refresh token it received is unknown after the crash: %v", i, err)
		}
		if live, err := st.ActiveRefreshTokens(context.Background(), rec.Request.GetID()); err != nil || live != 0 {
			t.Errorf("worker %d: its token fails but its grant has %d live refresh tokens (%v)", i, live, err)
		}
	}
}
