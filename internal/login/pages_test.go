package login_test

import (
	"context"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// pages serves the login pages of a new handler over st.
func pages(t *testing.T, st *store.Store) *httptest.Server {
	t.Helper()
	h, err := login.New(st, login.Config{
		SystemSecrets: secrets.ParseSystemSecrets(strings.Repeat("s", 32)),
		Throttle:      login.DefaultThrottlePolicy,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// form fetches a page's CSRF token and cookie, as a browser does.
func form(t *testing.T, srv *httptest.Server, path string) (token string, cookies []*http.Cookie) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := csrfField.FindStringSubmatch(string(body))
	if m == nil {
		t.Fatalf("GET %s: no CSRF token in\n%s", path, body)
	}
	return html.UnescapeString(m[1]), resp.Cookies()
}

func post(t *testing.T, srv *httptest.Server, path string, cookies []*http.Cookie, f url.Values) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestLogoutAddress: only an unknown client or an address it did not
// register is the caller's 400. A database that cannot be reached is a 503
// page: before, it was answered "that application did not register this
// sign-out address", which sends an operator looking in the wrong place.
func TestLogoutAddress(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		for _, tc := range []struct {
			name, clientID, target string
			down                   bool
			want                   int
		}{
			{name: "registered address", clientID: "app", target: "https://app.example/bye", want: http.StatusSeeOther},
			{name: "no address", clientID: "", target: "", want: http.StatusOK},
			{name: "unknown client", clientID: "nobody", target: "https://app.example/bye", want: http.StatusBadRequest},
			{name: "unregistered address", clientID: "app", target: "https://evil.example/", want: http.StatusBadRequest},
			{name: "database down", clientID: "app", target: "https://app.example/bye", down: true, want: http.StatusServiceUnavailable},
		} {
			t.Run(tc.name, func(t *testing.T) {
				st := storetest.New(t, b)
				c := &store.Client{ID: "app", Name: "App", SecretHash: []byte("h"), RedirectURIs: []string{"https://app.example/cb"},
					PostLogoutRedirectURIs: []string{"https://app.example/bye"}, GrantTypes: []string{"authorization_code"},
					ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: "none"}
				if err := st.CreateClient(context.Background(), c); err != nil {
					t.Fatal(err)
				}
				srv := pages(t, st)
				token, cookies := form(t, srv, "/logout")
				if tc.down {
					_ = st.Close()
				}
				resp := post(t, srv, "/logout", cookies, url.Values{"csrf_token": {token}, "client_id": {tc.clientID},
					"post_logout_redirect_uri": {tc.target}, "state": {"s"}})
				if resp.StatusCode != tc.want {
					t.Fatalf("POST /logout: %d, want %d", resp.StatusCode, tc.want)
				}
				if tc.want >= 500 && resp.Header.Get("Retry-After") == "" {
					t.Error("a 503 without Retry-After")
				}
			})
		}
	})
}
