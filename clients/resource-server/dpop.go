package resourceserver

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// DPoP (RFC 9449) at a resource server: the token says which key it is
// bound to (cnf.jkt), and each request carries a proof signed by that key
// for this method and URL, fresh and used once. A token copied out of a
// client is then useless without the client's private key.

// ErrInvalidProof covers every reason a DPoP proof is refused (RFC 9449
// §4.3, §7.1): answered 401 with WWW-Authenticate: DPoP
// error="invalid_dpop_proof".
var ErrInvalidProof = errors.New("invalid DPoP proof")

// errUseNonce means the proof lacks the current server nonce (§9).
var errUseNonce = errors.New("DPoP proof needs the server's current nonce")

// ErrReplayCacheFull means the replay cache holds MaxDPoPProofs live
// entries: a new proof cannot be remembered, so it is not accepted (503),
// rather than accepting proofs that could then be replayed.
var ErrReplayCacheFull = errors.New("DPoP replay cache full")

// defaultDPoPAlgorithms are the asymmetric algorithms accepted in proofs.
// HMAC and "none" can never be: a proof must be verifiable by anyone from
// its public jwk, and be made only by the holder of the private key.
var defaultDPoPAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.PS256, jose.EdDSA}

func asymmetric(alg jose.SignatureAlgorithm) bool {
	switch alg {
	case jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.EdDSA:
		return true
	}
	return false
}

// checkDPoPConfig fills the DPoP defaults and refuses what cannot be safe.
func checkDPoPConfig(cfg *Config) error {
	if len(cfg.DPoPAlgorithms) == 0 {
		cfg.DPoPAlgorithms = defaultDPoPAlgorithms
	}
	for _, a := range cfg.DPoPAlgorithms {
		if !asymmetric(a) {
			return fmt.Errorf("resourceserver: DPoP algorithm %q is not asymmetric", a)
		}
	}
	if cfg.DPoPProofLifetime <= 0 {
		cfg.DPoPProofLifetime = time.Minute
	}
	if cfg.DPoPNonceLifetime < time.Second {
		cfg.DPoPNonceLifetime = 5 * time.Minute
	}
	if cfg.MaxDPoPProofs <= 0 {
		cfg.MaxDPoPProofs = 100000
	}
	if cfg.ExternalURL != "" {
		u, err := url.Parse(cfg.ExternalURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("resourceserver: ExternalURL %q must be an absolute http(s) URL without query or fragment", cfg.ExternalURL)
		}
		cfg.ExternalURL = strings.TrimSuffix(cfg.ExternalURL, "/")
	}
	if cfg.DPoPNonce && len(cfg.DPoPNonceKey) == 0 {
		cfg.DPoPNonceKey = make([]byte, 32)
		if _, err := rand.Read(cfg.DPoPNonceKey); err != nil {
			return fmt.Errorf("resourceserver: nonce key: %w", err)
		}
	}
	return nil
}

// dpopEnabled: without ExternalURL the htu of a proof cannot be checked
// (the Host header is the attacker's to choose), so DPoP is refused.
func (v *Verifier) dpopEnabled() bool { return v.cfg.ExternalURL != "" }

// algsParam is the algs="…" of the DPoP challenge (§7.1).
func (v *Verifier) algsParam() string {
	names := make([]string, len(v.cfg.DPoPAlgorithms))
	for i, a := range v.cfg.DPoPAlgorithms {
		names[i] = string(a)
	}
	return strings.Join(names, " ")
}

type proofClaims struct {
	ID       string           `json:"jti"`
	Method   string           `json:"htm"`
	URI      string           `json:"htu"`
	IssuedAt *jwt.NumericDate `json:"iat"`
	ATH      string           `json:"ath"`
	Nonce    string           `json:"nonce"`
}

