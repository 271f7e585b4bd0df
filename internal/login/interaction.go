package login

import (
	"crypto/hmac"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// PurposeInteraction derives the key that signs interaction proofs.
const PurposeInteraction = "latchkey/v1/interaction"

// InteractionParam carries, on the authorization request that the login or
// consent page sends the browser back to, the proof that the signed-in
// person has just signed in for, or approved, that very request.
const InteractionParam = "interaction"

// Interaction is what the person did on a page for one authorization
// request, as SignIn.Did reports it.
type Interaction string

const (
	// NoInteraction: nothing, or nothing that can be proven.
	NoInteraction Interaction = ""
	// SignedIn: typed their password on the login page for this request.
	SignedIn Interaction = "login"
	// Approved: allowed this request on the consent page. The
	// authorization endpoint records the consent when it sees this.
	Approved Interaction = "consent"
)

// interactionTTL is how long a proof is good for; the redirect back to the
// authorization endpoint follows the form at once.
const interactionTTL = 2 * time.Minute

// withProof returns the authorization request returnTo with the proof that
// the person of login session sessionID did kind for it: InteractionParam
// "KIND.EXPIRY.MAC", the MAC over every other parameter. returnTo is
// opaque here: it was checked by safeReturnTo, and its parameters are
// signed, not read.
func (h *Handler) withProof(returnTo string, kind Interaction, sessionID string, now time.Time) string {
	u, err := url.Parse(returnTo)
	if err != nil {
		return returnTo
	}
	q := u.Query()
	q.Del(ConsentDeniedParam)
	exp := strconv.FormatInt(now.Add(interactionTTL).Unix(), 10)
	q.Set(InteractionParam, string(kind)+"."+exp+"."+interactionMAC(h.interactionKeys[0], string(kind), sessionID, exp, q))
	u.RawQuery = q.Encode()
	return u.String()
}

func interactionMAC(key []byte, kind, sessionID, exp string, q url.Values) string {
	clean := url.Values{}
	for k, v := range q {
		if k != InteractionParam && k != ConsentDeniedParam {
			clean[k] = v
		}
	}
	return sign(key, kind, sessionID, exp, clean.Encode())
}

// interacted reports what the person of s just did on a page for exactly
// the authorization request r: SignedIn, Approved, or NoInteraction when r
// carries no live proof of either. Remembered consent and a remembered
// login session are not interaction: a program on the user's device
// that opens the browser on a crafted URL gets a code without anyone
// seeing a page (RFC 8252 §8.6). The proof comes only from the
// CSRF-protected login and consent forms, and it covers every parameter, the
// code_challenge and the redirect port included: replayed from the
// browser's history it yields a code only its real requester can redeem.
func (h *Handler) interacted(r *http.Request, s *SignIn) Interaction {
	if s == nil {
		return NoInteraction
	}
	q := r.URL.Query()
	parts := strings.Split(q.Get(InteractionParam), ".")
	if len(parts) != 3 || (parts[0] != string(SignedIn) && parts[0] != string(Approved)) {
		return NoInteraction
	}
	kind, exp, mac := parts[0], parts[1], parts[2]
	n, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || !h.cfg.Now().Before(time.Unix(n, 0)) {
		return NoInteraction
	}
	valid := false
	for _, k := range h.interactionKeys {
		valid = hmac.Equal([]byte(mac), []byte(interactionMAC(k, kind, s.LoginSessionID, exp, q))) || valid
	}
	if !valid {
		return NoInteraction
	}
	return Interaction(kind)
}
