// Package grantsession defines the fosite session that Latchkey persists with
// every grant. It lives in its own package because both the store (which
// decodes it from rows) and the OAuth layer (which fills it) need it, and the
// store must not import the OAuth layer.
package grantsession

import (
	"maps"
	"slices"
	"time"

	"github.com/ory/fosite"
)

// Session is what Latchkey remembers about a grant besides the request
// itself. Expiry lives here (fosite's design): losing it on a round-trip
// would make refresh tokens immortal, which the store's conformance suite
// checks.
type Session struct {
	// Subject is the user's stable ID for user grants and the client ID for
	// client credentials.
	Subject string `json:"sub"`
	// Username is reported by introspection for user grants.
	Username  string                         `json:"username,omitempty"`
	ExpiresAt map[fosite.TokenType]time.Time `json:"expires_at"`
	AuthTime  time.Time                      `json:"auth_time,omitzero"`
	// GrantedAt is when the grant began (the code or password exchange). A
	// refresh never extends the grant past GrantedAt plus the absolute
	// refresh lifetime.
	GrantedAt time.Time `json:"granted_at,omitzero"`
	// LoginSessionID is the browser login session the grant was issued
	// under; logout revokes the grants that carry it.
	LoginSessionID string `json:"sid,omitempty"`
	// OpenID Connect: what the ID tokens of this grant say, on every
	// refresh as on the first. SID is the login session's public id
	// (store.LoginSession.SID), not LoginSessionID, which is the cookie's
	// hash and changes when the person signs in again. Nonce is the
	// authorization request's; it goes into the ID token of the code
	// exchange only (Core §12.2: not into refreshed ones). AMR is how the
	// person authenticated ("pwd").
	SID   string   `json:"osid,omitempty"`
	Nonce string   `json:"nonce,omitempty"`
	AMR   []string `json:"amr,omitempty"`
	// ACR is the authentication context class the sign-in reached
	// (oauth.ACRPassword or ACRMFA).
	ACR   string         `json:"acr,omitempty"`
	Extra map[string]any `json:"extra,omitempty"`
	// DPoP (RFC 9449), each an RFC 7638 thumbprint. CnfJKT binds the
	// access tokens issued by the latest token request (cnf.jkt; empty:
	// bearer), so introspection of an opaque token can answer cnf.
	// RefreshJKT binds a public client's refresh token chain to the key
	// that obtained it (§5); it is set once and kept by every rotation.
	// CodeJKT is the authorization request's dpop_jkt (§10): the code
	// exchange must carry a proof by that key.
	CnfJKT     string `json:"cnf_jkt,omitempty"`
	RefreshJKT string `json:"refresh_jkt,omitempty"`
	CodeJKT    string `json:"code_jkt,omitempty"`
	// Act is the acting party of a token issued by token exchange (RFC
	// 8693 §4.1): the client that exchanged the subject token, and, nested,
	// whoever acted in the subject token. MayAct is RFC 8693 §4.4's claim
	// naming the only party allowed to act for the subject.
	Act    *Actor `json:"act,omitempty"`
	MayAct *Actor `json:"may_act,omitempty"`
	// TokenID is the jti of the JWT access token this session was read
	// from during introspection. It is never stored.
	TokenID string `json:"-"`
	// CodeScopes are the scopes granted with the authorization code this
	// session was read with at the token endpoint. fosite grants them to
	// the token request only while it issues the tokens; the ID token's
	// checks, which must fail before anything is issued, need them sooner.
	// It lives only for the request and is never stored.
	CodeScopes []string `json:"-"`
	// GraceSuccessor is the refresh token to hand back to a repeat of a
	// just-rotated refresh token inside the grace period. It lives only for
	// the request and is never stored.
	GraceSuccessor string `json:"-"`
	// DeviceSignature is the device code (RFC 8628) this session was read
	// from at the token endpoint, to be redeemed as the tokens are issued.
	// It lives only for the request and is never stored.
	DeviceSignature string `json:"-"`
}

var _ fosite.Session = (*Session)(nil)

// New returns an empty session, the prototype handed to fosite.
func New(subject string) *Session {
	return &Session{Subject: subject, ExpiresAt: map[fosite.TokenType]time.Time{}}
}

// SetExpiresAt records when the token of the given kind expires.
func (s *Session) SetExpiresAt(key fosite.TokenType, exp time.Time) {
	if s.ExpiresAt == nil {
		s.ExpiresAt = map[fosite.TokenType]time.Time{}
	}
	s.ExpiresAt[key] = exp
}

// GetExpiresAt returns the zero time when no expiry is set.
func (s *Session) GetExpiresAt(key fosite.TokenType) time.Time {
	return s.ExpiresAt[key]
}

// GetUsername is the human-readable name of the resource owner.
func (s *Session) GetUsername() string { return s.Username }

// SetSubject is called by fosite's password grant with the authenticated user.
func (s *Session) SetSubject(subject string) { s.Subject = subject }

// GetSubject is the resource owner's stable ID.
func (s *Session) GetSubject() string { return s.Subject }

// Clone deep-copies the session; fosite clones it into every refreshed grant.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := *s
	c.ExpiresAt = maps.Clone(s.ExpiresAt)
	c.Extra = maps.Clone(s.Extra)
	c.AMR = slices.Clone(s.AMR)
	c.CodeScopes = slices.Clone(s.CodeScopes)
	c.Act = s.Act.clone()
	c.MayAct = s.MayAct.clone()
	return &c
}

// Actor is RFC 8693's act (and may_act) claim: the acting party and, in
// Act, the party that acted before it (§4.1: the outermost is the current
// actor, nested ones are prior actors).
type Actor struct {
	Sub string `json:"sub"`
	Act *Actor `json:"act,omitempty"`
}

func (a *Actor) clone() *Actor {
	if a == nil {
		return nil
	}
	return &Actor{Sub: a.Sub, Act: a.Act.clone()}
}
