package dpop

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Error codes of RFC 9449 §5 and §7.1.
const (
	CodeInvalidProof = "invalid_dpop_proof"
	CodeUseNonce     = "use_dpop_nonce"
)

// HeaderName is the request header that carries the proof, and
// NonceHeader the response header that carries a server nonce.
const (
	HeaderName  = "DPoP"
	NonceHeader = "DPoP-Nonce"
)

// Bounds on what a client may send. An RSA-4096 jwk makes a header of about
// 1.5 KB; 8 KB leaves room and keeps parsing cheap.
const (
	MaxProofLen = 8 << 10
	MaxJTILen   = 256
	// DefaultWindow is how far iat may be from the server's clock.
	DefaultWindow = 60 * time.Second
	// NonceWindow is how long one nonce is minted; it is accepted for one
	// more window after.
	NonceWindow = 3 * time.Minute
)

// Algorithms are the proof algorithms accepted, in the order metadata lists
// them (dpop_signing_alg_values_supported). Asymmetric only: a MAC key
// would have to be shared with the server, and "none" proves nothing.
var Algorithms = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.EdDSA, jose.RS256, jose.PS256}

// AlgorithmNames is Algorithms as strings.
func AlgorithmNames() []string {
	out := make([]string, len(Algorithms))
	for i, a := range Algorithms {
		out[i] = string(a)
	}
	return out
}

