package oauth

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/latchkey/latchkey/internal/dpop"
	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/requestid"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/ory/fosite"
)

// PathAuthorize is the authorization endpoint.
const PathAuthorize = "/oauth2/authorize"

// LoginUI is all the authorization endpoint needs of the browser side
// (zitadel's "the login UI needs one tiny interface"): who is signed in,
// the login and consent pages, and the error page. The endpoint owns the
// protocol: it checks the client, the redirect URI, the scopes and prompt,
// decides which page the browser needs, says what that page shows, and
// records consent. The pages own the cookies, the forms and CSRF, and send
// the browser back with a signed proof of what the person did.
type LoginUI interface {
	// CurrentSignIn returns who is signed in on r's browser, or nil, and
	// in Did what they just did on a page for the request r carries.
	CurrentSignIn(r *http.Request) (*login.SignIn, error)
	// SendToLogin sends the browser to sign in, then back to rt.URL.
	SendToLogin(w http.ResponseWriter, r *http.Request, rt login.ReturnTo)
	// SendToConsent asks the person to allow rt, then sends the browser
	// back to rt.URL with the answer.
	SendToConsent(w http.ResponseWriter, r *http.Request, rt login.ReturnTo)
	// SendToSecondFactor asks the signed-in person for a second factor
	// (step-up), or tells them they must enrol one, then sends the
	// browser back to rt.URL.
	SendToSecondFactor(w http.ResponseWriter, r *http.Request, rt login.ReturnTo)
	// ErrorPage shows a message and never redirects; title and message
	// are keys of the pages' message catalogues (internal/login/locales).
	ErrorPage(w http.ResponseWriter, r *http.Request, status int, title, message string, args ...any)
}

var _ LoginUI = (*login.Handler)(nil)

