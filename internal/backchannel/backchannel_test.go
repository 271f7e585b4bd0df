package backchannel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/latchkey/latchkey/internal/backchannel"
	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"github.com/ory/fosite"
)

const issuer = "https://id.example"

func signer(t *testing.T, st *store.Store) *keys.Manager {
	t.Helper()
	km, err := keys.New(context.Background(), st, secrets.ParseSystemSecrets(strings.Repeat("k", 32)),
		keys.Options{Alg: "ES256", RotationPeriod: 720 * time.Hour, PrepublishPeriod: 15 * time.Minute, TokenTTL: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return km
}

// counter is a relying party that counts the tokens it gets per session
// and client.
type counter struct {
	mu   sync.Mutex
	seen map[string]int
	hits atomic.Int64
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.hits.Add(1)
	tok, err := jwt.ParseSigned(r.PostFormValue("logout_token"), keys.Algorithms)
	if err != nil {
		http.Error(w, "bad token", http.StatusBadRequest)
		return
	}
	var claims struct {
		Aud string `json:"aud"`
		SID string `json:"sid"`
	}
	_ = tok.UnsafeClaimsWithoutVerification(&claims)
	c.mu.Lock()
	c.seen[claims.Aud+" "+claims.SID]++
	c.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// endSessions makes users sessions, each signed in to every client, and
// ends them: users*len(clients) deliveries are owed.
func endSessions(t *testing.T, st *store.Store, users int, clientIDs []string, uri string) {
	t.Helper()
	ctx := context.Background()
	for _, id := range clientIDs {
		c := &store.Client{ID: id, Name: id, SecretHash: []byte("h"), RedirectURIs: []string{"https://rp.example/cb"},
			GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: "client_secret_basic",
			BackchannelLogoutURI: uri, IDTokenSignedResponseAlg: "ES256"}
		if err := st.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()
	for u := range users {
		uid := fmt.Sprintf("user-%d", u)
		if err := st.CreateUser(ctx, &store.User{ID: uid, Username: uid, PasswordHash: "x"}); err != nil {
			t.Fatal(err)
		}
		ls := &store.LoginSession{UserID: uid, AuthTime: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := st.CreateLoginSession(ctx, "cookie-"+uid, ls); err != nil {
			t.Fatal(err)
		}
		for _, id := range clientIDs {
			c, _ := st.FindClient(ctx, id)
			r := fosite.NewRequest()
			r.ID, r.Client, r.RequestedAt = uid+"-"+id, c, now
			s := grantsession.New(uid)
			s.LoginSessionID = ls.ID
			s.SetExpiresAt(fosite.AuthorizeCode, now.Add(time.Minute))
			r.Session = s
			if err := st.CreateAuthorizeCodeSession(ctx, "code-"+r.ID, r); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.EndLoginSession(ctx, ls.ID, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
}

// Two instances (two stores on one database, each with its deliverer)
// racing over the outbox POST each token once while the leases hold.
func TestTwoInstancesDeliverEachTokenOnce(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		rp := &counter{seen: map[string]int{}}
		srv := httptest.NewServer(rp)
		defer srv.Close()
		dbURL := b.URL(t)
		one, two := storetest.Open(t, dbURL, store.Options{}), storetest.Open(t, dbURL, store.Options{})
		clients := []string{"rp-a", "rp-b", "rp-c", "rp-d"}
		endSessions(t, one, 10, clients, srv.URL+"/bcl")
		opts := backchannel.Options{Issuer: issuer, Batch: 3}
		d1, d2 := backchannel.New(one, signer(t, one), opts), backchannel.New(two, signer(t, two), opts)
		var wg sync.WaitGroup
		for _, d := range []*backchannel.Deliverer{d1, d2, d1, d2} {
			wg.Go(func() {
				if _, err := d.Pass(context.Background()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if got := rp.hits.Load(); got != 40 {
			t.Errorf("%d POSTs, want 40", got)
		}
		if len(rp.seen) != 40 {
			t.Errorf("%d distinct (client, session) tokens, want 40", len(rp.seen))
		}
		for k, n := range rp.seen {
			if n != 1 {
				t.Errorf("%s delivered %d times", k, n)
			}
		}
		if rows, _ := one.LogoutDeliveries(context.Background(), ""); len(rows) != 0 {
			t.Errorf("%d rows left", len(rows))
		}
	})
}

// A redirect is not followed (the registered URI is the endpoint) and
// counts as a failure, rescheduled.
func TestRedirectIsAFailure(t *testing.T) {
	var followed atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { followed.Store(true) }))
	defer elsewhere.Close()
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL, http.StatusTemporaryRedirect)
	}))
	defer rp.Close()
	st := storetest.New(t, storetest.Backends()[0])
	endSessions(t, st, 1, []string{"rp-r"}, rp.URL)
	d := backchannel.New(st, signer(t, st), backchannel.Options{Issuer: issuer})
	if n, err := d.Pass(context.Background()); n != 1 || err != nil {
		t.Fatalf("pass: %d %v", n, err)
	}
	rows, _ := st.LogoutDeliveries(context.Background(), "")
	if followed.Load() || len(rows) != 1 || !strings.Contains(rows[0].LastError, "307") {
		t.Fatalf("followed %v, rows %+v", followed.Load(), rows)
	}
}

// The token is signed with the client's id_token_signed_response_alg when
// a key of that algorithm signs, else with the configured one; typ
// logout+jwt; no nonce.
func TestTokenAlgorithm(t *testing.T) {
	st := storetest.New(t, storetest.Backends()[0])
	km := signer(t, st)
	d := backchannel.New(st, km, backchannel.Options{Issuer: issuer})
	for _, alg := range []string{"ES256", "RS256", "EdDSA"} {
		c := &store.Client{ID: "c-" + alg, IDTokenSignedResponseAlg: alg}
		raw, err := d.Token(context.Background(), c, "user-1", "sid-1")
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.ParseSigned(raw, keys.Algorithms)
		if err != nil {
			t.Fatal(err)
		}
		want := "ES256" // the configured algorithm
		if _, err := km.CurrentFor(jose.SignatureAlgorithm(alg)); err == nil {
			want = alg
		}
		if h := tok.Headers[0]; h.Algorithm != want || h.ExtraHeaders[jose.HeaderType] != keys.TypLogoutToken {
			t.Errorf("%s: alg %s typ %v, want %s logout+jwt", alg, h.Algorithm, h.ExtraHeaders[jose.HeaderType], want)
		}
		var claims map[string]any
		payload := tok.UnsafeClaimsWithoutVerification(&claims)
		if payload != nil {
			t.Fatal(payload)
		}
		b, _ := json.Marshal(claims)
		for _, k := range []string{"iss", "aud", "iat", "exp", "jti", "sub", "sid", "events"} {
			if _, ok := claims[k]; !ok {
				t.Errorf("%s: no %s in %s", alg, k, b)
			}
		}
		if _, ok := claims["nonce"]; ok {
			t.Errorf("%s: a nonce in %s", alg, b)
		}
	}
}