// verifyProof checks a DPoP proof sent with token to r, per RFC 9449 §4.3
// and §7.1, and returns the RFC 7638 SHA-256 thumbprint of its key. It does
// not record the proof's jti: the caller does, once everything else about
// the request is accepted (see Middleware), so that only holders of a valid
// token and key can fill the replay cache.
func (v *Verifier) verifyProof(r *http.Request, token string) (jkt string, p *proofClaims, err error) {
	if !v.dpopEnabled() {
		return "", nil, fmt.Errorf("%w: this API has no ExternalURL to check htu against", ErrInvalidProof)
	}
	values := r.Header.Values("DPoP")
	if len(values) != 1 {
		return "", nil, fmt.Errorf("%w: want one DPoP header, got %d", ErrInvalidProof, len(values))
	}
	// ParseSigned refuses algorithms outside the list, and an embedded jwk
	// that holds a private or symmetric key.
	jws, err := jose.ParseSigned(values[0], v.cfg.DPoPAlgorithms)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrInvalidProof, err)
	}
	if len(jws.Signatures) != 1 {
		return "", nil, fmt.Errorf("%w: want one signature", ErrInvalidProof)
	}
	h := jws.Signatures[0].Header
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "dpop+jwt" {
		return "", nil, fmt.Errorf("%w: typ %q, want dpop+jwt", ErrInvalidProof, typ)
	}
	key := h.JSONWebKey
	if key == nil || !key.Valid() || !key.IsPublic() {
		return "", nil, fmt.Errorf("%w: no public jwk in the header", ErrInvalidProof)
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrInvalidProof, err)
	}
	var c proofClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", nil, fmt.Errorf("%w: claims: %v", ErrInvalidProof, err)
	}
	if c.ID == "" || c.Method == "" || c.URI == "" || c.IssuedAt == nil {
		return "", nil, fmt.Errorf("%w: jti, htm, htu and iat are required", ErrInvalidProof)
	}
	if c.Method != r.Method {
		return "", nil, fmt.Errorf("%w: htm %q, request is %s", ErrInvalidProof, c.Method, r.Method)
	}
	if want := v.cfg.ExternalURL + r.URL.EscapedPath(); !sameHTU(c.URI, want) {
		return "", nil, fmt.Errorf("%w: htu %q, want %q", ErrInvalidProof, c.URI, want)
	}
	now := v.cfg.Now()
	iat := c.IssuedAt.Time()
	if iat.After(now.Add(v.cfg.Leeway)) || iat.Before(now.Add(-v.cfg.DPoPProofLifetime)) {
		return "", nil, fmt.Errorf("%w: iat %s outside the accepted window", ErrInvalidProof, iat.UTC().Format(time.RFC3339))
	}
	// §4.3 step 12: the proof is for this very token.
	sum := sha256.Sum256([]byte(token))
	if c.ATH != base64.RawURLEncoding.EncodeToString(sum[:]) {
		return "", nil, fmt.Errorf("%w: ath is missing or not the hash of this token", ErrInvalidProof)
	}
	if v.cfg.DPoPNonce && !v.validNonce(c.Nonce) {
		return "", nil, errUseNonce
	}
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", nil, fmt.Errorf("%w: thumbprint: %v", ErrInvalidProof, err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), &c, nil
}

// sameHTU compares URLs as RFC 9449 §4.3 asks: without query and fragment,
// after RFC 3986 §6.2.2 and §6.2.3 normalisation (case of scheme and host,
// default port, percent-encoding, empty path).
func sameHTU(got, want string) bool {
	a, b := normaliseHTU(got), normaliseHTU(want)
	return a != "" && a == b
}

func normaliseHTU(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if port != "" {
		host += ":" + port
	}
	if strings.Contains(u.Hostname(), ":") { // IPv6 literal
		host = "[" + strings.ToLower(u.Hostname()) + "]"
		if port != "" {
			host += ":" + port
		}
	}
	path := u.Path // decoded: %7E and ~ compare equal
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path
}

// replayCache remembers the proofs accepted by this instance until they
// would be too old anyway. It is a bounded map in this process: an API run
// as several instances needs a shared store (Redis SET NX with a TTL, or a
// table with a unique key), or a proof used at one instance can be replayed
// at another within DPoPProofLifetime.
type replayCache struct {
	mu   sync.Mutex
	seen map[[32]byte]time.Time
	max  int
}

// add records a proof and reports whether it is new. A full cache is first
// swept of expired entries; when it is still full nothing is recorded and
// ErrReplayCacheFull is returned: failing closed, never forgetting a live proof.
func (c *replayCache) add(jkt, jti string, now, until time.Time) (bool, error) {
	k := sha256.Sum256([]byte(jkt + "\x00" + jti))
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, ok := c.seen[k]; ok && now.Before(exp) {
		return false, nil
	}
	if len(c.seen) >= c.max {
		for key, exp := range c.seen {
			if !now.Before(exp) {
				delete(c.seen, key)
			}
		}
		if len(c.seen) >= c.max {
			return false, ErrReplayCacheFull
		}
	}
	c.seen[k] = until
	return true, nil
}

// recordProof records an accepted proof; a jti seen before is a replay.
func (v *Verifier) recordProof(jkt string, p *proofClaims) error {
	// A proof is acceptable until iat + DPoPProofLifetime (and, with clock
	// skew, iat may be up to Leeway ahead): remember it that long.
	until := p.IssuedAt.Time().Add(v.cfg.DPoPProofLifetime + v.cfg.Leeway)
	fresh, err := v.replay.add(jkt, p.ID, v.cfg.Now(), until)
	if err != nil {
		return err
	}
	if !fresh {
		return fmt.Errorf("%w: jti %q already used", ErrInvalidProof, p.ID)
	}
	return nil
}

// Nonces (RFC 9449 §9) are stateless: the start of a period of
// DPoPNonceLifetime and an HMAC of it. The current and the previous period's
// nonces are accepted, so a client's nonce stays good for at least one
// period. Instances that share DPoPNonceKey accept each other's nonces.

// Nonce returns the current server nonce, as sent in DPoP-Nonce.
func (v *Verifier) Nonce() string {
	return v.nonceFor(v.period(v.cfg.Now()))
}

func (v *Verifier) period(t time.Time) int64 {
	return t.Unix() / int64(v.cfg.DPoPNonceLifetime/time.Second)
}

func (v *Verifier) nonceFor(period int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(period))
	m := hmac.New(sha256.New, v.cfg.DPoPNonceKey)
	m.Write(b[:])
	return base64.RawURLEncoding.EncodeToString(append(b[:], m.Sum(nil)[:16]...))
}

func (v *Verifier) validNonce(nonce string) bool {
	if nonce == "" {
		return false
	}
	now := v.period(v.cfg.Now())
	for _, p := range []int64{now, now - 1} {
		if hmac.Equal([]byte(nonce), []byte(v.nonceFor(p))) {
			return true
		}
	}
	return false
}
