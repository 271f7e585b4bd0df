package oauth

import (
	"errors"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/latchkey/latchkey/internal/dpop"
	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/requestid"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/ory/fosite"
)

// bearerError is an RFC 6750 §3.1 answer: its status and the error of the
// WWW-Authenticate challenge ("" for a request that carried no token).
type bearerError struct {
	status      int
	code, descr string
	// dpop answers with a DPoP challenge (RFC 9449 §7.1) instead of a
	// Bearer one.
	dpop bool
}

var (
	errNoToken      = &bearerError{status: http.StatusUnauthorized}
	errTokenInvalid = &bearerError{http.StatusUnauthorized, "invalid_token", "The access token is invalid, expired or revoked.", false}
	errNotUserToken = &bearerError{http.StatusUnauthorized, "invalid_token", "The access token was not issued to a user.", false}
	errNoOpenID     = &bearerError{http.StatusForbidden, "insufficient_scope", "The access token does not carry the openid scope.", false}
	// RFC 9449 §7.1: a bound token presented as a bearer token is refused,
	// or stealing it would be enough after all.
	errBoundAsBearer = &bearerError{http.StatusUnauthorized, "invalid_token", "The access token is DPoP-bound: present it with the DPoP scheme and a proof.", true}
	errNotBound      = &bearerError{http.StatusUnauthorized, "invalid_token", "The access token is not DPoP-bound: present it as a Bearer token.", true}
	errWrongKey      = &bearerError{http.StatusUnauthorized, dpop.CodeInvalidProof, "The DPoP proof is not signed with the key the access token is bound to.", true}
)

// dpopChallengeError is a refused proof at userinfo: 401 with a DPoP
// challenge (RFC 9449 §7.1), use_dpop_nonce included (§9).
func dpopChallengeError(e *dpop.Error) *bearerError {
	return &bearerError{http.StatusUnauthorized, e.Code, e.Description, true}
}

func (e *bearerError) Error() string { return e.code + ": " + e.descr }

// Userinfo serves GET and POST /oauth2/userinfo (OpenID Connect Core §5.3):
// the claims of the person an access token with the openid scope was
// issued for, limited to the scopes granted. The token is checked as
// introspection checks it (either format, revocation honoured), and must
// be an access token.
func (p *Provider) Userinfo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	token, dpopScheme, berr := bearerToken(r)
	if berr != nil {
		p.writeBearerError(w, r, berr)
		return
	}
	// DPoP (RFC 9449 §7): the proof is checked, and spent, before the
	// token is looked at; it must carry the token's hash (ath).
	var jkt string
	if dpopScheme {
		var err error
		jkt, err = p.checkProof(w, r, PathUserinfo, token)
		if e, ok := dpop.AsError(err); ok {
			p.writeBearerError(w, r, dpopChallengeError(e))
			return
		}
		if err != nil {
			p.writeError(w, r, PathUserinfo, nil, err)
			return
		}
		if jkt == "" {
			p.writeBearerError(w, r, dpopChallengeError(&dpop.Error{Code: dpop.CodeInvalidProof, Description: "The DPoP scheme needs a DPoP proof header."}))
			return
		}
	}
	use, ar, err := p.fosite.IntrospectToken(ctx, token, fosite.AccessToken, grantsession.New(""))
	if err == nil && ar.GetClient() != nil {
		// The token's client: whose app asked, for the access log.
		requestid.SetClientID(ctx, ar.GetClient().GetID())
	}
	switch {
	case errors.Is(err, store.ErrUnavailable):
		p.writeError(w, r, PathUserinfo, nil, err)
		return
	case err != nil:
		if !isInactive(err) {
			p.log.WarnContext(ctx, "userinfo: token check failed", "error", err)
		}
		p.writeBearerError(w, r, errTokenInvalid)
		return
	case use != fosite.AccessToken:
		// A refresh token is a credential for the token endpoint only.
		p.writeBearerError(w, r, errTokenInvalid)
		return
	}
	var bound string
	if gs, ok := ar.GetSession().(*grantsession.Session); ok {
		bound = gs.CnfJKT
	}
	switch {
	case bound != "" && !dpopScheme:
		p.writeBearerError(w, r, errBoundAsBearer)
		return
	case bound == "" && dpopScheme:
		p.writeBearerError(w, r, errNotBound)
		return
	case bound != jkt:
		p.writeBearerError(w, r, errWrongKey)
		return
	}
	sub := ar.GetSession().GetSubject()
	if sub == "" || sub == ar.GetClient().GetID() {
		// Client credentials: the subject is the client (RFC 9068 §2.2),
		// there is no person to describe, and no scope would change that.
		p.writeBearerError(w, r, errNotUserToken)
		return
	}
	scopes := ar.GetGrantedScopes()
	if !slices.Contains(scopes, "openid") {
		p.writeBearerError(w, r, errNoOpenID)
		return
	}
	u, err := p.store.FindUser(ctx, sub)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Deleted since: its tokens describe nobody.
		p.writeBearerError(w, r, errTokenInvalid)
		return
	case err != nil:
		p.writeError(w, r, PathUserinfo, nil, err)
		return
	}
	// The same claims an ID token of this grant carries (profileClaims).
	writeJSON(w, http.StatusOK, struct {
		Subject string `json:"sub"`
		userClaims
	}{u.ID, profileClaims(u, scopes)})
}

