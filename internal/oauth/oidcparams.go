package oauth

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"
)

// maxNonceLen bounds the nonce (issue 14): it is stored with the grant and
// echoed in every ID token of it, and no real nonce is longer.
const maxNonceLen = 512

// maxLoginHintLen bounds the login_hint the login page prefills: a username
// is at most 128 characters and an email 254; longer is not a hint.
const maxLoginHintLen = 256

// knownPrompts are the prompt values of OpenID Connect Core §3.1.2.1.
var knownPrompts = []string{"none", "login", "consent", "select_account"}

// unservedParams are authorization request parameters Latchkey does not
// serve and must refuse rather than ignore, each with the error Core names
// for it (§6.1, §6.2, §7.2.1). They are taken out of the form before fosite
// reads it: fosite would act on request and request_uri (merge an unsigned
// request object's claims, fetch a URL) before it has checked the redirect
// URI, and its error would then land on the error page instead of the
// client's redirect. A request_uri of a pushed request (RFC 9126) never gets
// here: Authorize redeems it first (par.go).
var unservedParams = []struct {
	name string
	err  *fosite.RFC6749Error
}{
	{"request", fosite.ErrRequestNotSupported},
	{"request_uri", fosite.ErrRequestURINotSupported},
	{"registration", fosite.ErrRegistrationNotSupported},
}

// oidcRequest is what Latchkey reads of an authorization request's OpenID
// Connect parameters (Core §3.1.2.1), checked before any page is shown.
// ui_locales, claims_locales, acr_values, display and claims are accepted
// and ignored: the pages have one language and one look, there is one way
// to sign in yet, and the claims parameter is not supported
// (claims_parameter_supported is false; RFC 6749 §3.1 has the server
// ignore what it does not understand).
type oidcRequest struct {
	prompts []string
	// maxAge is max_age in seconds, or -1 when absent.
	maxAge int64
	// hint is the verified id_token_hint, or nil.
	hint *idTokenHint
	// loginHint prefills the login page's username, or is empty.
	loginHint string
	// refused is the error for a parameter Latchkey does not serve, found
	// by takeUnserved before fosite read the form.
	refused error
	// dpopJKT is the dpop_jkt parameter (RFC 9449 §10), or empty.
	dpopJKT string
	// wantMFA: acr_values asks for a second factor (mfa.go).
	wantMFA bool
}

// takeUnserved removes the parameters of unservedParams from form and
// returns the error for the first one present, or nil.
func takeUnserved(form url.Values) error {
	var refused error
	for _, u := range unservedParams {
		if form.Has(u.name) {
			if refused == nil {
				refused = u.err.WithHintf("The '%s' parameter is not supported.", u.name)
			}
			form.Del(u.name)
		}
	}
	return refused
}

// parseOIDCRequest checks the OpenID Connect parameters of a request fosite
// has accepted; every failure is an error the client gets by redirect.
func (p *Provider) parseOIDCRequest(ar fosite.AuthorizeRequester, refused error) (*oidcRequest, error) {
	if refused != nil {
		return nil, refused
	}
	form := ar.GetRequestForm()
	o := &oidcRequest{maxAge: -1, prompts: strings.Fields(form.Get("prompt"))}
	for _, pr := range o.prompts {
		if !slices.Contains(knownPrompts, pr) {
			return nil, fosite.ErrInvalidRequest.WithHintf("The prompt value '%s' is not supported.", pr)
		}
	}
	if slices.Contains(o.prompts, "none") && len(o.prompts) > 1 {
		return nil, fosite.ErrInvalidRequest.WithHint("prompt=none cannot be combined with other values.")
	}
	if len(form.Get("nonce")) > maxNonceLen {
		return nil, fosite.ErrInvalidRequest.WithHintf("The nonce must be at most %d bytes.", maxNonceLen)
	}
	if form.Has("max_age") {
		n, err := parseMaxAge(form.Get("max_age"))
		if err != nil {
			return nil, err
		}
		o.maxAge = n
	}
	if raw := form.Get("id_token_hint"); raw != "" {
		hint, err := p.parseIDTokenHint(raw)
		if err != nil {
			return nil, fosite.ErrInvalidRequest.WithHint("The id_token_hint was not issued by this server.").WithWrap(err)
		}
		// An ID token of another client names a person that client knows;
		// accepting it would let one client probe another's sessions
		// with prompt=none. Expiry is not checked: Core §3.1.2.1 asks the
		// OP to accept a hint whose ID token has expired.
		if !slices.Contains(hint.Audience, ar.GetClient().GetID()) {
			return nil, fosite.ErrInvalidRequest.WithHint("The id_token_hint was not issued to this client.")
		}
		o.hint = hint
	}
	o.wantMFA = wantsMFA(form.Get("acr_values"))
	if h := form.Get("login_hint"); len(h) <= maxLoginHintLen && printableHint(h) {
		o.loginHint = h
	}
	return o, nil
}

// parseMaxAge reads max_age: a non-negative decimal integer of seconds
// (Core §3.1.2.1). A number too large for int64 is no limit in practice and
// is read as the largest one.
func parseMaxAge(v string) (int64, error) {
	bad := fosite.ErrInvalidRequest.WithHint("The max_age parameter must be a non-negative integer number of seconds.")
	if v == "" || strings.TrimLeft(v, "0123456789") != "" {
		return 0, bad
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 1<<63 - 1, nil
	}
	return n, nil
}

// printableHint refuses control characters: the hint is shown in a form
// field, and a newline or escape in it is not anyone's username.
func printableHint(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// loginTooOld reports whether a sign-in at authTime no longer satisfies
// max_age at now: "if the elapsed time is greater than this value, the OP
// MUST attempt to actively re-authenticate" (Core §3.1.2.1). max_age=0
// always asks.
func (o *oidcRequest) loginTooOld(authTime, now time.Time) bool {
	if o.maxAge < 0 {
		return false
	}
	if o.maxAge == 0 {
		return true
	}
	if o.maxAge > int64((1<<63-1)/time.Second) {
		return false
	}
	return now.Sub(authTime) > time.Duration(o.maxAge)*time.Second
}
