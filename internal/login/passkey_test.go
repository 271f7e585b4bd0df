package login_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/metrics"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"

	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// The go-webauthn wiring, driven by a software authenticator: an ECDSA
// P-256 key whose assertions (and a "none" attestation) are built and
// signed here as a browser and an authenticator would, so that what the
// server refuses can be tested without Chromium.

const (
	pkIssuer = "https://id.example.test"
	pkRPID   = "id.example.test"
)

var b64 = base64.RawURLEncoding

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// passkeyPages serves the pages for issuer pkIssuer, with the throttle's
// delays off, and returns the log.
func passkeyPages(t *testing.T, st *store.Store, tune ...func(*login.Config)) (*httptest.Server, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	cfg := login.Config{
		SessionTTL: time.Hour, SessionIdleTTL: time.Hour,
		VerifyPassword: func(string, string) (bool, error) { return true, nil },
		AuthorizePath:  "/oauth2/authorize",
		SystemSecrets:  secrets.ParseSystemSecrets(strings.Repeat("s", 32)),
		Throttle:       login.DefaultThrottlePolicy,
		Issuer:         pkIssuer,
	}
	for _, f := range tune {
		f(&cfg)
	}
	h, err := login.New(st, cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if !h.PasskeysOn() {
		t.Fatal("passkeys are off for a host-name issuer")
	}
	h.MFAThrottle().Sleep = func(context.Context, time.Duration) {}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, logs
}

// authenticator is one passkey of a software authenticator.
type authenticator struct {
	key    *ecdsa.PrivateKey
	credID []byte
	userID string
	count  uint32
	// be is the backup-eligible flag it reports.
	be bool
}

func newAuthenticator(t *testing.T, userID string) *authenticator {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	return &authenticator{key: key, credID: id, userID: userID}
}

// coseKey is the public key as COSE_Key (RFC 9052): EC2, ES256, P-256.
func (a *authenticator) coseKey(t *testing.T) []byte {
	b, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: a.key.X.FillBytes(make([]byte, 32)), -3: a.key.Y.FillBytes(make([]byte, 32))})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// enrol stores the passkey directly, as a finished enrolment would.
func (a *authenticator) enrol(t *testing.T, st *store.Store, counter int64) {
	t.Helper()
	f := &store.Factor{ID: "pk-" + b64.EncodeToString(a.credID), UserID: a.userID, Kind: store.FactorWebAuthn, CredentialID: a.credID,
		PublicKey: a.coseKey(t), AAGUID: make([]byte, 16), AttestationFormat: "none", BackupEligible: a.be, Counter: counter, Name: "test key"}
	if err := st.EnrollFactor(context.Background(), f, nil); err != nil {
		t.Fatal(err)
	}
}

// assertion options change one thing about what is signed.
type assertion struct {
	origin, rpID string
	uv           bool
	count        *uint32
	typ          string
}

const (
	flagUP = 0x01
	flagUV = 0x04
	flagBE = 0x08
	flagAT = 0x40
)

func (a *authenticator) authData(rpID string, flags byte, count uint32, attested []byte) []byte {
	h := sha256.Sum256([]byte(rpID))
	out := append(h[:], flags)
	out = binary.BigEndian.AppendUint32(out, count)
	return append(out, attested...)
}

// assert answers challenge as navigator.credentials.get would, as JSON.
func (a *authenticator) assert(t *testing.T, challenge string, o assertion) string {
	t.Helper()
	if o.origin == "" {
		o.origin = pkIssuer
	}
	if o.rpID == "" {
		o.rpID = pkRPID
	}
	if o.typ == "" {
		o.typ = "webauthn.get"
	}
	a.count++
	count := a.count
	if o.count != nil {
		count = *o.count
	}
	flags := byte(flagUP)
	if o.uv {
		flags |= flagUV
	}
	if a.be {
		flags |= flagBE
	}
	cd, _ := json.Marshal(map[string]any{"type": o.typ, "challenge": challenge, "origin": o.origin, "crossOrigin": false})
	ad := a.authData(o.rpID, flags, count, nil)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(a.credID), "rawId": b64.EncodeToString(a.credID), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64.EncodeToString(cd), "authenticatorData": b64.EncodeToString(ad),
			"signature": b64.EncodeToString(sig), "userHandle": b64.EncodeToString([]byte(a.userID))},
		"clientExtensionResults": map[string]any{},
	})
	return string(out)
}