// bearerToken finds the access token in the Authorization header (RFC 6750
// §2.1) or, on POST, in a form body's access_token (§2.2). A token in the
// query string (§2.3) is refused: it ends up in logs and browser history.
// Exactly one method may be used (§2).
//
// The DPoP scheme (RFC 9449 §7.1) is read too, from the header only; the
// second result says it was used.
func bearerToken(r *http.Request) (string, bool, *bearerError) {
	bad := func(d string) *bearerError { return &bearerError{http.StatusBadRequest, "invalid_request", d, false} }
	if r.URL.Query().Has("access_token") {
		return "", false, bad("The access token must not be sent in the URL query.")
	}
	var found []string
	dpopScheme := false
	headers := r.Header.Values("Authorization")
	if len(headers) > 1 {
		return "", false, bad("Only one Authorization header may be sent.")
	}
	if len(headers) == 1 {
		scheme, tok, ok := strings.Cut(headers[0], " ")
		dpopScheme = ok && strings.EqualFold(scheme, "DPoP")
		if !ok || (!strings.EqualFold(scheme, "Bearer") && !dpopScheme) {
			// Another scheme (Basic) is not an access token: as if none
			// was sent, so the challenge says which to use.
			return "", false, errNoToken
		}
		tok = strings.TrimSpace(tok)
		if tok == "" {
			return "", false, errTokenInvalid
		}
		found = append(found, tok)
	}
	if r.Method == http.MethodPost {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt == formContentType {
			if err := r.ParseForm(); err != nil {
				return "", false, bad("The request body is not a valid form.")
			}
			switch v := r.PostForm["access_token"]; {
			case len(v) > 1:
				return "", false, bad("The access_token parameter must not be repeated.")
			case len(v) == 1:
				found = append(found, v[0])
			}
		}
	}
	switch len(found) {
	case 0:
		return "", false, errNoToken
	case 1:
		if found[0] == "" {
			return "", false, errTokenInvalid
		}
		return found[0], dpopScheme, nil
	}
	return "", false, bad("The access token must be sent one way only.")
}

// writeBearerError answers an RFC 6750 §3 error: the status, a
// WWW-Authenticate challenge, and the same error as JSON for readers that
// do not parse the header.
func (p *Provider) writeBearerError(w http.ResponseWriter, r *http.Request, e *bearerError) {
	scheme := "Bearer"
	if e.dpop {
		scheme = "DPoP"
	}
	challenge := scheme + ` realm="` + p.cfg.Issuer + `"`
	if e.code != "" {
		challenge += `, error="` + e.code + `", error_description="` + e.descr + `"`
		if e.code == "insufficient_scope" {
			challenge += `, scope="openid"`
		}
		p.metrics.OAuthErrors.WithLabelValues(PathUserinfo, e.code).Inc()
		p.log.InfoContext(r.Context(), "userinfo refused", "error", e.code, "status", e.status)
	}
	if e.dpop {
		challenge += `, algs="` + strings.Join(dpop.AlgorithmNames(), " ") + `"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	if e == errNoToken {
		// Both schemes are accepted (RFC 9449 §7.1: one challenge each).
		w.Header().Add("WWW-Authenticate", `DPoP algs="`+strings.Join(dpop.AlgorithmNames(), " ")+`"`)
	}
	if e.code == "" {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(e.status)
		return
	}
	writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.descr})
}
