package cli

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

func TestReadyzURL(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{":8080", "http://127.0.0.1:8080/readyz"},
		{"0.0.0.0:9000", "http://127.0.0.1:9000/readyz"},
		{"[::]:8080", "http://[::1]:8080/readyz"},
		{"127.0.0.1:8080", "http://127.0.0.1:8080/readyz"},
		{"10.0.0.5:8080", "http://10.0.0.5:8080/readyz"},
		{"localhost:8080", "http://localhost:8080/readyz"},
	} {
		got, err := readyzURL(tc.addr)
		if err != nil || got != tc.want {
			t.Errorf("readyzURL(%q) = %q, %v; want %q", tc.addr, got, err, tc.want)
		}
	}
	if _, err := readyzURL("8080"); err == nil || !strings.Contains(err.Error(), "LATCHKEY_PUBLIC_ADDR") {
		t.Errorf("readyzURL(\"8080\"): %v, want an error naming LATCHKEY_PUBLIC_ADDR", err)
	}
}

// health against a real server: ready on a working database, and the
// address taken from LATCHKEY_PUBLIC_ADDR or the flag.
func TestHealthAgainstServe(t *testing.T) {
	environ := []string{
		"LATCHKEY_DATABASE_URL=" + storetest.SQLiteURL(t),
		"LATCHKEY_PUBLIC_ADDR=127.0.0.1:0", "LATCHKEY_ADMIN_ADDR=127.0.0.1:0",
	}
	public, _, _ := serveDev(t, t.TempDir(), environ)
	r := mustSucceed(t, latchkey(t, []string{"LATCHKEY_PUBLIC_ADDR=" + public}, "", "health"))
	if !strings.Contains(r.stdout, "http://"+public+"/readyz") {
		t.Errorf("health does not say what it asked: %v", r)
	}
	_, port, _ := net.SplitHostPort(public)
	// An all-interfaces listener is asked on loopback; the flag wins over
	// the environment.
	mustSucceed(t, latchkey(t, []string{"LATCHKEY_PUBLIC_ADDR=127.0.0.1:1"}, "", "health", "--public-addr", ":"+port))
	// The configuration file serve reads names it too.
	mustSucceed(t, latchkey(t, nil, "", "health", "--config", writeConfig(t, "public_addr: \"0.0.0.0:"+port+"\"\n")))
	// Nothing listens on that port.
	if r := latchkey(t, []string{"LATCHKEY_PUBLIC_ADDR=127.0.0.1:1"}, "", "health"); r.code == 0 {
		t.Errorf("health succeeded against a port nothing listens on: %v", r)
	}
}

// Whatever is wrong, health exits non-zero with one line that says why.
func TestHealthNotReady(t *testing.T) {
	unready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"database unavailable"}` + "\n"))
	}))
	defer unready.Close()
	// A server that never answers: the handler waits for the client to
	// give up, so the test waits only for the timeout.
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hang.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such page\nat all", http.StatusNotFound)
	}))
	defer other.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedAddr := closed.Listener.Addr().String()
	closed.Close()

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"database down", []string{"--public-addr", unready.Listener.Addr().String()}, []string{"503", "database unavailable"}},
		{"nothing listening", []string{"--public-addr", closedAddr}, []string{"not ready", closedAddr, "refused"}},
		{"no answer in time", []string{"--public-addr", hang.Listener.Addr().String(), "--timeout", "100ms"}, []string{"did not answer within the timeout"}},
		{"something else on the port", []string{"--public-addr", other.Listener.Addr().String()}, []string{"404", "no such page at all"}},
		{"bad address", []string{"--public-addr", "8080"}, []string{"LATCHKEY_PUBLIC_ADDR", "HOST:PORT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := latchkey(t, nil, "", append([]string{"health"}, tc.args...)...)
			mustFail(t, r, tc.want...)
			if lines := strings.Count(strings.TrimSpace(r.stderr), "\n") + 1; lines != 1 {
				t.Errorf("health's reason is %d lines, want one: %q", lines, r.stderr)
			}
		})
	}
}
