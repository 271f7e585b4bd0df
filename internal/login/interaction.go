package login

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// PurposeInteraction derives the key that signs interaction proofs.
const PurposeInteraction = "latchkey/v1/interaction"

// InteractionParam carries, on the authorization request that the consent
// page sends the browser back to, the proof that the signed-in user has
// just approved that very request on the page.
const InteractionParam = "interaction"

// What the user did on a page, as Interacted reports it.
const (
	// SignedIn: typed their password on the login page for this request.
	SignedIn = "login"
	// Approved: allowed this request on the consent page (and the consent
	// is stored).
	Approved = "consent"
)

// interactionTTL is how long a proof is good for; the redirect back to the
// authorization endpoint follows the form at once.
const interactionTTL = 2 * time.Minute

// interactionProof signs the authorization request q for the login session
// sessionID: "KIND.EXPIRY.MAC".
func (h *Handler) interactionProof(kind, sessionID string, q url.Values, now time.Time) string {
	exp := strconv.FormatInt(now.Add(interactionTTL).Unix(), 10)
	return kind + "." + exp + "." + interactionMAC(h.interactionKeys[0], kind, sessionID, exp, q)
}

func interactionMAC(key []byte, kind, sessionID, exp string, q url.Values) string {
	clean := url.Values{}
	for k, v := range q {
		if k != InteractionParam && k != ConsentDeniedParam {
			clean[k] = v
		}
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(kind + "\x00" + sessionID + "\x00" + exp + "\x00" + clean.Encode()))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Interacted reports what the user of session s just did on a page for
// exactly this authorization request: SignedIn, Approved, or "" when r
// carries no live proof of either. Remembered consent and a remembered
// login session are not interaction: a program on the user's device
// that opens the browser on a crafted URL gets a code without anyone
// seeing a page (RFC 8252 §8.6). The proof comes only from the
// CSRF-protected login and consent forms, and it covers every parameter, the
// code_challenge and the redirect port included: replayed from the
// browser's history it yields a code only its real requester can redeem.
func (h *Handler) Interacted(r *http.Request, s *Session) string {
	if s == nil {
		return ""
	}
	q := r.URL.Query()
	parts := strings.Split(q.Get(InteractionParam), ".")
	if len(parts) != 3 || (parts[0] != SignedIn && parts[0] != Approved) {
		return ""
	}
	kind, exp, mac := parts[0], parts[1], parts[2]
	n, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || !time.Now().Before(time.Unix(n, 0)) {
		return ""
	}
	valid := false
	for _, k := range h.interactionKeys {
		valid = hmac.Equal([]byte(mac), []byte(interactionMAC(k, kind, s.ID, exp, q))) || valid
	}
	if !valid {
		return ""
	}
	return kind
}