// Authorize serves GET and POST /oauth2/authorize: the code flow with
// PKCE, and the OpenID Connect request parameters (Core §3.1.2.1). Every
// check that can fail runs before any page is shown, so a bad request is
// answered at once: on an error page when the client or redirect URI cannot
// be trusted, by redirect to the client otherwise.
func (p *Provider) Authorize(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		p.authorizePost(w, r)
		return
	}
	if !p.checkAuthorizeParams(w, r) {
		return
	}
	ctx := r.Context()
	// RFC 9126 §4: a request_uri of ours stands for the whole request,
	// which was pushed and checked; the request goes on with its
	// parameters. Any other request_uri (a request object by reference,
	// RFC 9101) is refused as unserved, below. Without one, the request
	// counts as pushed only when it is one the server itself resumed from
	// a pushed request (after a page).
	var pushed bool
	if strings.HasPrefix(r.Form.Get("request_uri"), RequestURIPrefix) {
		if !p.redeemPushed(w, r) {
			return
		}
		pushed = true
	} else {
		pushed = p.resumedPushed(r)
	}
	ar, oreq, err := p.checkAuthorizeRequest(ctx, r)
	if ar != nil && ar.GetClient() != nil {
		// A registered client, named by client_id: the access log says whose.
		requestid.SetClientID(ctx, ar.GetClient().GetID())
	}
	if err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	client, ok := ar.GetClient().(*store.Client)
	if !ok {
		p.authorizeError(w, r, ar, fosite.ErrServerError.WithHint("Unexpected client type."))
		return
	}
	if !pushed && (p.cfg.RequirePAR || client.RequirePushedAuthorizationRequests) {
		// RFC 9126 §5. The client and its redirect URI are checked, so it
		// learns why by redirect like any other refused request.
		p.authorizeError(w, r, ar, fosite.ErrInvalidRequest.WithHint("Authorization requests of this client must be pushed to the pushed_authorization_request_endpoint first (RFC 9126)."))
		return
	}
	form := ar.GetRequestForm()
	prompts := oreq.prompts

	si, err := p.ui.CurrentSignIn(r)
	if err != nil {
		p.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
		return
	}
	justSignedIn := si != nil && si.Did == login.SignedIn
	if justSignedIn {
		// The person has just typed their password for this very request:
		// prompt=login, select_account and max_age are satisfied (OpenID
		// Connect Core §3.1.2.1), or they would be sent to the login page
		// again and again.
		prompts = slices.DeleteFunc(prompts, func(s string) bool { return s == "login" || s == "select_account" })
		if oreq.hint != nil && oreq.hint.Subject != si.User.ID {
			// Core §3.1.2.1: when the person the hint names is not the one
			// signed in, even by this request, the OP SHOULD answer an
			// error: the client asked about one person and would get
			// another's code.
			p.authorizeError(w, r, ar, fosite.ErrLoginRequired.WithHint("The user who signed in is not the one the id_token_hint names."))
			return
		}
	}
	if p.mustSignIn(si, oreq, prompts) {
		if slices.Contains(prompts, "none") {
			p.authorizeError(w, r, ar, fosite.ErrLoginRequired)
			return
		}
		p.ui.SendToLogin(w, r, p.returnTo(r, client, ar, prompts, oreq, justSignedIn, pushed))
		return
	}

	if (client.RequireMFA || oreq.wantMFA) && !si.MultiFactor() {
		// Step-up: the session has no second factor and this client (or
		// this request's acr_values) needs one. No page with prompt=none.
		if slices.Contains(prompts, "none") {
			p.authorizeError(w, r, ar, fosite.ErrInteractionRequired.WithHint("A second factor is required."))
			return
		}
		p.ui.SendToSecondFactor(w, r, p.returnTo(r, client, ar, prompts, oreq, justSignedIn, pushed))
		return
	}
	if form.Get(login.ConsentDeniedParam) == "denied" {
		p.authorizeError(w, r, ar, fosite.ErrAccessDenied.WithHint("The user denied the request."))
		return
	}
	interaction, err := p.needsInteraction(ctx, client, si, ar, prompts)
	if err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	if interaction != nil {
		if slices.Contains(prompts, "none") {
			p.authorizeError(w, r, ar, interaction)
			return
		}
		p.ui.SendToConsent(w, r, p.returnTo(r, client, ar, prompts, oreq, justSignedIn, pushed))
		return
	}
	if si.Did == login.Approved {
		// Remembered per user and client, for every scope approved so far.
		err := p.store.AddConsent(ctx, si.User.ID, client.ID, ar.GetRequestedScopes())
		if errors.Is(err, store.ErrMissingReference) {
			// The client was deleted while its consent page was open: an
			// error page, never a redirect to a client that is gone.
			p.authorizeError(w, r, nil, fosite.ErrInvalidClient.WithWrap(err))
			return
		}
		if err != nil {
			p.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
			return
		}
	}

	sess := grantsession.New(si.User.ID)
	sess.Username = si.User.Username
	sess.AuthTime = si.AuthTime
	sess.LoginSessionID = si.LoginSessionID
	sess.SID = si.SID
	sess.Nonce = form.Get("nonce")
	sess.CodeJKT = oreq.dpopJKT
	// How the person signed in (RFC 8176), and the level it reaches.
	sess.AMR = signInAMR(si)
	sess.ACR = acrFor(sess.AMR)
	sess.GrantedAt = p.now().UTC()
	p.grantRequested(ar)
	resp, err := p.fosite.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	// RFC 9207: the client can tell which server answered.
	resp.AddParameter("iss", p.cfg.Issuer)
	if ar.GetState() == "" {
		// fosite writes state= even when the request had none; RFC 6749
		// §4.1.2 returns state only when the client sent one, and
		// openid-client refuses a response with a state it did not send.
		resp.GetParameters().Del("state")
	}
	p.metrics.TokensIssued.WithLabelValues("authorization_code", "code").Inc()
	p.fosite.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// checkAuthorizeRequest runs every check of an authorization request that
