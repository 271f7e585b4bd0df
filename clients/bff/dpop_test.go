package bff_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/latchkey/latchkey/clients/bff"
	resourceserver "github.com/latchkey/latchkey/clients/resource-server"
	"golang.org/x/time/rate"
)

// dpopIssuer is an OpenID Provider that, like Latchkey with
// LATCHKEY_DPOP_NONCE=true, demands a DPoP proof with its nonce on every
// token request, binds the tokens to the proof's key (token_type DPoP,
// cnf.jkt) and refuses a refresh proved by any other key.
type dpopIssuer struct {
	url          string
	mu           sync.Mutex
	grants       []string // grant_type of each token request that passed
	jkts         []string // the proof key of each
	nonceDemands int
	bound        map[string]string // refresh token -> jkt
}

const dpopIssuerNonce = "issuer-nonce-1"

func startDPoPIssuer(t *testing.T) *dpopIssuer {
	iss := &dpopIssuer{bound: map[string]string{}}
	sig := newSigner(t, "good")
	at, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: sig.key}, (&jose.SignerOptions{}).WithType("at+jwt"))
	mux := http.NewServeMux()
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	iss.url = s.URL
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": s.URL, "authorization_endpoint": s.URL + "/oauth2/authorize",
			"token_endpoint": s.URL + "/oauth2/token", "jwks_uri": s.URL + "/jwks", "id_token_signing_alg_values_supported": []string{"ES256"},
			"dpop_signing_alg_values_supported": []string{"ES256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{sig.key.Public()}})
	})
	fail := func(w http.ResponseWriter, code string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprintf(w, `{"error":%q}`, code)
	}
	mux.HandleFunc("POST /oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		jkt, nonce, err := checkTokenProof(r, s.URL+"/oauth2/token")
		if err != nil {
			t.Logf("token endpoint: %v", err)
			fail(w, "invalid_dpop_proof")
			return
		}
		if nonce != dpopIssuerNonce {
			iss.mu.Lock()
			iss.nonceDemands++
			iss.mu.Unlock()
			w.Header().Set("DPoP-Nonce", dpopIssuerNonce)
			fail(w, "use_dpop_nonce")
			return
		}
		iss.mu.Lock()
		defer iss.mu.Unlock()
		grant, idNonce := r.PostForm.Get("grant_type"), ""
		switch grant {
		case "authorization_code":
			parts := strings.Split(r.PostForm.Get("code"), ".")
			if len(parts) < 3 {
				fail(w, "invalid_grant")
				return
			}
			idNonce = parts[2]
		case "refresh_token":
			if b, ok := iss.bound[r.PostForm.Get("refresh_token")]; !ok || b != jkt {
				fail(w, "invalid_grant") // another key, or not ours
				return
			}
		}
		iss.grants, iss.jkts = append(iss.grants, grant), append(iss.jkts, jkt)
		now := time.Now()
		access, _ := jwt.Signed(at).Claims(map[string]any{"iss": s.URL, "sub": "user-nina", "aud": []string{"https://api.example.com"},
			"client_id": "bff", "scope": "invoices:read", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": random(t),
			"cnf": map[string]string{"jkt": jkt}}).Serialize()
		refresh := "rt-" + random(t)
		iss.bound[refresh] = jkt
		// expires_in 5: x/oauth2 renews 10 s early, so every API call refreshes.
		answer := map[string]any{"access_token": access, "token_type": "DPoP", "expires_in": 5, "refresh_token": refresh}
		if grant == "authorization_code" {
			sum := sha256.Sum256([]byte(access))
			answer["id_token"] = sig.sign(t, map[string]any{"iss": s.URL, "sub": "user-nina", "aud": "bff", "iat": now.Unix(),
				"exp": now.Add(time.Hour).Unix(), "nonce": idNonce, "at_hash": base64.RawURLEncoding.EncodeToString(sum[:16])})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(answer)
	})
	return iss
}

