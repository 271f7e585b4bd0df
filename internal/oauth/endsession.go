package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/store"
)

// LogoutUI is what the end-session endpoint needs of the browser side: who
// is signed in, the confirmation page and its form, ending the sign-in, and
// the pages that say how it went. *login.Handler satisfies it.
type LogoutUI interface {
	CurrentSignIn(r *http.Request) (*login.SignIn, error)
	// ConfirmLogout asks the person to confirm; the form posts lr to
	// POST /logout (LogoutForm).
	ConfirmLogout(w http.ResponseWriter, r *http.Request, lr login.LogoutRequest)
	// ValidLogoutForm checks the confirmation form's CSRF token.
	ValidLogoutForm(r *http.Request) bool
	// EndSignIn ends the browser's login session (revoking its grants and
	// enqueuing its logout tokens) and returns who was signed in.
	EndSignIn(w http.ResponseWriter, r *http.Request) (*login.SignIn, error)
	SignedOut(w http.ResponseWriter, r *http.Request)
	ErrorPage(w http.ResponseWriter, r *http.Request, status int, title, message string, args ...any)
	Fail(w http.ResponseWriter, r *http.Request, err error)
}

var _ LogoutUI = (*login.Handler)(nil)

// Backchannel sends the logout tokens of an ended login session at once
// (*backchannel.Deliverer); the channel closes when they are sent or
// rescheduled.
type Backchannel interface {
	DeliverSession(ctx context.Context, sid string) <-chan struct{}
}

// DefaultLogoutWait is the longest the person's logout waits for the
// back-channel logout tokens of their session (issue 14: never more than a
// second); the sends go on in the background after it.
const DefaultLogoutWait = time.Second

// EndSession is the end-session endpoint (OpenID Connect RP-Initiated
// Logout 1.0) and the sign-out form it shares the ending with.
type EndSession struct {
	p  *Provider
	ui LogoutUI
	bc Backchannel
	// Wait bounds how long the browser waits for back-channel delivery.
	Wait time.Duration
}

// EndSession returns the end-session endpoint over the pages ui; bc (nil:
// none) sends the back-channel logout tokens.
func (p *Provider) EndSession(ui LogoutUI, bc Backchannel) *EndSession {
	return &EndSession{p: p, ui: ui, bc: bc, Wait: DefaultLogoutWait}
}

// Serve is GET and POST /oauth2/logout (RP-Initiated Logout 1.0 §2-3):
// id_token_hint, client_id, post_logout_redirect_uri, state; logout_hint
// and ui_locales are accepted and not used. Every check runs before
// anything ends, and a request that fails one ends nothing and is answered
// with an error page, never a redirect.
//
// A valid hint for the browser's current session (its sid, or its subject
// when it carries no sid) proves that the relying party is the session's:
// the session ends at once, as oidc-client-ts's signoutRedirect expects.
// Without a hint, or with a stale one (another session, another person),
// the person confirms first (§2: the OP SHOULD ask). Nobody signed in:
// there is nothing to end, and the browser is sent back at once.
func (e *EndSession) Serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		e.ui.ErrorPage(w, r, http.StatusBadRequest, "error.invalid_request.title", "error.logout_unreadable")
		return
	}
	var hint *idTokenHint
	if raw := r.Form.Get("id_token_hint"); raw != "" {
		h, err := e.p.parseIDTokenHint(raw)
		if err != nil {
			e.ui.ErrorPage(w, r, http.StatusBadRequest, "error.invalid_request.title", "error.logout_foreign_token")
			return
		}
		hint = h
	}
	clientID, target, state := r.Form.Get("client_id"), r.Form.Get("post_logout_redirect_uri"), r.Form.Get("state")
	if hint != nil {
		switch {
		case clientID != "" && !slices.Contains(hint.Audience, clientID):
			// §2: the client_id must be the hint's audience.
			e.ui.ErrorPage(w, r, http.StatusBadRequest, "error.invalid_request.title", "error.logout_wrong_client")
			return
		case clientID == "" && len(hint.Audience) == 1:
			clientID = hint.Audience[0]
		}
	}
	redirect, ok := e.checkTarget(w, r, clientID, target)
	if !ok {
		return
	}
	si, err := e.ui.CurrentSignIn(r)
	if err != nil {
		e.ui.Fail(w, r, fmt.Errorf("end session: find login session: %w", err))
		return
	}
	if si != nil && !hint.matches(si) {
		e.ui.ConfirmLogout(w, r, login.LogoutRequest{ClientID: clientID, PostLogoutRedirectURI: target, State: state})
		return
	}
	e.end(w, r, redirect, state)
}