// Error is a proof the server refuses: Code is invalid_dpop_proof or
// use_dpop_nonce. Anything else a Verifier returns is the server's own
// failure (the database), not the client's.
type Error struct {
	Code        string
	Description string
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

func invalid(format string, args ...any) *Error {
	return &Error{Code: CodeInvalidProof, Description: fmt.Sprintf(format, args...)}
}

// Replay is the store of spent proofs. SpendDPoPProof reports false when
// key was already spent and has not expired; it must be atomic across
// every instance sharing the database.
type Replay interface {
	SpendDPoPProof(ctx context.Context, key string, expires time.Time) (bool, error)
}

// Verifier checks proofs. It is safe for concurrent use.
type Verifier struct {
	replay   Replay
	nonceKey []byte
	// RequireNonce makes every proof carry a current server nonce
	// (LATCHKEY_DPOP_NONCE).
	RequireNonce bool
	// Window bounds |now - iat|.
	Window time.Duration
	now    func() time.Time
}

// New returns a Verifier. nonceKey keys the nonce HMAC (derived from the
// system secret: the same on every instance); now is the server's clock.
func New(replay Replay, nonceKey []byte, requireNonce bool, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{replay: replay, nonceKey: nonceKey, RequireNonce: requireNonce, Window: DefaultWindow, now: now}
}

// Request is what a proof must match.
type Request struct {
	// Method is the request's method (htm).
	Method string
	// URL is the endpoint's URL as the issuer names it (htu). Behind a
	// proxy the URL the server sees is not the one the client signed, so
	// the caller passes the issuer-based one, never r.URL.
	URL string
	// AccessToken is the token presented with the proof at a resource
	// endpoint: the proof must carry its hash (ath). Empty at the token
	// endpoint, where a proof with ath is refused no more than one without.
	AccessToken string
}

// Proof returns the request's one DPoP header, "" when there is none. Two
// headers, or one over MaxProofLen, is an invalid proof (§4.3 check 1).
func Proof(h http.Header) (string, error) {
	v := h.Values(HeaderName)
	switch {
	case len(v) == 0:
		return "", nil
	case len(v) > 1:
		return "", invalid("Exactly one DPoP header may be sent.")
	case len(v[0]) > MaxProofLen:
		return "", invalid("The DPoP proof is too large.")
	case v[0] == "":
		return "", invalid("The DPoP header is empty.")
	}
	return v[0], nil
}

type claims struct {
	JTI   string  `json:"jti"`
	HTM   string  `json:"htm"`
	HTU   string  `json:"htu"`
	IAT   float64 `json:"iat"`
	ATH   *string `json:"ath"`
	Nonce *string `json:"nonce"`
}

// Check verifies proof against req (RFC 9449 §4.3) and spends its jti. It
// returns the thumbprint of the proof's key (RFC 7638, SHA-256,
// base64url). A refused proof is an *Error; any other error is the
// store's.
func (v *Verifier) Check(ctx context.Context, proof string, req Request) (string, error) {
	if len(proof) > MaxProofLen {
		return "", invalid("The DPoP proof is too large.")
	}
	// ParseSigned refuses every algorithm not listed: none and HS* never
	// reach a key.
	jws, err := jose.ParseSigned(proof, Algorithms)
	if err != nil {
		return "", invalid("The DPoP proof is not a JWS signed with one of %s.", strings.Join(AlgorithmNames(), ", "))
	}
	if len(jws.Signatures) != 1 {
		return "", invalid("The DPoP proof must have exactly one signature.")
	}
	sig := jws.Signatures[0]
	typ, _ := sig.Header.ExtraHeaders[jose.HeaderType].(string)
	if typ != "dpop+jwt" {
		return "", invalid("The DPoP proof's typ must be dpop+jwt.")
	}
	jwk := sig.Header.JSONWebKey
	if jwk == nil {
		return "", invalid("The DPoP proof has no jwk header.")
	}
	// go-jose already refuses an embedded private key (RFC 7515 §4.1.3);
	// this says so again where the property is ours to keep.
	if !jwk.IsPublic() || !jwk.Valid() {
		return "", invalid("The DPoP proof's jwk must be a public key.")
	}
	if _, symmetric := jwk.Key.([]byte); symmetric {
		return "", invalid("The DPoP proof's jwk must be an asymmetric key.")
	}
	payload, err := jws.Verify(jwk)
	if err != nil {
		return "", invalid("The DPoP proof's signature does not verify with its jwk.")
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", invalid("The DPoP proof's claims are not a JSON object.")
	}
	if c.JTI == "" || len(c.JTI) > MaxJTILen {
		return "", invalid("The DPoP proof's jti is missing or longer than %d characters.", MaxJTILen)
	}
	if c.HTM != req.Method {
		return "", invalid("The DPoP proof's htm does not match the request method.")
	}
	if c.HTU == "" || !SameURL(c.HTU, req.URL) {
		return "", invalid("The DPoP proof's htu does not match the endpoint URL %s.", req.URL)
	}
	now := v.now()
	// Bounded before the conversion to a Duration, which a huge value
	// would overflow.
	if c.IAT <= 0 || math.IsNaN(c.IAT) || c.IAT > 1e11 {
		return "", invalid("The DPoP proof has no valid iat.")
	}
	iat := time.Unix(0, 0).Add(time.Duration(c.IAT * float64(time.Second)))
	if d := now.Sub(iat); d > v.Window || d < -v.Window {
		return "", invalid("The DPoP proof's iat is not within %s of the server's time.", v.Window)
	}
	if req.AccessToken != "" {
		if c.ATH == nil {
			return "", invalid("The DPoP proof has no ath for the access token.")
		}
		want := TokenHash(req.AccessToken)
		if subtle.ConstantTimeCompare([]byte(*c.ATH), []byte(want)) != 1 {
			return "", invalid("The DPoP proof's ath does not match the access token.")
		}
	}
	if v.RequireNonce {
		if c.Nonce == nil {
			return "", &Error{Code: CodeUseNonce, Description: "Authorization server requires nonce in DPoP proof."}
		}
		if !v.validNonce(*c.Nonce, now) {
			return "", &Error{Code: CodeUseNonce, Description: "The DPoP nonce is stale; use the one in the DPoP-Nonce header."}
		}
	}
	jkt, err := Thumbprint(jwk)
	if err != nil {
		return "", invalid("The DPoP proof's jwk has no thumbprint.")
	}
	// Scoped by the key, so that one client's jti cannot block another's;
	// kept until its iat leaves the window, after which the proof would be
	// refused anyway.
	ok, err := v.replay.SpendDPoPProof(ctx, jkt+"\x00"+c.JTI, iat.Add(v.Window+2*time.Second))
	if err != nil {
		return "", fmt.Errorf("dpop replay check: %w", err)
	}
	if !ok {
		return "", invalid("The DPoP proof was already used.")
	}
	return jkt, nil
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of key, base64url: cnf.jkt
// and dpop_jkt.
func Thumbprint(key *jose.JSONWebKey) (string, error) {
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// TokenHash is ath: base64url(SHA-256(access token)) (§4.2).
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ValidThumbprint tells whether s can be a SHA-256 thumbprint: 43
// base64url characters (dpop_jkt, §10).
func ValidThumbprint(s string) bool {
	if len(s) != 43 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == sha256.Size
}

// SameURL compares htu with the endpoint URL per §4.3: without query and
// fragment, scheme and host case-insensitive, default ports dropped
// (RFC 3986 §6.2.2-6.2.3).
func SameURL(htu, endpoint string) bool {
	a, ok := normalize(htu)
	if !ok {
		return false
	}
	b, ok := normalize(endpoint)
	return ok && a == b
}

func normalize(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" || u.User != nil {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return "", false
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, true
}

// Nonce is the server nonce of the current window: what a DPoP-Nonce
// header hands out.
func (v *Verifier) Nonce() string {
	return v.nonceAt(v.windowOf(v.now()))
}

func (v *Verifier) windowOf(t time.Time) int64 {
	return t.Unix() / int64(NonceWindow/time.Second)
}

func (v *Verifier) nonceAt(window int64) string {
	mac := hmac.New(sha256.New, v.nonceKey)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(window))
	mac.Write(b[:])
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:18])
}

// validNonce accepts the nonce of the current window and of the one
// before, so a nonce handed out just before a window ends still works.
func (v *Verifier) validNonce(n string, now time.Time) bool {
	w := v.windowOf(now)
	for _, win := range []int64{w, w - 1} {
		if hmac.Equal([]byte(n), []byte(v.nonceAt(win))) {
			return true
		}
	}
	return false
}

// AsError returns err as a refused proof, if it is one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
