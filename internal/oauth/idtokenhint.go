package oauth

import (
	"errors"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/latchkey/latchkey/internal/keys"
)

// idTokenHint is what Latchkey reads of an ID token it issued when a
// relying party hands it back: as id_token_hint at the authorization
// endpoint (Core §3.1.2.1) or at the end-session endpoint (RP-Initiated
// Logout §2).
type idTokenHint struct {
	Subject  string
	SID      string
	Audience []string
	Expiry   time.Time
}

// errBadIDTokenHint is an id_token_hint Latchkey did not issue: not a
// JWT, not an ID token, not signed by a published key, or of another
// issuer. An expired one is not an error here; each caller decides.
var errBadIDTokenHint = errors.New("the id_token_hint was not issued by this server")

// parseIDTokenHint verifies an ID token against the published keys and
// returns its subject, session and audience. Expiry is not checked: RP-
// Initiated Logout §2 asks the OP to accept an expired hint, and the
// authorization endpoint compares the subject only. A hint signed by a key
// that has since left the JWKS cannot be verified and is refused.
func (p *Provider) parseIDTokenHint(raw string) (*idTokenHint, error) {
	parsed, err := jwt.ParseSigned(raw, keys.Algorithms)
	if err != nil || len(parsed.Headers) != 1 {
		return nil, errBadIDTokenHint
	}
	h := parsed.Headers[0]
	// An access token (typ at+jwt) or a logout token is not an ID token,
	// though the same keys sign all three.
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "" && !strings.EqualFold(typ, keys.TypIDToken) {
		return nil, errBadIDTokenHint
	}
	key, ok := p.keys.Lookup(h.KeyID)
	if !ok || string(key.Alg) != h.Algorithm {
		return nil, errBadIDTokenHint
	}
	var c jwt.Claims
	if err := parsed.Claims(key.Public.Key, &c); err != nil {
		return nil, errBadIDTokenHint
	}
	var extra struct {
		SID string `json:"sid"`
	}
	if err := parsed.UnsafeClaimsWithoutVerification(&extra); err != nil {
		return nil, errBadIDTokenHint
	}
	if c.Issuer != p.cfg.Issuer || c.Subject == "" || len(c.Audience) == 0 || c.Expiry == nil {
		return nil, errBadIDTokenHint
	}
	return &idTokenHint{Subject: c.Subject, SID: extra.SID, Audience: c.Audience, Expiry: c.Expiry.Time()}, nil
}