// needs no person: the client, the redirect URI, response_type, scopes,
// PKCE, state, and the OpenID Connect parameters. The authorization
// endpoint runs it on every visit, and the pushed authorization request
// endpoint on what is pushed (RFC 9126 §2.1: "the same as an authorization
// request"), so the two can never disagree. r.Form (and r.URL's query,
// which checkRedirectURI reads) holds the request; the unserved
// parameters and scopes are taken out of r.Form on the way.
//
// On error, ar is nil when the error must not be sent to the redirect URI.
func (p *Provider) checkAuthorizeRequest(ctx context.Context, r *http.Request) (fosite.AuthorizeRequester, *oidcRequest, error) {
	if err := p.checkRedirectURI(ctx, r); err != nil {
		// ar is nil: an error page, never a redirect to that URI.
		return nil, nil, err
	}
	if r.Form.Get("redirect_uri") == "" && slices.Contains(strings.Fields(r.Form.Get("scope")), ScopeOpenID) {
		// OpenID Connect requires it (Core §3.1.2.1), though OAuth 2.0 lets
		// a client with one registered URI leave it out: an error page, as
		// for a URI that does not match.
		return nil, nil, fosite.ErrInvalidRequest.WithHint("An OpenID Connect request must include redirect_uri.")
	}
	refused := takeUnserved(r.Form)
	if r.Form.Get("response_mode") == "query" {
		// The code flow's default, named (OAuth 2.0 Multiple Response
		// Types §2.1); fosite accepts a named mode only from a client that
		// registered modes, which no client does here.
		r.Form.Del("response_mode")
	}
	// Before fosite checks the scopes against the client's: a client that
	// did not register address or phone is not refused for them.
	dropUnservedScopes(r.Form)
	ar, err := p.fosite.NewAuthorizeRequest(ctx, r)
	if errors.Is(err, fosite.ErrInvalidState) && ar != nil && ar.GetState() == "" {
		// fosite's last check, so everything else passed. With PKCE the
		// state is not the CSRF defence (RFC 9700 §2.1), and openid-client
		// and Auth.js send none; without PKCE it is required, below.
		err = nil
	}
	if err != nil {
		return ar, nil, err
	}
	if err := checkPKCE(ar, p.cfg.PKCEForAll()); err != nil {
		return ar, nil, err
	}
	// RFC 9700 §2.1: PKCE protects the redirect against CSRF; without it
	// (a confidential client that sent no challenge) only state does.
	if ar.GetState() == "" && ar.GetRequestForm().Get("code_challenge") == "" {
		return ar, nil, fosite.ErrInvalidState.WithHint("The 'state' parameter is required when PKCE is not used.")
	}
	oreq, err := p.parseOIDCRequest(ar, refused)
	if err != nil {
		return ar, nil, err
	}
	// RFC 9449 §10: the code will be redeemable only with a proof by this
	// key. Read from the final form, pushed parameters included.
	form := ar.GetRequestForm()
	oreq.dpopJKT = form.Get("dpop_jkt")
	if len(form["dpop_jkt"]) > 1 || (oreq.dpopJKT != "" && !dpop.ValidThumbprint(oreq.dpopJKT)) {
		return ar, nil, fosite.ErrInvalidRequest.WithHint("The 'dpop_jkt' parameter must be one SHA-256 JWK thumbprint (43 base64url characters).")
	}
	return ar, oreq, nil
}

// mustSignIn decides whether the person must type a password before this
// request can go on: nobody is signed in; prompt=login or select_account
// (one account per browser, so choosing an account is signing in, perhaps
// as someone else); a sign-in older than max_age; or an id_token_hint that
// names someone else than the signed-in person (they may switch). A
// sign-in made for this very request satisfies all of these; a hint it
// did not satisfy was answered by the caller.
func (p *Provider) mustSignIn(si *login.SignIn, o *oidcRequest, prompts []string) bool {
	switch {
	case si == nil, slices.Contains(prompts, "login"), slices.Contains(prompts, "select_account"):
		return true
	case si.Did == login.SignedIn:
		return false
	case o.loginTooOld(si.AuthTime, p.now()):
		return true
	}
	return o.hint != nil && o.hint.Subject != si.User.ID
}

// maxAuthorizeURL bounds the GET URL a POSTed authorization request
// becomes: it must pass the public listener's 64 KiB header limit with the
// browser's cookies beside it.
const maxAuthorizeURL = 16 << 10

