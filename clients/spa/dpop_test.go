package spa_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// serverDPoP reports whether Latchkey advertises DPoP (RFC 9449 §5.1).
func serverDPoP(t *testing.T, issuer string) bool {
	resp, err := http.Get(issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		Algs []string `json:"dpop_signing_alg_values_supported"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return len(m.Algs) > 0
}

// refreshElsewhere presents refresh at the token endpoint as another
// client would: with a proof by key (nil: no proof), and again with the
// server's nonce if it demands one (a thief can fetch nonces too). It
// returns the status and the error code.
func refreshElsewhere(t *testing.T, issuer, clientID, refresh string, key *ecdsa.PrivateKey) (int, string) {
	t.Helper()
	nonce := ""
	for {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {clientID}}
		req, _ := http.NewRequest(http.MethodPost, issuer+"/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if key != nil {
			s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
			if err != nil {
				t.Fatal(err)
			}
			jti := make([]byte, 16)
			_, _ = rand.Read(jti)
			claims := map[string]any{"jti": base64.RawURLEncoding.EncodeToString(jti), "htm": "POST", "htu": issuer + "/oauth2/token", "iat": time.Now().Unix()}
			if nonce != "" {
				claims["nonce"] = nonce
			}
			proof, err := jwt.Signed(s).Claims(claims).Serialize()
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("DPoP", proof)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error string `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if e.Error == "use_dpop_nonce" && key != nil && nonce == "" && resp.Header.Get("DPoP-Nonce") != "" {
			nonce = resp.Header.Get("DPoP-Nonce")
			continue
		}
		return resp.StatusCode, e.Error
	}
}

// Issue 15: the SPA's tokens are bound to a non-extractable WebCrypto key
// kept in IndexedDB, so a refresh token copied out of the page (as a script
// that got in could: here through the test hook) is useless from anywhere
// else, with no proof or with a proof by another key, while the SPA itself
// keeps refreshing and calling the API (with the API's nonce) and UserInfo.
func TestSPARefreshTokenUselessElsewhere(t *testing.T) {
	s := startSPA(t)
	if !serverDPoP(t, s.lk.Issuer) {
		t.Skip("Latchkey has no DPoP yet (no dpop_signing_alg_values_supported in its metadata): server DPoP (issue 15) is needed")
	}
	s.signIn(t)
	eval := func(script string) string {
		t.Helper()
		got, err := chromedp.Run(s.browser, chromedp.Evaluate[string](script, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		return got
	}
	if typ := eval(`window.__spa.tokens.type`); typ != "dpop" {
		t.Fatalf("token_type %q, want dpop", typ)
	}
	// The private key is in IndexedDB, and not even this page can export it.
	key := eval(`new Promise((resolve, reject) => {
  const open = indexedDB.open("latchkey-spa");
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const get = open.result.transaction("keys").objectStore("keys").get("dpop");
    get.onsuccess = async () => {
      const pair = get.result;
      if (!pair) return resolve("no key");
      const exported = await crypto.subtle.exportKey("jwk", pair.privateKey).then(() => "exported", (e) => e.name);
      resolve(pair.privateKey.algorithm.namedCurve + "|" + pair.privateKey.extractable + "|" + exported);
    };
  };
})`)
	if key != "P-256|false|InvalidAccessError" {
		t.Fatalf("the DPoP key in IndexedDB: %q, want a non-extractable P-256 key", key)
	}

	click := func(id string) {
		t.Helper()
		if err := chromedp.Do(s.browser, chromedp.Click(chromedp.ID(id))); err != nil {
			t.Fatal(err)
		}
	}
	click("call")
	s.waitText(t, "result", `200 {"caller":"user-pia"`)
	if s.boundCalls.Load() != 1 {
		t.Fatalf("%d API calls with a DPoP-bound token, want 1", s.boundCalls.Load())
	}
	click("userinfo")
	s.waitText(t, "result", `userinfo {"sub":"user-pia"`)

	stolen := eval(`window.__spa.tokens.refresh`)
	if stolen == "" {
		t.Fatal("no refresh token in the page")
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, k := range map[string]*ecdsa.PrivateKey{"without a proof": nil, "with a proof by another key": other} {
		status, code := refreshElsewhere(t, s.lk.Issuer, s.clientID, stolen, k)
		if status != http.StatusBadRequest || (code != "invalid_grant" && code != "invalid_dpop_proof") {
			t.Fatalf("the copied refresh token %s: %d %q, want 400 invalid_grant or invalid_dpop_proof", name, status, code)
		}
	}

	// The attempts changed nothing for the SPA: it refreshes (twice, so the
	// binding survives rotation) and calls the API with the new token.
	click("refresh")
	s.waitText(t, "rotations", "rotations: 1")
	click("refresh")
	s.waitText(t, "rotations", "rotations: 2")
	s.waitText(t, "status", "Signed in as Pia Ramos")
	_, _ = chromedp.Run(s.browser, chromedp.Evaluate[string](`document.getElementById("result").textContent = ""`))
	click("call")
	s.waitText(t, "result", `200 {"caller":"user-pia"`)
	if s.boundCalls.Load() != 2 {
		t.Fatalf("%d API calls with a DPoP-bound token, want 2", s.boundCalls.Load())
	}
	// A rotated token copied now is as useless.
	status, code := refreshElsewhere(t, s.lk.Issuer, s.clientID, eval(`window.__spa.tokens.refresh`), other)
	if status != http.StatusBadRequest {
		t.Fatalf("the rotated refresh token with another key: %d %q", status, code)
	}
}
