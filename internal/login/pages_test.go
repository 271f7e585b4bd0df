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
	"time"

	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// pages serves the login pages of a new handler over st. Every password
// is right.
func pages(t *testing.T, st *store.Store) (*login.Handler, *httptest.Server) {
	t.Helper()
	h, err := login.New(st, login.Config{
		SessionTTL: time.Hour, SessionIdleTTL: time.Hour,
		VerifyPassword: func(string, string) (bool, error) { return true, nil },
		AuthorizePath:  "/oauth2/authorize",
		SystemSecrets:  secrets.ParseSystemSecrets(strings.Repeat("s", 32)),
		Throttle:       login.DefaultThrottlePolicy,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return h, srv
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

// signedIn makes a login session for a new user and returns its cookie.
func signedIn(t *testing.T, st *store.Store, username string) *http.Cookie {
	t.Helper()
	ctx := context.Background()
	if err := st.CreateUser(ctx, &store.User{ID: "id-" + username, Username: username, PasswordHash: "unused"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := st.CreateLoginSession(ctx, "cookie-"+username, &store.LoginSession{UserID: "id-" + username, AuthTime: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return &http.Cookie{Name: "latchkey_session", Value: "cookie-" + username}
}

func get(t *testing.T, srv *httptest.Server, path string, cookies ...*http.Cookie) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// TestConsentPageShowsWhatTheEndpointSigned: the consent page names the
// application and scopes the authorization endpoint handed to
// SendToConsent, never what a link says: a crafted link cannot put a
// trusted name over another application's request.
func TestConsentPageShowsWhatTheEndpointSigned(t *testing.T) {
	st := storetest.New(t, storetest.Backends()[0])
	h, srv := pages(t, st)
	session := signedIn(t, st, "ada")
	const request = "/oauth2/authorize?client_id=tool&scope=read+write"
	rec := httptest.NewRecorder()
	h.SendToConsent(rec, httptest.NewRequest(http.MethodGet, request, nil),
		login.ReturnTo{URL: request, ClientName: "Handy Tool", Scopes: []string{"read", "write"}})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("SendToConsent: %d", rec.Code)
	}
	signed, _ := url.Parse(rec.Header().Get("Location"))
	if signed.Path != "/consent" || signed.Query().Get("return_to") != request {
		t.Fatalf("SendToConsent went to %s", signed)
	}
	about := signed.Query().Get("about")
	forged := url.Values{"return_to": {request}, "about": {"eyJuIjoiWW91ciBCYW5rIn0" + about[strings.Index(about, "."):]}}
	other := url.Values{"return_to": {"/oauth2/authorize?client_id=evil&scope=read+write"}, "about": {about}}

	for _, tc := range []struct {
		name, query string
		want        int
		shows       []string
	}{
		{"signed", signed.RawQuery, http.StatusOK, []string{"Handy Tool", "read", "write", "ada"}},
		{"forged name", forged.Encode(), http.StatusBadRequest, nil},
		{"signed for another request", other.Encode(), http.StatusBadRequest, nil},
		{"nothing signed", url.Values{"return_to": {request}}.Encode(), http.StatusBadRequest, nil},
		{"not the authorization endpoint", url.Values{"return_to": {"/admin?x=1"}, "about": {about}}.Encode(), http.StatusBadRequest, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, page := get(t, srv, "/consent?"+tc.query, session)
			if resp.StatusCode != tc.want {
				t.Fatalf("GET /consent: %d, want %d\n%s", resp.StatusCode, tc.want, page)
			}
			for _, s := range tc.shows {
				if !strings.Contains(page, s) {
					t.Errorf("the page does not show %q", s)
				}
			}
			if strings.Contains(page, "Your Bank") {
				t.Error("the page shows a forged name")
			}
		})
	}
}

// TestLoginLeavesTheRequestAlone: after a sign-in the browser goes back to
// exactly the request it came with, plus the proof. Rewriting prompt=login
// is the authorization endpoint's business (it knows the sign-in satisfied
// it from the proof); the pages never touch the request's parameters.
func TestLoginLeavesTheRequestAlone(t *testing.T) {
	st := storetest.New(t, storetest.Backends()[0])
	h, srv := pages(t, st)
	if err := st.CreateUser(context.Background(), &store.User{ID: "id-bo", Username: "bo", PasswordHash: "unused"}); err != nil {
		t.Fatal(err)
	}
	const request = "/oauth2/authorize?client_id=tool&prompt=login+consent&scope=read"
	rec := httptest.NewRecorder()
	h.SendToLogin(rec, httptest.NewRequest(http.MethodGet, request, nil), login.ReturnTo{URL: request, ClientName: "Handy Tool"})
	loginURL := rec.Header().Get("Location")
	resp, page := get(t, srv, loginURL)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Handy Tool") {
		t.Fatalf("login page: %d\n%s", resp.StatusCode, page)
	}
	token, cookies := form(t, srv, loginURL)
	resp = post(t, srv, "/login", cookies, url.Values{"csrf_token": {token}, "return_to": {request}, "username": {"bo"}, "password": {"pw"}})
	back, _ := url.Parse(resp.Header.Get("Location"))
	q := back.Query()
	if resp.StatusCode != http.StatusSeeOther || back.Path != "/oauth2/authorize" || !strings.HasPrefix(q.Get("interaction"), "login.") {
		t.Fatalf("after sign-in: %d %s", resp.StatusCode, back)
	}
	q.Del("interaction")
	if want, _ := url.ParseQuery(strings.SplitN(request, "?", 2)[1]); q.Encode() != want.Encode() {
		t.Errorf("the request came back as %s, want %s", q.Encode(), want.Encode())
	}
}