func random(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// checkTokenProof checks the proof a token request carries, as an issuer
// must (RFC 9449 §4.3), and returns its key's thumbprint and its nonce.
func checkTokenProof(r *http.Request, htu string) (jkt, nonce string, err error) {
	jws, err := jose.ParseSigned(r.Header.Get("DPoP"), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return "", "", err
	}
	h := jws.Signatures[0].Header
	if h.ExtraHeaders[jose.HeaderType] != "dpop+jwt" || h.JSONWebKey == nil {
		return "", "", fmt.Errorf("typ %v or no jwk", h.ExtraHeaders[jose.HeaderType])
	}
	payload, err := jws.Verify(h.JSONWebKey)
	if err != nil {
		return "", "", err
	}
	var c struct {
		Jti, Htm, Htu, Nonce, Ath string
		Iat                       int64
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", "", err
	}
	if c.Htm != http.MethodPost || c.Htu != htu || c.Jti == "" || c.Ath != "" || time.Since(time.Unix(c.Iat, 0)).Abs() > time.Minute {
		return "", "", fmt.Errorf("bad claims %+v", c)
	}
	tp, _ := h.JSONWebKey.Thumbprint(crypto.SHA256)
	return base64.RawURLEncoding.EncodeToString(tp), c.Nonce, nil
}

// The BFF binds its tokens to its own key: a proof on the code exchange and
// on every refresh (retried once with the nonce each server demands), and
// DPoP with ath on every proxied call, accepted by the resource-server
// middleware in DPoP mode with its own nonce; a POST body survives the
// nonce retry.
func TestBFFUsesDPoP(t *testing.T) {
	iss := startDPoPIssuer(t)
	var apiMu sync.Mutex
	var apiJKTs []string
	var apiBodies []string
	mux := http.NewServeMux()
	apiSrv := httptest.NewServer(mux)
	t.Cleanup(apiSrv.Close)
	v, err := resourceserver.New(resourceserver.Config{Issuer: iss.url, Audience: "https://api.example.com", JWKSURL: iss.url + "/jwks",
		ExternalURL: apiSrv.URL, DPoPNonce: true})
	if err != nil {
		t.Fatal(err)
	}
	handler := v.Middleware("invoices:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := resourceserver.FromContext(r.Context())
		body, _ := io.ReadAll(r.Body)
		apiMu.Lock()
		apiJKTs, apiBodies = append(apiJKTs, c.JKT), append(apiBodies, string(body))
		apiMu.Unlock()
		_, _ = w.Write([]byte(`{"caller":"` + c.Subject + `"}`))
	}))
	mux.Handle("GET /invoices", handler)
	mux.Handle("POST /invoices", handler)

	b, err := bff.New(context.Background(), bff.Config{Issuer: iss.url, ClientID: "bff", ClientSecret: "secret", BaseURL: "http://localhost:3000",
		Scopes: []string{"invoices:read", "offline_access"}, Insecure: true, LoginRate: rate.Inf, Upstreams: map[string]string{"invoices": apiSrv.URL + "/invoices"}})
	if err != nil {
		t.Fatal(err)
	}
	_, st := startLogin(t, b, "192.0.2.1:1000")
	rec := finish(b, st.cookie, st.state, st.code)
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "/" {
		t.Fatalf("callback: %d %s", rec.Code, rec.Body)
	}
	var sessionCookie *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == "bff_session" {
			sessionCookie = c
		}
	}
	call := func(method, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "/api/invoices", strings.NewReader(body))
		req.AddCookie(sessionCookie)
		req.Header.Set(bff.CSRFHeader, "1")
		rec := httptest.NewRecorder()
		b.ServeHTTP(rec, req)
		return rec
	}
	// A POST first: it is not retried for a refresh, only for the API's
	// nonce demand, and its body must survive that retry.
	if rec := call(http.MethodPost, `{"amount":42}`); rec.Code != 200 {
		t.Fatalf("POST through the BFF: %d %s", rec.Code, rec.Body)
	}
	for i := range 2 {
		if rec := call(http.MethodGet, ""); rec.Code != 200 || !strings.Contains(rec.Body.String(), "user-nina") {
			t.Fatalf("GET %d through the BFF: %d %s", i, rec.Code, rec.Body)
		}
	}

	iss.mu.Lock()
	defer iss.mu.Unlock()
	if len(iss.grants) < 4 || iss.grants[0] != "authorization_code" || iss.grants[1] != "refresh_token" {
		t.Fatalf("token requests that passed: %v", iss.grants)
	}
	if iss.nonceDemands != 1 {
		t.Fatalf("the issuer had to demand its nonce %d times; once, then the BFF keeps it", iss.nonceDemands)
	}
	apiMu.Lock()
	defer apiMu.Unlock()
	for i, jkt := range append(append([]string{}, iss.jkts...), apiJKTs...) {
		if jkt == "" || jkt != iss.jkts[0] {
			t.Fatalf("request %d proved with key %q, the exchange with %q: one key for all", i, jkt, iss.jkts[0])
		}
	}
	if len(apiJKTs) != 3 || apiBodies[0] != `{"amount":42}` {
		t.Fatalf("API saw %d calls, bodies %q", len(apiJKTs), apiBodies)
	}
}
