package oauth

import (
	"errors"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"

	"github.com/ory/fosite"
)

// formContentType is the only body the token, revocation and introspection
// endpoints take (RFC 6749 §3.2, RFC 7009 §2.1, RFC 7662 §2.1).
const formContentType = "application/x-www-form-urlencoded"

// tokenMultiValued are the token endpoint parameters that may repeat:
// RFC 8707 §2 resource indicators, and the audience list fosite reads.
var tokenMultiValued = map[string]bool{"resource": true, "audience": true}

// errRepeated is wrapped by the repeated-parameter errors so callers can
// tell them from other bad requests.
var errRepeated = errors.New("repeated parameter")

// parsePostForm reads the body of a POST to a form endpoint strictly, so
// that what Latchkey checks is exactly what fosite later reads:
//
//   - the body must be application/x-www-form-urlencoded: fosite also parses
//     multipart bodies, whose values this check would otherwise never see;
//   - nothing may ride in the query string: RFC 6749 §3.2 puts the
//     parameters in the body, and a value in the URL (a client_secret above
//     all) ends up in logs; and Go's r.Form would merge it with the body's;
//   - no parameter may appear twice (RFC 6749 §3.2), except those in multi.
//
// On success r.PostForm and r.Form hold the body's parameters, and fosite's
// own multipart parsing is switched off.
func parsePostForm(r *http.Request, multi map[string]bool) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != formContentType {
		return fosite.ErrInvalidRequest.WithHintf("The request body must be sent as '%s'.", formContentType)
	}
	if r.URL.RawQuery != "" {
		return fosite.ErrInvalidRequest.WithHint("Parameters must be sent in the request body, not in the URL query string.")
	}
	if err := r.ParseForm(); err != nil {
		return fosite.ErrInvalidRequest.WithHint("The request body is not a valid form.").WithWrap(err)
	}
	if err := checkRepeated(r.PostForm, multi); err != nil {
		return err
	}
	// An empty multipart form makes r.ParseMultipartForm (which fosite
	// calls) a no-op, so nothing else is ever read into the form.
	r.MultipartForm = &multipart.Form{Value: map[string][]string{}, File: map[string][]*multipart.FileHeader{}}
	return nil
}

// checkRepeated refuses a parameter given more than once (RFC 6749 §3.1,
// §3.2): fosite would silently use the first value, while another reader
// (a proxy, a log, a policy check) may use another.
func checkRepeated(form url.Values, multi map[string]bool) error {
	if name := repeated(form, multi); name != "" {
		return fosite.ErrInvalidRequest.WithHintf("The parameter '%s' must not be included more than once.", name).WithWrap(errRepeated)
	}
	return nil
}

// repeated names a parameter that appears more than once, or is empty.
// Empty values count: fosite's Get would read the first one.
func repeated(form url.Values, multi map[string]bool) string {
	for k, v := range form {
		if len(v) > 1 && !multi[k] {
			return k
		}
	}
	return ""
}

// checkAuthorizeParams refuses an authorization request with a repeated
// parameter (RFC 6749 §3.1) before fosite reads it, and reports whether
// the request may go on. A repeated client_id or redirect_uri means the
// redirect target cannot be trusted, so that answer is the error page; any
// other repeat is redirected to the client like other errors (§4.1.2.1).
//
// Only the query counts: a POSTed request reaches here as the GET it was
// redirected to (authorizePost), and a GET's body (even a multipart one,
// which fosite would parse) is ignored.
func (p *Provider) checkAuthorizeParams(w http.ResponseWriter, r *http.Request) bool {
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		p.authorizeError(w, r, nil, fosite.ErrInvalidRequest.WithHint("The query string is malformed.").WithWrap(err))
		return false
	}
	r.Form, r.PostForm = query, url.Values{}
	r.MultipartForm = &multipart.Form{Value: map[string][]string{}, File: map[string][]*multipart.FileHeader{}}
	name := repeated(query, nil)
	if name == "" {
		return true
	}
	dupErr := fosite.ErrInvalidRequest.WithHintf("The parameter '%s' must not be included more than once.", name).WithWrap(errRepeated)
	if name == "client_id" || name == "redirect_uri" {
		p.authorizeError(w, r, nil, dupErr)
		return false
	}
	// The error may be sent to the redirect URI only once it passed our
	// rules (checkRedirectURI, stricter than fosite's on loopback) and
	// fosite's check of the client and the URI.
	if err := p.checkRedirectURI(r.Context(), r); err != nil {
		p.authorizeError(w, r, nil, err)
		return false
	}
	// fosite must not act on a request object while it only finds out
	// where the error goes.
	_ = takeUnserved(query)
	ar, err := p.fosite.NewAuthorizeRequest(r.Context(), r)
	if err != nil && (ar == nil || ar.GetClient() == nil || !ar.IsRedirectURIValid()) {
		p.authorizeError(w, r, ar, err)
		return false
	}
	p.authorizeError(w, r, ar, dupErr)
	return false
}