// LogoutForm is POST /logout: the confirmation form (and the sign-out form
// of the contract), with csrf_token, client_id, post_logout_redirect_uri
// and state. The address is checked again: the form's hidden fields are
// the browser's to change.
func (e *EndSession) LogoutForm(w http.ResponseWriter, r *http.Request) {
	if !e.ui.ValidLogoutForm(r) {
		e.ui.ErrorPage(w, r, http.StatusForbidden, "error.form_expired.title", "error.logout_expired")
		return
	}
	redirect, ok := e.checkTarget(w, r, r.PostFormValue("client_id"), r.PostFormValue("post_logout_redirect_uri"))
	if !ok {
		return
	}
	e.end(w, r, redirect, r.PostFormValue("state"))
}

// matches reports whether the hint names the signed-in session: its sid
// when it carries one, else its subject. A nil hint matches nothing.
func (h *idTokenHint) matches(si *login.SignIn) bool {
	if h == nil || h.Subject != si.User.ID {
		return false
	}
	return h.SID == "" || h.SID == si.SID
}

// checkTarget resolves post_logout_redirect_uri: nil when there is none,
// the parsed URL when clientID registered it exactly, and an error page
// (ok false) otherwise. Only an unknown client or an unregistered address
// is the caller's fault (400); a store that fails is ours (500 or 503).
func (e *EndSession) checkTarget(w http.ResponseWriter, r *http.Request, clientID, target string) (*url.URL, bool) {
	if target == "" {
		return nil, true
	}
	const notRegistered = "error.logout_not_registered"
	if clientID == "" {
		e.ui.ErrorPage(w, r, http.StatusBadRequest, "error.invalid_request.title", "error.logout_needs_client")
		return nil, false
	}
	c, err := e.p.store.FindClient(r.Context(), clientID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		e.ui.ErrorPage(w, r, http.StatusBadRequest, "error.invalid_request.title", notRegistered)
		return nil, false
	case err != nil:
		e.ui.Fail(w, r, fmt.Errorf("end session: find client: %w", err))
		return nil, false
	case !slices.Contains(postLogoutURIs(c), target):
		e.ui.ErrorPage(w, r, http.StatusBadRequest, "error.invalid_request.title", notRegistered)
		return nil, false
	}
	u, err := url.Parse(target)
	if err != nil {
		e.ui.ErrorPage(w, r, http.StatusBadRequest, "error.invalid_request.title", "error.logout_bad_address")
		return nil, false
	}
	return u, true
}

// postLogoutURIs are where logout may send a client's browser, matched
// exactly: its post_logout_redirect_uris, or its redirect_uris when it
// registered none (docs/flows.md).
func postLogoutURIs(c *store.Client) []string {
	if len(c.PostLogoutRedirectURIs) > 0 {
		return c.PostLogoutRedirectURIs
	}
	return c.RedirectURIs
}

// end ends the browser's sign-in, gives the back-channel logout tokens a
// bounded time to go out, and sends the browser back with state, or shows
// the signed-out page.
func (e *EndSession) end(w http.ResponseWriter, r *http.Request, redirect *url.URL, state string) {
	ended, err := e.ui.EndSignIn(w, r)
	if err != nil {
		e.ui.Fail(w, r, fmt.Errorf("end session: %w", err))
		return
	}
	if ended != nil && e.bc != nil {
		// The session's tokens, sent before the redirect when the
		// relying parties answer in time; a slow one does not hold the
		// person longer than Wait, and its delivery goes on. The wait is
		// a latency bound, so it reads the wall clock.
		t := time.NewTimer(e.Wait)
		select {
		case <-e.bc.DeliverSession(r.Context(), ended.SID):
		case <-t.C:
		}
		t.Stop()
	}
	if redirect == nil {
		e.ui.SignedOut(w, r)
		return
	}
	if state != "" {
		q := redirect.Query()
		q.Set("state", state)
		redirect.RawQuery = q.Encode()
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, redirect.String(), http.StatusSeeOther)
}
