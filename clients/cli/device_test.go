package cli_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/clients/cli"
)

// fakeDeviceServer is an RFC 8628 authorization server whose token
// endpoint gives the answers listed, one per poll, and records when each
// poll came.
type fakeDeviceServer struct {
	*httptest.Server
	t        *testing.T
	answers  []string // an RFC 8628 §3.5 error code, or "token"
	noDevice bool

	mu    sync.Mutex
	polls []time.Time
}

func newFakeDeviceServer(t *testing.T, answers ...string) *fakeDeviceServer {
	f := &fakeDeviceServer{t: t, answers: answers}
	mux := http.NewServeMux()
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		m := map[string]any{"issuer": f.URL, "authorization_endpoint": f.URL + "/authorize", "token_endpoint": f.URL + "/token",
			"revocation_endpoint": f.URL + "/revoke"}
		if !f.noDevice {
			m["device_authorization_endpoint"] = f.URL + "/device_authorization"
		}
		_ = json.NewEncoder(w).Encode(m)
	})
	// RFC 8628 §3.1 / §3.2.
	mux.HandleFunc("POST /device_authorization", func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("client_id") != "lkcli" || r.FormValue("scope") != "openid offline_access" {
			t.Errorf("device authorization request: %v", r.Form)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"device_code": "dev-code-1", "user_code": "BDWP-HQPK",
			"verification_uri": f.URL + "/device", "verification_uri_complete": f.URL + "/device?user_code=BDWPHQPK",
			"expires_in": 600, "interval": 1})
	})
	// RFC 8628 §3.4 / §3.5.
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("grant_type") != "urn:ietf:params:oauth:grant-type:device_code" || r.FormValue("device_code") != "dev-code-1" ||
			r.FormValue("client_id") != "lkcli" {
			t.Errorf("token request: %v", r.Form)
		}
		f.mu.Lock()
		n := len(f.polls)
		f.polls = append(f.polls, time.Now())
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if n >= len(f.answers) || f.answers[n] != "token" {
			code := "expired_token"
			if n < len(f.answers) {
				code = f.answers[n]
			}
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "device-at", "token_type": "Bearer", "expires_in": 900,
			"refresh_token": "device-rt", "scope": "openid offline_access"})
	})
	return f
}

func (f *fakeDeviceServer) app(tokens string) *run {
	r := &run{out: nil, errOut: newWatcher()}
	r.app = &cli.App{Stderr: r.errOut, TokensPath: tokens, Getenv: func(string) string { return "" },
		OpenBrowser: func(string) error { f.t.Error("the device flow opened a browser"); return nil }}
	return r
}

var userCodeRe = regexp.MustCompile(`\b[B-DF-HJ-NP-TV-XZ]{4}-[B-DF-HJ-NP-TV-XZ]{4}\b`)

// lkcli login --device per RFC 8628, against a scripted server: it shows
// the code and both URIs, polls no faster than the interval, keeps polling
// on authorization_pending, and stops with a clear message on
// access_denied or expired_token.
func TestDeviceLoginRFC8628(t *testing.T) {
	cases := []struct {
		name     string
		answers  []string
		noDevice bool
		ok       bool
		message  string
		polls    int
	}{
		{"approved after a pending poll", []string{"authorization_pending", "token"}, false, true, "Signed in", 2},
		{"denied", []string{"access_denied"}, false, false, "denied", 1},
		{"expired", []string{"expired_token"}, false, false, "expired", 1},
		{"no device endpoint in metadata", nil, true, false, "offers no device_authorization_endpoint", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeDeviceServer(t, tc.answers...)
			f.noDevice = tc.noDevice
			tokens := tokensPath(t)
			r := f.app(tokens)
			started := time.Now()
			code := <-r.main("login", "--device", "--issuer", f.URL, "--client-id", "lkcli")
			out := r.errOut.String()
			if (code == 0) != tc.ok || !strings.Contains(out, tc.message) {
				t.Fatalf("exit %d, output:\n%s", code, out)
			}
			f.mu.Lock()
			polls := f.polls
			f.mu.Unlock()
			if len(polls) != tc.polls {
				t.Fatalf("%d polls, want %d", len(polls), tc.polls)
			}
			// §3.5: no poll before the interval has passed, none closer
			// together than it.
			last := started
			for i, p := range polls {
				if p.Sub(last) < time.Second-50*time.Millisecond {
					t.Fatalf("poll %d came %v after the previous step, interval 1 s", i+1, p.Sub(last))
				}
				last = p
			}
			if tc.noDevice {
				return
			}
			for _, want := range []string{"BDWP-HQPK", f.URL + "/device\n", f.URL + "/device?user_code=BDWPHQPK"} {
				if !strings.Contains(out, want) {
					t.Fatalf("the output lacks %q:\n%s", want, out)
				}
			}
			_, err := os.Stat(tokens)
			if !tc.ok {
				if !os.IsNotExist(err) {
					t.Fatalf("a failed device login wrote the tokens file (%v)", err)
				}
				return
			}
			s := readSessions(t, tokens)
			if len(s) != 1 || s[0].AccessToken != "device-at" || s[0].RefreshToken != "device-rt" || s[0].Issuer != f.URL {
				t.Fatalf("sessions: %+v", s)
			}
		})
	}
}
