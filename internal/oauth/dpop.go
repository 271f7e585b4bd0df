package oauth

import (
	"context"
	"net/http"

	"github.com/latchkey/latchkey/internal/dpop"
	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/ory/fosite"
)

// DPoP (RFC 9449) at the token endpoint. The proof is checked, and its jti
// spent, before fosite sees the request (dpop package doc: why first); the
// thumbprint then travels in the context to the grant handlers (the
// refresh grant compares it with its chain's binding) and is bound to what
// the request issues (bindDPoP).

type jktKey struct{}

func withJKT(ctx context.Context, jkt string) context.Context {
	return context.WithValue(ctx, jktKey{}, jkt)
}

// requestJKT is the thumbprint of the request's checked DPoP proof, "" when
// it carried none.
func requestJKT(ctx context.Context) string {
	s, _ := ctx.Value(jktKey{}).(string)
	return s
}

// errDPoPProof is RFC 9449 §5's error at the token endpoint: 400
// invalid_dpop_proof.
func errDPoPProof(hint string) *fosite.RFC6749Error {
	return (&fosite.RFC6749Error{
		ErrorField:       dpop.CodeInvalidProof,
		DescriptionField: "The DPoP proof is missing or invalid.",
		CodeField:        http.StatusBadRequest,
	}).WithHint(hint)
}

// dpopError is a refused proof as fosite writes it. use_dpop_nonce is 400
// too at the token endpoint (§8).
func dpopError(e *dpop.Error) *fosite.RFC6749Error {
	if e.Code == dpop.CodeUseNonce {
		return (&fosite.RFC6749Error{ErrorField: dpop.CodeUseNonce, DescriptionField: "The DPoP proof must carry the server's nonce.", CodeField: http.StatusBadRequest}).WithHint(e.Description)
	}
	return errDPoPProof(e.Description)
}

// checkProof checks the request's DPoP proof for the endpoint at path
// (htu is the issuer-based URL: behind a proxy the request's own is not
// what the client signed). It returns "" and no error when there is no
// proof. With LATCHKEY_DPOP_NONCE every answer to a DPoP request carries
// the current nonce, so clients learn of a new one before theirs goes
// stale.
func (p *Provider) checkProof(w http.ResponseWriter, r *http.Request, path, accessToken string) (string, error) {
	proof, err := dpop.Proof(r.Header)
	if err == nil && proof == "" {
		return "", nil
	}
	if p.dpop.RequireNonce {
		w.Header().Set(dpop.NonceHeader, p.dpop.Nonce())
	}
	if err == nil {
		var jkt string
		jkt, err = p.dpop.Check(r.Context(), proof, dpop.Request{Method: r.Method, URL: p.cfg.IssuerURL(path), AccessToken: accessToken})
		if err == nil {
			return jkt, nil
		}
	}
	if e, ok := dpop.AsError(err); ok {
		p.metrics.OAuthErrors.WithLabelValues(path, e.Code).Inc()
		return "", e
	}
	return "", err
}

// bindDPoP applies the DPoP rules that need the client and the grant, once
// fosite has checked both: a client registered with
// dpop_bound_access_tokens gets nothing without a proof (§5.2), a code
// requested with dpop_jkt is redeemed only with that key's proof (§10),
// and what is issued is bound to the proof's key: the access tokens
// always, a public client's refresh token chain from its first token on
// (§5; the refresh grant checks it, refresh.go). A confidential client's
// refresh token stays bound by its client authentication, as RFC 9449 §5
// allows.
func bindDPoP(ar fosite.AccessRequester, jkt string) error {
	c, _ := ar.GetClient().(*store.Client)
	if c != nil && c.DPoPBoundAccessTokens && jkt == "" {
		return errDPoPProof("This client is registered with dpop_bound_access_tokens: every token request needs a DPoP proof.")
	}
	sess, ok := ar.GetSession().(*grantsession.Session)
	if !ok {
		return fosite.ErrServerError.WithHint("Unexpected session type.")
	}
	if ar.GetGrantTypes().ExactOne("authorization_code") {
		if sess.CodeJKT != "" && sess.CodeJKT != jkt {
			return errDPoPProof("The authorization code is bound to a DPoP key (dpop_jkt); the proof must be signed with it.")
		}
		// Done with: the grant's later requests have nothing to do with it.
		sess.CodeJKT = ""
	}
	sess.CnfJKT = jkt
	if jkt != "" && c != nil && c.Public && !ar.GetGrantTypes().ExactOne("refresh_token") {
		sess.RefreshJKT = jkt
	}
	return nil
}
