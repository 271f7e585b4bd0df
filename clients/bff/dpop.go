package bff

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// prover makes DPoP proofs (RFC 9449 §4) with the BFF's key: an ECDSA
// P-256 key made at start and kept only in this process's memory. The
// tokens Latchkey issues to the BFF are bound to it (cnf.jkt), so a token
// that leaks from the BFF (a log line, a heap dump, a proxied upstream that
// keeps what it was sent) is useless without the key, which never leaves.
// A restart makes a new key, and the sessions, held in memory too, end with
// the old one: nothing bound to a lost key survives.
type prover struct {
	signer jose.Signer
	now    func() time.Time

	mu sync.Mutex
	// nonces holds the last DPoP-Nonce each server (scheme://host) sent
	// (§8, §9): the token endpoint and the allow-listed upstreams, so it
	// stays small.
	nonces map[string]string
}

func newProver(now func() time.Time) (*prover, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("bff: DPoP key: %w", err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		return nil, fmt.Errorf("bff: DPoP signer: %w", err)
	}
	return &prover{signer: s, now: now, nonces: map[string]string{}}, nil
}

func origin(u *url.URL) string { return strings.ToLower(u.Scheme + "://" + u.Host) }

// proof returns a proof for method and u, carrying ath when accessToken is
// given (a resource request, §7) and the server's last nonce if it sent one.
func (p *prover) proof(method string, u *url.URL, accessToken string) (string, error) {
	htu := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath} // no query, no fragment
	claims := map[string]any{"jti": random(), "htm": method, "htu": htu.String(), "iat": p.now().Unix()}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	p.mu.Lock()
	if n := p.nonces[origin(u)]; n != "" {
		claims["nonce"] = n
	}
	p.mu.Unlock()
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := p.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign DPoP proof: %w", err)
	}
	return jws.CompactSerialize()
}

// noteNonce remembers the DPoP-Nonce a server sent, on an error or a
// success, and reports whether it is new.
func (p *prover) noteNonce(u *url.URL, h http.Header) bool {
	n := h.Get("DPoP-Nonce")
	if n == "" {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nonces[origin(u)] == n {
		return false
	}
	p.nonces[origin(u)] = n
	return true
}

// tokenTransport adds a proof to every request to the token endpoint that
// x/oauth2 makes (the code exchange and each refresh), which has no DPoP of
// its own, and retries once when Latchkey asks for a nonce (400
// use_dpop_nonce with DPoP-Nonce, §8): the request was refused before
// anything happened, so sending it again is safe.
type tokenTransport struct {
	base   http.RoundTripper
	prover *prover
}

func (t *tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		req := r.Clone(r.Context())
		if attempt > 0 {
			if r.GetBody == nil {
				return nil, fmt.Errorf("bff: cannot resend a token request without GetBody")
			}
			body, err := r.GetBody()
			if err != nil {
				return nil, err
			}
			req.Body = body
		}
		p, err := t.prover.proof(r.Method, r.URL, "")
		if err != nil {
			return nil, err
		}
		req.Header.Set("DPoP", p)
		resp, err := t.base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		fresh := t.prover.noteNonce(r.URL, resp.Header)
		if attempt > 0 || !fresh || resp.StatusCode != http.StatusBadRequest {
			return resp, nil
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) != nil || e.Error != "use_dpop_nonce" {
			resp.Body = io.NopCloser(bytes.NewReader(body))
			return resp, nil
		}
	}
}

// wantsNonce reports whether a resource server's answer asks for a nonce
// (RFC 9449 §9: 401 with a DPoP challenge error="use_dpop_nonce").
func wantsNonce(resp *http.Response) bool {
	if resp.StatusCode != http.StatusUnauthorized {
		return false
	}
	for _, c := range resp.Header.Values("WWW-Authenticate") {
		if strings.HasPrefix(strings.ToLower(c), "dpop ") && strings.Contains(c, `error="use_dpop_nonce"`) {
			return true
		}
	}
	return false
}
