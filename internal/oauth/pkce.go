package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"regexp"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"
)

// pkceStorage is what the PKCE check reads: the challenge row fosite's
// authorize handler wrote, and the code's own row, whose stored form keeps
// the code_challenge too.
type pkceStorage interface {
	pkce.PKCERequestStorage
	oauth2.AuthorizeCodeStorage
}

// pkceGrant verifies RFC 7636 §4.6 at the token endpoint in place of
// fosite's pkce.Handler. fosite deletes the challenge before it compares
// the verifier, outside any transaction, and treats a missing challenge as
// "issued without PKCE": one failed redemption turned a PKCE-bound code
// into one that redeems with no verifier at all, and let anyone holding a
// public client's code break the real app's redemption. This check writes
// nothing, so a failed request changes nothing; the challenge row expires
// with the code and the janitor removes it (a used code cannot be redeemed
// again anyway).
type pkceGrant struct {
	codes   oauth2.AuthorizeCodeStrategy
	storage pkceStorage
	// forAll requires PKCE of confidential clients too (OAuth 2.1 §4.1.1,
	// LATCHKEY_PKCE_REQUIRED=all); public clients always need it
	// (RFC 9700 §2.1.1).
	forAll bool
}

var _ fosite.TokenEndpointHandler = (*pkceGrant)(nil)

// RFC 7636 §4.1: code-verifier = 43*128unreserved.
var verifierRe = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

func (g *pkceGrant) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !g.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	form := r.GetRequestForm()
	verifier := form.Get("code_verifier")
	signature := g.codes.AuthorizeCodeSignature(ctx, form.Get("code"))
	challenge, method, err := g.challenge(ctx, signature)
	if err != nil {
		return err
	}
	if challenge == "" {
		switch {
		case verifier != "":
			return fosite.ErrInvalidGrant.WithHint("A code_verifier was sent but the code was issued without a code_challenge.")
		case r.GetClient().IsPublic() || g.forAll:
			return fosite.ErrInvalidGrant.WithHint("The code was issued without a code_challenge, which this client must use.")
		}
		return nil
	}
	if method != "S256" {
		// Plain is never accepted at the authorization endpoint; a code
		// that says otherwise is not trusted.
		return fosite.ErrInvalidGrant.WithHint("The code was issued with an unsupported code_challenge_method.")
	}
	if verifier == "" {
		return fosite.ErrInvalidGrant.WithHint("The code was issued with a code_challenge: the code_verifier is required.")
	}
	if !verifierRe.MatchString(verifier) {
		return fosite.ErrInvalidGrant.WithHint("The code_verifier must be 43 to 128 characters of [A-Za-z0-9._~-] (RFC 7636 §4.1).")
	}
	sum := sha256.Sum256([]byte(verifier))
	if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) != 1 {
		return fosite.ErrInvalidGrant.WithHint("The code_verifier does not match the code_challenge.")
	}
	return nil
}

// challenge returns the code_challenge bound to the code: from the PKCE
// row, else from the code's own stored request, so that a missing PKCE row
// can never pass for a code issued without PKCE.
func (g *pkceGrant) challenge(ctx context.Context, signature string) (challenge, method string, err error) {
	pr, err := g.storage.GetPKCERequestSession(ctx, signature, nil)
	if err == nil {
		return pr.GetRequestForm().Get("code_challenge"), pr.GetRequestForm().Get("code_challenge_method"), nil
	}
	if !errors.Is(err, fosite.ErrNotFound) {
		return "", "", fosite.ErrServerError.WithWrap(err)
	}
	// The code handler ran first and accepted the code, so its row exists.
	code, err := g.storage.GetAuthorizeCodeSession(ctx, signature, nil)
	if code == nil || (err != nil && !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode)) {
		if err == nil || errors.Is(err, fosite.ErrNotFound) {
			return "", "", fosite.ErrInvalidGrant.WithHint("The authorization code is not known.")
		}
		return "", "", fosite.ErrServerError.WithWrap(err)
	}
	return code.GetRequestForm().Get("code_challenge"), code.GetRequestForm().Get("code_challenge_method"), nil
}

func (g *pkceGrant) PopulateTokenEndpointResponse(context.Context, fosite.AccessRequester, fosite.AccessResponder) error {
	return nil
}

func (g *pkceGrant) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool { return false }

func (g *pkceGrant) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne("authorization_code")
}
