package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/ory/fosite"
)

// PathPAR is the pushed authorization request endpoint (RFC 9126).
const PathPAR = "/oauth2/par"

// RequestURIPrefix starts every request_uri the endpoint hands out (RFC
// 9126 §2.2).
const RequestURIPrefix = "urn:ietf:params:oauth:request_uri:"

// PushedRequestTTL is how long a request_uri can be redeemed: long enough
// for the client to send the browser to the authorization endpoint, short
// enough that a leaked one is worth little (RFC 9126 §2.2 suggests 5 to
// 600 seconds; the contract says 60).
const PushedRequestTTL = 60 * time.Second

// PurposePushedResume derives the key that seals a resumed pushed request
// (pushedParam).
const PurposePushedResume = "latchkey/v1/pushed-resume"

// pushedParam carries, on an authorization request the endpoint sends the
// browser back to after the login or consent page, the server's seal that
// it resumes a pushed request: "EXPIRY.MAC", the MAC over every other
// parameter. The request_uri is spent on the first visit (single use), so
// the resumed request carries the pushed parameters themselves; the seal
// is what tells it from a browser's plain request with the same
// parameters, which require_pushed_authorization_requests must refuse.
// Only the authorization endpoint makes one, from a request that was
// pushed or sealed itself; the login pages sign whatever return_to they
// are given, so their interaction proof cannot stand for it.
const pushedParam = "pushed"

// pushedResumeTTL bounds how long a sealed request may be resumed: the
// time a person may leave the login or consent page open.
const pushedResumeTTL = 30 * time.Minute

// credentialParams are client authentication parameters: never stored with
// a pushed request, never read as part of it.
var credentialParams = []string{"client_secret", "client_assertion", "client_assertion_type"}

// PushedStore is what pushed authorization requests need of the store.
type PushedStore interface {
	CreatePushedRequest(ctx context.Context, pr *store.PushedRequest) error
	// ConsumePushedRequest deletes and returns the live request id of
	// clientID, once across every instance; otherwise store.ErrNotFound.
	ConsumePushedRequest(ctx context.Context, id, clientID string) (*store.PushedRequest, error)
}

var _ PushedStore = (*store.Store)(nil)

type parAnswer struct {
	RequestURI string `json:"request_uri"`
	ExpiresIn  int    `json:"expires_in"`
}

// PushedAuthorize serves POST /oauth2/par (RFC 9126 §2): the client
// authenticates as at the token endpoint, its authorization request gets
// the very checks of the authorization endpoint, and it is stored for the
// browser to redeem once by its request_uri. Every error is RFC 6749 §5.2
// JSON (§2.3), never a redirect.
func (p *Provider) PushedAuthorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := parsePostForm(r, nil); err != nil {
		p.writeError(w, r, PathPAR, nil, err)
		return
	}
	// SEAM (RFC 9449 §10.1, DPoP): a DPoP header here binds the future
	// code to the proof's key, as dpop_jkt does. The proof is checked by
	// the dpop package, which this branch does not have: when merged, check
	// the proof here (htm POST, htu the PAR endpoint) and, when it is
	// valid, set form's dpop_jkt to its thumbprint (refusing a dpop_jkt
	// that differs) before the request is stored. Until then dpop_jkt
	// travels as a pushed parameter like any other.
	client, err := p.fosite.AuthenticateClient(ctx, r, r.PostForm)
	if err != nil {
		p.writeError(w, r, PathPAR, nil, err)
		return
	}
	form := url.Values{}
	for k, v := range r.PostForm {
		form[k] = append([]string(nil), v...)
	}
	for _, k := range credentialParams {
		form.Del(k)
	}
	switch {
	case form.Has("request_uri"):
		// RFC 9126 §2.1: a pushed request cannot point at another.
		p.writeError(w, r, PathPAR, nil, fosite.ErrInvalidRequest.WithHint("A pushed authorization request must not contain request_uri."))
		return
	case form.Has("request"):
		// Request objects (RFC 9101) are not supported, pushed or not.
		p.writeError(w, r, PathPAR, nil, fosite.ErrInvalidRequest.WithHint("The 'request' parameter (a request object) is not supported."))
		return
	}
	switch id := form.Get("client_id"); {
	case id == "":
		form.Set("client_id", client.GetID())
	case id != client.GetID():
		// RFC 9126 §2.1: the request is the authenticated client's only.
		p.writeError(w, r, PathPAR, nil, fosite.ErrInvalidRequest.WithHint("The client_id does not match the authenticated client."))
		return
	}
	encoded := form.Encode()
	if len(PathAuthorize)+1+len(encoded) > maxAuthorizeURL {
		// The request is resumed after the login page by its URL.
		p.writeError(w, r, PathPAR, nil, fosite.ErrInvalidRequest.WithHint("The authorization request is too large."))
		return
	}
	if _, _, err := p.checkAuthorizeRequest(ctx, authorizeRequestOf(r, form)); err != nil {
		p.writeError(w, r, PathPAR, nil, err)
		return
	}
	raw, err := secrets.RandomToken(32)
	if err != nil {
		p.writeError(w, r, PathPAR, nil, fosite.ErrServerError.WithWrap(err))
		return
	}
	requestURI := RequestURIPrefix + raw
	err = p.pushed.CreatePushedRequest(ctx, &store.PushedRequest{
		ID: secrets.SignatureKey(requestURI), ClientID: client.GetID(), Form: encoded,
		ExpiresAt: p.now().Add(PushedRequestTTL), CreatedAt: p.now(),
	})
	if err != nil {
		p.writeError(w, r, PathPAR, nil, fmt.Errorf("push authorization request: %w", err))
		return
	}
	writeJSON(w, http.StatusCreated, parAnswer{RequestURI: requestURI, ExpiresIn: int(PushedRequestTTL / time.Second)})
}