// authorizePost serves POST /oauth2/authorize (Core §3.1.2.1: the
// parameters form-encoded in the body) by sending the browser on to the
// same request as a GET, 303 See Other. Two reasons. The login session
// cookie is SameSite=Lax, which a browser does not send on a cross-site
// POST but does send on the GET navigation that follows it, so single
// sign-on and prompt=none work the same for both methods. And the login
// and consent pages resume a request by its URL, which the interaction
// proof signs: one form of the request, one set of checks.
//
// The body is read as strictly as the token endpoint's: only
// application/x-www-form-urlencoded, nothing in the query string (the two
// would merge, and it would be unclear which to believe). Repeated
// parameters are refused by the GET that follows, like any other.
func (p *Provider) authorizePost(w http.ResponseWriter, r *http.Request) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != formContentType {
		p.authorizeError(w, r, nil, fosite.ErrInvalidRequest.WithHintf("A POSTed authorization request must be sent as '%s'.", formContentType))
		return
	}
	if r.URL.RawQuery != "" {
		p.authorizeError(w, r, nil, fosite.ErrInvalidRequest.WithHint("A POSTed authorization request carries its parameters in the body only."))
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		p.authorizeError(w, r, nil, fosite.ErrInvalidRequest.WithHint("The request body could not be read.").WithWrap(err))
		return
	}
	params, err := url.ParseQuery(string(body))
	if err != nil {
		p.authorizeError(w, r, nil, fosite.ErrInvalidRequest.WithHint("The request body is not a valid form.").WithWrap(err))
		return
	}
	target := PathAuthorize + "?" + params.Encode()
	if len(target) > maxAuthorizeURL {
		p.authorizeError(w, r, nil, fosite.ErrInvalidRequest.WithHint("The authorization request is too large."))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// returnTo is the authorization request to resume after a page, and what
// the page shows of it. The request goes back without the answers of
// earlier pages, and with prompts as they stand now: without a "login"
// that the person has just satisfied, and without the max_age that sign-in
// satisfied (signedIn), so that a consent page left open longer than
// max_age does not send the person to sign in again. A pushed request goes
// back with the server's seal that it was pushed (pushedParam).
func (p *Provider) returnTo(r *http.Request, client *store.Client, ar fosite.AuthorizeRequester, prompts []string, o *oidcRequest, signedIn, pushed bool) login.ReturnTo {
	q := r.URL.Query()
	q.Del(login.ConsentDeniedParam)
	q.Del(login.InteractionParam)
	q.Del(pushedParam)
	if q.Has("prompt") {
		if len(prompts) == 0 {
			q.Del("prompt")
		} else {
			q.Set("prompt", strings.Join(prompts, " "))
		}
	}
	if signedIn {
		q.Del("max_age")
	}
	name := client.Name
	if name == "" {
		name = client.ID
	}
	if pushed {
		p.sealPushed(q)
	}
	return login.ReturnTo{URL: PathAuthorize + "?" + q.Encode(), ClientName: name, Scopes: ar.GetRequestedScopes(), LoginHint: o.loginHint,
		UILocales: ar.GetRequestForm().Get("ui_locales"), ClientLogoURI: client.LogoURI, ClientURI: client.ClientURI}
}

// needsInteraction decides whether the user must see the consent page
// before a code is issued, and returns the error prompt=none answers if so
// (nil when the code may be issued at once). si.Did is what the person
// just did for this very request.
//   - Consent just given on the page: issue.
//   - A public native app, trusted or not, needs the user to have signed in
//     or approved for this request: anyone on the device can use its
//     client_id and loopback port or private-use scheme, so remembered
//     consent or a remembered login says nothing about who asks (RFC 8252
//     §8.6).
//   - A trusted client otherwise never asks.
//   - Any other client asks without a stored consent covering every
//     requested scope, or with prompt=consent. No stored consent at all is
//     not the same as consent to no scope: a request without scope asks too.
func (p *Provider) needsInteraction(ctx context.Context, client *store.Client, si *login.SignIn, ar fosite.AuthorizeRequester, prompts []string) (*fosite.RFC6749Error, error) {
	if si.Did == login.Approved {
		return nil, nil
	}
	if client.PublicNative() && si.Did != login.SignedIn {
		return fosite.ErrInteractionRequired.WithHint("A native app's authorization needs the user's interaction every time (RFC 8252 §8.6)."), nil
	}
	if client.Trusted {
		return nil, nil
	}
	if slices.Contains(prompts, "consent") {
		return fosite.ErrConsentRequired, nil
	}
	consent, err := p.store.FindConsent(ctx, si.User.ID, client.ID)
	if errors.Is(err, store.ErrNotFound) {
		return fosite.ErrConsentRequired, nil
	}
	if err != nil {
		return nil, fosite.ErrServerError.WithWrap(err)
	}
	if slices.ContainsFunc(ar.GetRequestedScopes(), func(s string) bool { return !slices.Contains(consent.Scopes, s) }) {
		return fosite.ErrConsentRequired, nil
	}
	return nil, nil
}

// checkPKCE enforces RFC 7636 as RFC 9700 §2.1.1 asks: S256 only, and
// required of public clients, or of every client when forAll (OAuth 2.1
// §4.1.1). fosite checks this only when the code is issued, after the login
// page; here it fails before.
func checkPKCE(ar fosite.AuthorizeRequester, forAll bool) error {
	form := ar.GetRequestForm()
	challenge, method := form.Get("code_challenge"), form.Get("code_challenge_method")
	switch {
	case challenge == "" && (forAll || ar.GetClient().IsPublic()):
		return fosite.ErrInvalidRequest.WithHint("Clients must include a code_challenge when performing the authorize code flow, but it is missing.")
	case challenge == "" && method != "":
		return fosite.ErrInvalidRequest.WithHint("code_challenge_method without code_challenge.")
	case challenge != "" && method != "S256":
		return fosite.ErrInvalidRequest.WithHint("Only the S256 code_challenge_method is supported.")
	case challenge != "" && (len(challenge) < 43 || len(challenge) > 128):
		return fosite.ErrInvalidRequest.WithHint("The code_challenge must be 43 to 128 characters (RFC 7636 §4.2).")
	}
	return nil
}

// authorizeError answers a failed authorization request. With an unknown
// client or an unregistered redirect URI it shows an error page and never
// redirects (RFC 6749 §4.1.2.1); otherwise it redirects to the client with
// error, state and iss.
func (p *Provider) authorizeError(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, err error) {
	rfc := fosite.ErrorToRFC6749Error(err)
	p.metrics.OAuthErrors.WithLabelValues(PathAuthorize, rfc.ErrorField).Inc()
	p.logError(r, PathAuthorize, rfc)
	if ar == nil || ar.GetClient() == nil || !ar.IsRedirectURIValid() || ar.GetRedirectURI() == nil {
		status := http.StatusBadRequest
		if rfc.CodeField >= 500 {
			status = http.StatusInternalServerError
		}
		msg, args := describeAuthorizeError(rfc)
		p.ui.ErrorPage(w, r, status, "error.authorize.title", msg, args...)
		return
	}
	target := *ar.GetRedirectURI()
	q := target.Query()
	q.Set("error", rfc.ErrorField)
	if d := rfc.GetDescription(); d != "" {
		q.Set("error_description", d)
	}
	if s := ar.GetState(); s != "" {
		q.Set("state", s)
	}
	q.Set("iss", p.cfg.Issuer)
	target.RawQuery = q.Encode()
	target.Fragment = ""
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target.String(), http.StatusSeeOther)
}

// describeAuthorizeError is the message key of the error page, and its
// arguments.
func describeAuthorizeError(rfc *fosite.RFC6749Error) (string, []any) {
	switch rfc.ErrorField {
	case fosite.ErrInvalidClient.ErrorField:
		return "error.authorize.invalid_client", nil
	case fosite.ErrInvalidRequest.ErrorField:
		return "error.authorize.invalid_request", nil
	}
	return "error.authorize.other", []any{rfc.ErrorField}
}