// attest answers a creation challenge with a "none" attestation.
func (a *authenticator) attest(t *testing.T, challenge string) string {
	t.Helper()
	cd, _ := json.Marshal(map[string]any{"type": "webauthn.create", "challenge": challenge, "origin": pkIssuer, "crossOrigin": false})
	attested := append(make([]byte, 16), byte(len(a.credID)>>8), byte(len(a.credID)))
	attested = append(append(attested, a.credID...), a.coseKey(t)...)
	flags := byte(flagUP | flagUV | flagAT)
	if a.be {
		flags |= flagBE
	}
	obj, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": a.authData(pkRPID, flags, 0, attested)})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(a.credID), "rawId": b64.EncodeToString(a.credID), "type": "public-key",
		"response":               map[string]any{"clientDataJSON": b64.EncodeToString(cd), "attestationObject": b64.EncodeToString(obj), "transports": []string{"internal"}},
		"clientExtensionResults": map[string]any{},
	})
	return string(out)
}

// browser is a cookie jar over the test server, as a browser keeps one.
type browser struct {
	t       *testing.T
	srv     *httptest.Server
	cookies map[string]*http.Cookie
	csrf    string
}

func newBrowser(t *testing.T, srv *httptest.Server, cookies ...*http.Cookie) *browser {
	b := &browser{t: t, srv: srv, cookies: map[string]*http.Cookie{}}
	for _, c := range cookies {
		b.cookies[c.Name] = c
	}
	b.csrf = b.page("/login")
	return b
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	for _, c := range b.cookies {
		req.AddCookie(c)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	return resp, string(body)
}

// page GETs path and returns its CSRF token.
func (b *browser) page(path string) string {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.srv.URL+path, nil)
	_, body := b.do(req)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("GET %s: no CSRF token", path)
	}
	return m[1]
}

func (b *browser) post(path string, f url.Values) (*http.Response, string) {
	b.t.Helper()
	if f.Get("csrf_token") == "" {
		f.Set("csrf_token", b.csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, b.srv.URL+path, strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// options fetches the options of purpose and returns their challenge.
func (b *browser) options(path, purpose string) string {
	b.t.Helper()
	resp, body := b.post(path, url.Values{"purpose": {purpose}})
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("options %s: %d %s", purpose, resp.StatusCode, body)
	}
	var o struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal([]byte(body), &o); err != nil || o.PublicKey.Challenge == "" {
		b.t.Fatalf("options %s: %v %s", purpose, err, body)
	}
	return o.PublicKey.Challenge
}

// sessionAMR is the amr of the browser's login session, or "" if none.
func (b *browser) sessionAMR(st *store.Store) string {
	b.t.Helper()
	c, ok := b.cookies["latchkey_session"]
	if !ok {
		return ""
	}
	ls, err := st.TouchLoginSession(context.Background(), c.Value, time.Hour)
	if err != nil {
		return ""
	}
	return ls.AMR
}

func mkUser(t *testing.T, st *store.Store, id string) {
	t.Helper()
	if err := st.CreateUser(context.Background(), &store.User{ID: id, Username: "name-" + id, PasswordHash: "unused"}); err != nil {
		t.Fatal(err)
	}
}

// A discoverable passkey signs in without a username; the amr says hwk,
// or swk for a backup-eligible one, plus mfa only when the authenticator
// verified the person.
func TestPasskeySignIn(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		st := storetest.New(t, b)
		srv, _ := passkeyPages(t, st)
		for _, c := range []struct {
			name    string
			be, uv  bool
			wantAMR string
		}{
			{"device-bound, verified", false, true, "hwk mfa"},
			{"device-bound, presence only", false, false, "hwk"},
			{"synced, verified", true, true, "swk mfa"},
		} {
			t.Run(c.name, func(t *testing.T) {
				id := "u-" + strings.NewReplacer(" ", "", ",", "").Replace(c.name)
				mkUser(t, st, id)
				a := newAuthenticator(t, id)
				a.be = c.be
				a.enrol(t, st, 0)
				br := newBrowser(t, srv)
				ch := br.options(login.PathPasskeyOptions, "login")
				resp, body := br.post(login.PathPasskeyLogin, url.Values{"credential": {a.assert(t, ch, assertion{uv: c.uv})}})
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("sign-in: %d %s", resp.StatusCode, body)
				}
				if got := br.sessionAMR(st); got != c.wantAMR {
					t.Errorf("amr %q, want %q", got, c.wantAMR)
				}
			})
		}
	})
}