// authorizeRequestOf is the authorization request form would be as a GET
// to the authorization endpoint, for checkAuthorizeRequest.
func authorizeRequestOf(r *http.Request, form url.Values) *http.Request {
	ar := r.Clone(r.Context())
	ar.Method = http.MethodGet
	ar.URL = &url.URL{Path: PathAuthorize, RawQuery: form.Encode()}
	ar.Header = http.Header{}
	ar.Body = http.NoBody
	ar.Form, ar.PostForm = form, url.Values{}
	ar.MultipartForm = &multipart.Form{Value: map[string][]string{}, File: map[string][]*multipart.FileHeader{}}
	return ar
}

// redeemPushed turns an authorization request that carries a request_uri
// into the pushed request it stands for, spending the request_uri. Only
// client_id and request_uri are read from the URL; every other parameter
// comes from the pushed request (RFC 9126 §4). On success r's URL and
// form hold the pushed request; otherwise the answer is written and it
// reports false.
func (p *Provider) redeemPushed(w http.ResponseWriter, r *http.Request) bool {
	ctx := r.Context()
	clientID, requestURI := r.Form.Get("client_id"), r.Form.Get("request_uri")
	if clientID == "" {
		p.authorizeError(w, r, nil, fosite.ErrInvalidRequest.WithHint("A request with request_uri must include client_id (RFC 9126 §4)."))
		return false
	}
	client, err := p.store.FindClient(ctx, clientID)
	if errors.Is(err, store.ErrNotFound) {
		p.authorizeError(w, r, nil, fosite.ErrInvalidClient.WithHint("The client is not registered."))
		return false
	}
	if err != nil {
		p.authorizeError(w, r, nil, fosite.ErrServerError.WithWrap(err))
		return false
	}
	pr, err := p.pushed.ConsumePushedRequest(ctx, secrets.SignatureKey(requestURI), client.ID)
	if errors.Is(err, store.ErrNotFound) {
		p.requestURIError(w, r, client)
		return false
	}
	if err != nil {
		p.authorizeError(w, r, nil, fosite.ErrServerError.WithWrap(err))
		return false
	}
	form, err := url.ParseQuery(pr.Form)
	if err != nil || form.Get("client_id") != client.ID {
		p.authorizeError(w, r, nil, fosite.ErrServerError.WithHint("A stored pushed request is damaged."))
		return false
	}
	r.URL.RawQuery = form.Encode()
	r.Form = form
	return true
}

// requestURIError answers a request_uri that is unknown, expired, spent or
// another client's. The URL names no redirect URI and no state (they were
// pushed), so the client is told by redirect only where there is no doubt
// where to: a client with exactly one registered redirect URI that is not
// a loopback one (whose port the request would have named). Any other
// client gets the error page (400).
func (p *Provider) requestURIError(w http.ResponseWriter, r *http.Request, client *store.Client) {
	rfc := fosite.ErrInvalidRequestURI.WithHint("The request_uri is unknown, expired, already used, or was pushed by another client.")
	if len(client.RedirectURIs) != 1 || client.PublicNative() {
		p.authorizeError(w, r, nil, rfc)
		return
	}
	target, err := url.Parse(client.RedirectURIs[0])
	if err != nil {
		p.authorizeError(w, r, nil, rfc)
		return
	}
	p.metrics.OAuthErrors.WithLabelValues(PathAuthorize, rfc.ErrorField).Inc()
	p.logError(r, PathAuthorize, rfc)
	q := target.Query()
	q.Set("error", rfc.ErrorField)
	q.Set("error_description", rfc.GetDescription())
	q.Set("iss", p.cfg.Issuer)
	target.RawQuery = q.Encode()
	target.Fragment = ""
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target.String(), http.StatusSeeOther)
}

// sealPushed adds to q, the query of a pushed request the endpoint sends
// the browser back to, the seal that says so (pushedParam).
func (p *Provider) sealPushed(q url.Values) {
	q.Del(pushedParam)
	exp := strconv.FormatInt(p.now().Add(pushedResumeTTL).Unix(), 10)
	q.Set(pushedParam, exp+"."+pushedMAC(p.pushedKeys[0], exp, q))
}

// resumedPushed reports whether r resumes a pushed request: it carries a
// live seal over exactly its parameters. The seal is taken out of r.Form,
// so fosite never sees it; r.URL keeps it for the interaction proof,
// which covers it.
func (p *Provider) resumedPushed(r *http.Request) bool {
	seal := r.Form.Get(pushedParam)
	if seal == "" {
		return false
	}
	r.Form.Del(pushedParam)
	exp, mac, ok := strings.Cut(seal, ".")
	n, err := strconv.ParseInt(exp, 10, 64)
	if !ok || err != nil || !p.now().Before(time.Unix(n, 0)) {
		return false
	}
	q := r.URL.Query()
	valid := false
	for _, k := range p.pushedKeys {
		valid = hmac.Equal([]byte(mac), []byte(pushedMAC(k, exp, q))) || valid
	}
	return valid
}

// pushedMAC is the MAC of a seal: over its expiry and every parameter but
// the seal and what the pages add (their answers are proven apart).
func pushedMAC(key []byte, exp string, q url.Values) string {
	clean := url.Values{}
	for k, v := range q {
		if k != pushedParam && k != login.InteractionParam && k != login.ConsentDeniedParam {
			clean[k] = v
		}
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(exp))
	m.Write([]byte{0})
	m.Write([]byte(clean.Encode()))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