// What the server refuses: an assertion for another origin or RP ID, a
// challenge used twice or of another ceremony, a counter going backwards
// (logged), an unknown credential. None signs in.
func TestPasskeyRefusals(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		st := storetest.New(t, b)
		srv, logs := passkeyPages(t, st)
		// Each case has its own person: five failures lock one out.
		var n int
		person := func(t *testing.T) *authenticator {
			n++
			id := "alice-" + string(rune('a'+n))
			mkUser(t, st, id)
			a := newAuthenticator(t, id)
			a.enrol(t, st, 10)
			a.count = 10
			return a
		}
		five := uint32(5)
		ten := uint32(10)
		refuse := func(t *testing.T, br *browser, credential string) {
			t.Helper()
			resp, _ := br.post(login.PathPasskeyLogin, url.Values{"credential": {credential}})
			if resp.StatusCode != http.StatusUnauthorized || br.sessionAMR(st) != "" {
				t.Fatalf("status %d, session %q: want 401 and no session", resp.StatusCode, br.sessionAMR(st))
			}
		}
		for _, c := range []struct {
			name string
			o    assertion
		}{
			{"another origin", assertion{origin: "https://evil.example.test", uv: true}},
			{"another port", assertion{origin: "https://id.example.test:8443", uv: true}},
			{"another RP ID", assertion{rpID: "example.test", uv: true}},
			{"a creation, not an assertion", assertion{typ: "webauthn.create", uv: true}},
			{"counter backwards", assertion{count: &five, uv: true}},
			{"counter repeated", assertion{count: &ten, uv: true}},
		} {
			t.Run(c.name, func(t *testing.T) {
				br := newBrowser(t, srv)
				refuse(t, br, person(t).assert(t, br.options(login.PathPasskeyOptions, "login"), c.o))
			})
		}
		if !strings.Contains(logs.String(), "signature counter did not move forward") {
			t.Errorf("a counter going backwards is not logged:\n%s", logs.String())
		}

		t.Run("replayed challenge", func(t *testing.T) {
			a := person(t)
			br := newBrowser(t, srv)
			ch := br.options(login.PathPasskeyOptions, "login")
			cookie := br.cookies["latchkey_webauthn"]
			resp, body := br.post(login.PathPasskeyLogin, url.Values{"credential": {a.assert(t, ch, assertion{uv: true})}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("first use: %d %s", resp.StatusCode, body)
			}
			// The same challenge again (its cookie put back), with a fresh
			// counter: the challenge is gone.
			replay := newBrowser(t, srv, cookie)
			refuse(t, replay, a.assert(t, ch, assertion{uv: true}))
		})
		t.Run("unknown credential", func(t *testing.T) {
			br := newBrowser(t, srv)
			stranger := newAuthenticator(t, "alice-nobody")
			refuse(t, br, stranger.assert(t, br.options(login.PathPasskeyOptions, "login"), assertion{uv: true}))
		})
		t.Run("no challenge", func(t *testing.T) {
			a := person(t)
			br := newBrowser(t, srv)
			refuse(t, br, a.assert(t, b64.EncodeToString([]byte("made-up-challenge-0123456789abcdef")), assertion{uv: true}))
		})
	})
}

// Wrong assertions count against the person like wrong TOTP codes: past
// the limit even a right one is refused with 429. Each shows in
// latchkey_mfa_verifications_total{kind="passkey"}.
func TestPasskeyThrottled(t *testing.T) {
	st := storetest.Open(t, storetest.SQLiteURL(t), store.Options{})
	m := metrics.New()
	srv, _ := passkeyPages(t, st, func(c *login.Config) { c.Metrics = m })
	mkUser(t, st, "mallory")
	a := newAuthenticator(t, "mallory")
	a.enrol(t, st, 0)
	for range login.DefaultThrottlePolicy.UserLimit {
		br := newBrowser(t, srv)
		resp, _ := br.post(login.PathPasskeyLogin, url.Values{"credential": {a.assert(t, br.options(login.PathPasskeyOptions, "login"), assertion{origin: "https://evil.example.test"})}})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong origin: %d", resp.StatusCode)
		}
	}
	br := newBrowser(t, srv)
	resp, _ := br.post(login.PathPasskeyLogin, url.Values{"credential": {a.assert(t, br.options(login.PathPasskeyOptions, "login"), assertion{uv: true})}})
	if resp.StatusCode != http.StatusTooManyRequests || br.sessionAMR(st) != "" {
		t.Fatalf("after %d failures: %d", login.DefaultThrottlePolicy.UserLimit, resp.StatusCode)
	}
	for result, want := range map[string]float64{"failure": float64(login.DefaultThrottlePolicy.UserLimit), "locked": 1, "success": 0} {
		if got := testutil.ToFloat64(m.MFAVerifications.WithLabelValues("passkey", result)); got != want {
			t.Errorf("passkey %s counted %v times, want %v", result, got, want)
		}
	}
}

// A passkey as the second factor after a password session: one of the
// person's own raises the session to mfa; another person's passkey,
// however valid, does not.
func TestPasskeySecondFactor(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		st := storetest.New(t, b)
		srv, _ := passkeyPages(t, st)
		bob := signedIn(t, st, "bob")
		mkUser(t, st, "carol")
		own := newAuthenticator(t, "id-bob")
		own.enrol(t, st, 0)
		carols := newAuthenticator(t, "carol")
		carols.enrol(t, st, 0)

		br := newBrowser(t, srv, bob)
		if _, body := br.do(mustGet(t, srv, login.PathSecondFactor)); !strings.Contains(body, `data-passkey="second-factor"`) {
			t.Fatalf("the second-factor page offers no passkey:\n%s", body)
		}
		ch := br.options(login.PathPasskeyOptions, "second-factor")
		resp, _ := br.post(login.PathSecondFactor, url.Values{"credential": {carols.assert(t, ch, assertion{uv: true})}})
		if resp.StatusCode != http.StatusUnauthorized || strings.Contains(br.sessionAMR(st), "mfa") {
			t.Fatalf("another's passkey: %d, amr %q", resp.StatusCode, br.sessionAMR(st))
		}
		// A sign-in challenge does not finish a second factor.
		ch = br.options(login.PathPasskeyOptions, "login")
		resp, _ = br.post(login.PathSecondFactor, url.Values{"credential": {own.assert(t, ch, assertion{uv: true})}})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a sign-in challenge as second factor: %d", resp.StatusCode)
		}
		ch = br.options(login.PathPasskeyOptions, "second-factor")
		resp, body := br.post(login.PathSecondFactor, url.Values{"credential": {own.assert(t, ch, assertion{})}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("own passkey: %d %s", resp.StatusCode, body)
		}
		if got := br.sessionAMR(st); got != "pwd hwk mfa" {
			t.Errorf("amr %q, want \"pwd hwk mfa\"", got)
		}
	})
}

// A session of one factor (a passkey without user verification) is
// stepped up by a passkey only with user verification: the same key again,
// unverified, is still one factor.
func TestPasskeyStepUpNeedsVerification(t *testing.T) {
	st := storetest.Open(t, storetest.SQLiteURL(t), store.Options{})
	srv, _ := passkeyPages(t, st)
	mkUser(t, st, "gus")
	a := newAuthenticator(t, "gus")
	a.enrol(t, st, 0)
	br := newBrowser(t, srv)
	if resp, body := br.post(login.PathPasskeyLogin, url.Values{"credential": {a.assert(t, br.options(login.PathPasskeyOptions, "login"), assertion{})}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, body)
	}
	if got := br.sessionAMR(st); got != "hwk" {
		t.Fatalf("amr %q, want hwk", got)
	}
	resp, _ := br.post(login.PathSecondFactor, url.Values{"credential": {a.assert(t, br.options(login.PathPasskeyOptions, "second-factor"), assertion{})}})
	if resp.StatusCode != http.StatusUnauthorized || br.sessionAMR(st) != "hwk" {
		t.Fatalf("unverified step-up: %d, amr %q", resp.StatusCode, br.sessionAMR(st))
	}
	resp, _ = br.post(login.PathSecondFactor, url.Values{"credential": {a.assert(t, br.options(login.PathPasskeyOptions, "second-factor"), assertion{uv: true})}})
	if resp.StatusCode != http.StatusOK || br.sessionAMR(st) != "hwk mfa" {
		t.Fatalf("verified step-up: %d, amr %q, want hwk mfa", resp.StatusCode, br.sessionAMR(st))
	}
}

// Enrolment from /account checks the attestation against this browser's
// challenge, stores the passkey under its name, lists it, and removes it
// only for its owner.
func TestPasskeyEnrolAndRemove(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		st := storetest.New(t, b)
		srv, _ := passkeyPages(t, st)
		dan := signedIn(t, st, "dan")
		br := newBrowser(t, srv, dan)
		a := newAuthenticator(t, "id-dan")
		ch := br.options(login.PathPasskeyEnrolOptions, "enrol")
		resp, body := br.post(login.PathPasskeys, url.Values{"credential": {a.attest(t, ch)}, "name": {"  Work   laptop "}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/account?done=passkey" {
			t.Fatalf("enrol: %d %s %s", resp.StatusCode, resp.Header.Get("Location"), body)
		}
		fs, _ := st.ListFactors(context.Background(), "id-dan")
		if len(fs) != 1 || fs[0].Kind != store.FactorWebAuthn || fs[0].Name != "Work laptop" || !bytes.Equal(fs[0].CredentialID, a.credID) || fs[0].Transports != "internal" {
			t.Fatalf("stored %+v", fs)
		}
		// The same attestation again: its challenge is used up.
		resp, _ = br.post(login.PathPasskeys, url.Values{"credential": {a.attest(t, ch)}})
		if resp.Header.Get("Location") != "/account?done=passkey-failed" {
			t.Errorf("replayed enrolment: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		// Another person cannot remove it.
		eve := newBrowser(t, srv, signedIn(t, st, "eve"))
		if resp, _ := eve.post(login.PathPasskeyRemove, url.Values{"id": {fs[0].ID}}); resp.StatusCode != http.StatusNotFound {
			t.Errorf("another's removal: %d", resp.StatusCode)
		}
		// Without the CSRF token, nothing.
		if resp, _ := br.post(login.PathPasskeyRemove, url.Values{"id": {fs[0].ID}, "csrf_token": {"forged"}}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("removal without CSRF: %d", resp.StatusCode)
		}
		if resp, _ := br.post(login.PathPasskeyRemove, url.Values{"id": {fs[0].ID}}); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("removal: %d", resp.StatusCode)
		}
		if fs, _ := st.ListFactors(context.Background(), "id-dan"); len(fs) != 0 {
			t.Errorf("after removal %+v", fs)
		}
	})
}

// Pages that offer passkeys load our script and allow it in the CSP, and
// no inline script; a server whose issuer is an IP address offers none.
func TestPasskeyPagesCSP(t *testing.T) {
	st := storetest.Open(t, storetest.SQLiteURL(t), store.Options{})
	srv, _ := passkeyPages(t, st)
	resp, body := get(t, srv, "/login")
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(body, `<script src="/static/passkey.js" defer></script>`) ||
		!strings.Contains(body, `autocomplete="username webauthn"`) || strings.Count(body, "<script") != 1 {
		t.Errorf("login page: CSP %q\n%s", csp, body)
	}
	if resp, js := get(t, srv, login.PathPasskeyScript); resp.StatusCode != http.StatusOK || !strings.Contains(js, "navigator.credentials") {
		t.Errorf("script: %d", resp.StatusCode)
	}
	_, plain := pages(t, st)
	resp, body = get(t, plain, "/login")
	if strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src") || strings.Contains(body, "<script") || strings.Contains(body, "webauthn") {
		t.Errorf("passkeys offered without an issuer: %s", body)
	}
}

func mustGet(t *testing.T, srv *httptest.Server, path string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
