// Package login is the browser side of Latchkey: the login, consent and
// logout pages, the login-session cookie, CSRF protection and brute-force
// throttling. It knows nothing of OAuth: the authorization endpoint
// (internal/oauth) uses it through one small interface, oauth.LoginUI: it
// asks who is signed in (CurrentSignIn), sends the browser here with a
// ReturnTo that says what to show, and these pages send the browser back
// with a signed proof of what the person did (interaction.go). Clients,
// scopes and prompt values are the endpoint's business.
package login

import (
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
)

//go:embed templates
var templateFS embed.FS

// PurposeCSRF derives the key that binds CSRF tokens to their cookie.
const PurposeCSRF = "latchkey/v1/csrf"

// Config is what the pages need to know.
type Config struct {
	// AuthorizePath is the authorization endpoint's path
	// (oauth.PathAuthorize), the only place return_to may lead: a login or
	// consent page is never an open redirect.
	AuthorizePath string
	// DevicePath is the device verification page's path (RFC 8628
	// verification_uri), the other place return_to may lead.
	DevicePath string
	// Secure sets the Secure flag and the __Host- prefix on cookies; it is
	// true when the issuer is https.
	Secure bool
	// SessionIdleTTL ends a login session not used for this long;
	// SessionTTL ends it this long after sign-in, used or not.
	SessionIdleTTL time.Duration
	SessionTTL     time.Duration
	// RevokeFor is how long a revoked grant is remembered
	// (config.Config.RevocationWindow).
	RevokeFor     time.Duration
	SystemSecrets secrets.SystemSecrets
	Throttle      ThrottlePolicy
	// UserCodes throttles wrong user codes on the device page; the zero
	// value is DefaultUserCodePolicy.
	UserCodes UserCodePolicy
	// Passwords bounds the argon2id work of sign-ins; the zero value is
	// DefaultPasswordLimits.
	Passwords PasswordLimits
	// TrustedProxies may set X-Forwarded-For (LATCHKEY_TRUSTED_PROXIES).
	TrustedProxies []netip.Prefix
	// VerifyPassword is secrets.VerifyPassword unless a test replaces it.
	VerifyPassword func(hash, password string) (bool, error)
	// PasswordReset offers "Forgot password?" on the login page; NewAccount
	// sets it when mail can be sent (account.go).
	PasswordReset bool
	// Now is the clock of sign-in times, revocations and the proofs'
	// expiry; nil is time.Now. The store and the throttle read the
	// store's clock, which the server sets to the same one.
	Now func() time.Time
}

// Handler serves the pages.
type Handler struct {
	store Store
	cfg   Config
	// csrfKeys[0] signs CSRF tokens; all verify (secret rotation).
	csrfKeys [][]byte
	tmpl     map[string]*template.Template
	css      []byte
	auth     *Authenticator
	log      *slog.Logger

	// interactionKeys sign consent-page proofs as csrfKeys do CSRF tokens
	// (interaction.go).
	interactionKeys [][]byte
	// returnToKeys sign what the pages show of a ReturnTo (returnto.go).
	returnToKeys [][]byte
}

// New builds the handler.
func New(st Store, cfg Config, log *slog.Logger) (*Handler, error) {
	keys, err := cfg.SystemSecrets.DeriveKeys(PurposeCSRF)
	if err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.UserCodes == (UserCodePolicy{}) {
		cfg.UserCodes = DefaultUserCodePolicy
	}
	h := &Handler{store: st, cfg: cfg, csrfKeys: keys, tmpl: map[string]*template.Template{}, log: log,
		auth: NewAuthenticator(st, NewThrottle(st, cfg.Throttle), cfg.Passwords, cfg.VerifyPassword)}
	if h.interactionKeys, err = cfg.SystemSecrets.DeriveKeys(PurposeInteraction); err != nil {
		return nil, err
	}
	if h.returnToKeys, err = cfg.SystemSecrets.DeriveKeys(PurposeReturnTo); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(cfg.AuthorizePath, "/") {
		return nil, errors.New("login: Config.AuthorizePath must be the authorization endpoint's path")
	}
	for _, page := range []string{"login", "consent", "logout", "message", "device"} {
		t, err := template.ParseFS(templateFS, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, err
		}
		h.tmpl[page] = t
	}
	if h.css, err = templateFS.ReadFile("templates/latchkey.css"); err != nil {
		return nil, err
	}
	return h, nil
}

// Authenticator is the password check the pages use; the password grant
// shares it, so that the throttle and the argon2id bounds hold across both.
func (h *Handler) Authenticator() *Authenticator { return h.auth }

// Register adds the pages to mux. POST /logout, where the sign-out form
// goes, is the end-session endpoint's (oauth.Provider.LogoutForm): whether
// the browser may be sent back to an application is a protocol question.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /login", h.loginPage)
	mux.HandleFunc("POST /login", h.loginSubmit)
	mux.HandleFunc("GET /consent", h.consentPage)
	mux.HandleFunc("POST /consent", h.consentSubmit)
	mux.HandleFunc("GET /logout", h.logoutPage)
	mux.HandleFunc("GET /static/latchkey.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(h.css)
	})
}

func (h *Handler) cookieName(base string) string {
	if h.cfg.Secure {
		return "__Host-" + base
	}
	return base
}

func (h *Handler) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: h.cookieName(name), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: h.cfg.Secure, SameSite: http.SameSiteLaxMode,
	})
}

// SignIn is who is signed in on a browser, as the authorization endpoint
// asks for it (CurrentSignIn).
type SignIn struct {
	// LoginSessionID is the store.LoginSession's ID: grants issued under
	// it are revoked at logout.
	LoginSessionID string
	User           *store.User
	// SID is the login session's public identifier, the "sid" claim.
	SID string
	// AuthTime is when the person last typed their password.
	AuthTime time.Time
	// Did is what the person just did on a page for exactly this
	// authorization request, or NoInteraction (interaction.go).
	Did Interaction
}

// CurrentSignIn returns who is signed in on the browser of r, or nil, and
// what they just did for the authorization request r carries.
func (h *Handler) CurrentSignIn(r *http.Request) (*SignIn, error) {
	s, err := h.current(r)
	if err != nil || s == nil {
		return nil, err
	}
	s.Did = h.interacted(r, s)
	return s, nil
}

// current returns the request's live login session, or nil.
func (h *Handler) current(r *http.Request) (*SignIn, error) {
	c, err := r.Cookie(h.cookieName("latchkey_session"))
	if err != nil || c.Value == "" {
		return nil, nil
	}
	ls, err := h.store.TouchLoginSession(r.Context(), c.Value, h.cfg.SessionIdleTTL)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	u, err := h.store.FindUser(r.Context(), ls.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &SignIn{LoginSessionID: ls.ID, SID: ls.SID, User: u, AuthTime: ls.AuthTime}, nil
}

// page is the data every template gets.
type page struct {
	Title, Error, Message, CSRFToken, ReturnTo string
	// About is the signed ClientName and Scopes of ReturnTo, kept in the
	// login form so that a failed sign-in shows them again.
	About                                  string
	ClientName, Username                   string
	Scopes                                 []string
	ClientID, PostLogoutRedirectURI, State string
	// UserCode prefills the device page's code.
	UserCode string
	// ForgotPassword links the login page to /forgot-password.
	ForgotPassword bool
}

// securityHeaders: no script at all, no framing (clickjacking of the
// consent button), no referrer (the URL carries authorization parameters),
// no caching of pages that carry CSRF tokens.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
}

func (h *Handler) render(w http.ResponseWriter, status int, name string, p page) {
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	p.ForgotPassword = name == "login" && h.cfg.PasswordReset
	if err := h.tmpl[name].ExecuteTemplate(w, "layout", p); err != nil {
		h.log.Error("render page", "page", name, "error", err)
	}
}

// ErrorPage shows a message and never redirects: for requests whose client
// or redirect URI cannot be trusted.
func (h *Handler) ErrorPage(w http.ResponseWriter, status int, title, message string) {
	h.render(w, status, "message", page{Title: title, Message: message})
}

// csrfToken returns the token for this browser, setting the CSRF cookie if
// it has none. The token is an HMAC of the cookie, so a page of another
// origin can neither read nor forge it.
func (h *Handler) csrfToken(w http.ResponseWriter, r *http.Request) string {
	value := ""
	if c, err := r.Cookie(h.cookieName("latchkey_csrf")); err == nil && len(c.Value) >= 32 {
		value = c.Value
	} else {
		value, _ = secrets.RandomToken(32)
		h.setCookie(w, "latchkey_csrf", value, 0)
	}
	return sign(h.csrfKeys[0], value)
}

// sign is the MAC every token of the pages carries (CSRF, the about of a
// return_to, the interaction proof): HMAC-SHA256 over the parts joined by
// NUL, base64url.
func sign(key []byte, parts ...string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(strings.Join(parts, "\x00")))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// signedUnderAny checks mac against every key (a LATCHKEY_SECRET rotation
// keeps the old ones verifying), each compared in constant time.
func signedUnderAny(keys [][]byte, mac string, parts ...string) bool {
	ok := false
	for _, k := range keys {
		ok = hmac.Equal([]byte(mac), []byte(sign(k, parts...))) || ok
	}
	return ok
}

// validCSRF checks the form's token against the cookie in constant time,
// under every key.
func (h *Handler) validCSRF(r *http.Request) bool {
	c, err := r.Cookie(h.cookieName("latchkey_csrf"))
	if err != nil || len(c.Value) < 32 {
		return false
	}
	return signedUnderAny(h.csrfKeys, r.PostFormValue("csrf_token"), c.Value)
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	p := page{Title: "Sign in", CSRFToken: h.csrfToken(w, r)}
	if rt, ok := h.readReturnTo(r.URL.Query().Get); ok {
		p.ReturnTo, p.About, p.ClientName = rt.URL, r.URL.Query().Get(aboutParam), rt.ClientName
		// Signed with the rest of the about, so a crafted link cannot
		// prefill it; html/template escapes it in the value attribute.
		p.Username = rt.LoginHint
	}
	h.render(w, http.StatusOK, "login", p)
}

func (h *Handler) loginSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := page{Title: "Sign in", CSRFToken: h.csrfToken(w, r), Username: r.PostFormValue("username")}
	rt, returning := h.readReturnTo(r.PostFormValue)
	if returning {
		p.ReturnTo, p.About, p.ClientName = rt.URL, r.PostFormValue(aboutParam), rt.ClientName
	}
	if !h.validCSRF(r) {
		p.Error = "Your sign-in form expired. Please try again."
		h.render(w, http.StatusForbidden, "login", p)
		return
	}
	username, password := strings.TrimSpace(r.PostFormValue("username")), r.PostFormValue("password")
	if username == "" || password == "" {
		p.Error = "Enter your username and password."
		h.render(w, http.StatusBadRequest, "login", p)
		return
	}
	ip := h.ClientIP(r)
	userID, err := h.auth.Authenticate(ctx, username, password, ip)
	switch {
	case errors.Is(err, store.ErrLocked):
		p.Error = "Too many failed sign-in attempts. Please wait a few minutes and try again."
		h.render(w, http.StatusTooManyRequests, "login", p)
		return
	case errors.Is(err, ErrBusy):
		h.log.WarnContext(ctx, "login refused: too many password checks", "ip", ip)
		w.Header().Set("Retry-After", BusyRetryAfter)
		p.Error = "Too many people are signing in right now. Please try again in a moment."
		h.render(w, http.StatusServiceUnavailable, "login", p)
		return
	case errors.Is(err, store.ErrNotFound):
		h.log.InfoContext(ctx, "login failed", "ip", ip)
		// The same words for an unknown user and a wrong password.
		p.Error = "Invalid username or password."
		h.render(w, http.StatusUnauthorized, "login", p)
		return
	case err != nil:
		h.fail(w, r, err)
		return
	}
	cookie, err := secrets.RandomToken(32)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	now := h.cfg.Now().UTC()
	ls := &store.LoginSession{UserID: userID, AuthTime: now, LastSeenAt: now, ExpiresAt: now.Add(h.cfg.SessionTTL),
		UserAgent: truncateUTF8(r.UserAgent(), 256), Address: ip}
	prev, err := h.current(r)
	switch {
	case err != nil:
		h.fail(w, r, err)
		return
	case prev != nil && prev.User.ID == userID:
		err = h.store.ReplaceLoginSession(ctx, prev.LoginSessionID, cookie, ls)
	case prev != nil:
		// Another person signs in on this browser: the previous one is
		// signed out, as if they had logged out.
		if err = h.store.EndLoginSession(ctx, prev.LoginSessionID, now.Add(h.cfg.RevokeFor)); err == nil {
			err = h.store.CreateLoginSession(ctx, cookie, ls)
		}
	default:
		err = h.store.CreateLoginSession(ctx, cookie, ls)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// A session cookie (no Max-Age): the server-side expiry is what counts.
	h.setCookie(w, "latchkey_session", cookie, 0)
	h.log.InfoContext(ctx, "login", "user_id", userID)
	if !returning {
		h.render(w, http.StatusOK, "message", page{Title: "Signed in", Message: "You are signed in."})
		return
	}
	// The sign-in is the person's interaction with this request
	// (interaction.go); what it satisfies (prompt=login) is the
	// authorization endpoint's business.
	http.Redirect(w, r, h.withProof(rt.URL, SignedIn, secrets.SignatureKey(cookie), now), http.StatusSeeOther)
}

// fail answers an error of ours, never of the person's: 503 with
// Retry-After when the database cannot be reached, 500 otherwise.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	h.log.ErrorContext(r.Context(), "login page failed", "error", err)
	if errors.Is(err, store.ErrUnavailable) {
		w.Header().Set("Retry-After", "5")
		h.ErrorPage(w, http.StatusServiceUnavailable, "Temporarily unavailable", "Please try again in a moment.")
		return
	}
	h.ErrorPage(w, http.StatusInternalServerError, "Something went wrong", "Please try again in a moment.")
}

func (h *Handler) consentPage(w http.ResponseWriter, r *http.Request) {
	rt, ok := h.readReturnTo(r.URL.Query().Get)
	if !ok || rt.ClientName == "" {
		// Only the authorization endpoint sends the browser here, with
		// what to show signed: anything else is a crafted link.
		h.ErrorPage(w, http.StatusBadRequest, "Invalid request", "This consent link is not valid.")
		return
	}
	s, err := h.current(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if s == nil {
		h.SendToLogin(w, r, rt)
		return
	}
	h.render(w, http.StatusOK, "consent", page{Title: "Allow access?", CSRFToken: h.csrfToken(w, r), ReturnTo: rt.URL,
		ClientName: rt.ClientName, Scopes: rt.Scopes, Username: s.User.Username})
}

// ConsentDeniedParam marks an authorization request whose user said no.
const ConsentDeniedParam = "consent"

// consentSubmit sends the browser back with the person's answer: the
// proof that they approved this very request, or ConsentDeniedParam. The
// authorization endpoint records the consent, for the client and scopes it
// checked, when it sees the proof.
func (h *Handler) consentSubmit(w http.ResponseWriter, r *http.Request) {
	rt, ok := h.readReturnTo(r.PostFormValue)
	if !ok {
		h.ErrorPage(w, http.StatusBadRequest, "Invalid request", "This consent form is not valid.")
		return
	}
	if !h.validCSRF(r) {
		h.ErrorPage(w, http.StatusForbidden, "Form expired", "Your consent form expired. Go back to the application and try again.")
		return
	}
	s, err := h.current(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if s == nil {
		h.SendToLogin(w, r, rt)
		return
	}
	target := rt.URL
	switch r.PostFormValue("consent") {
	case "allow":
		target = h.withProof(rt.URL, Approved, s.LoginSessionID, h.cfg.Now())
	case "deny":
		u, _ := url.Parse(rt.URL)
		q := u.Query()
		q.Set(ConsentDeniedParam, "denied")
		u.RawQuery = q.Encode()
		target = u.String()
	default:
		h.ErrorPage(w, http.StatusBadRequest, "Invalid request", "Choose Allow or Deny.")
		return
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// LogoutRequest is what the confirmation page carries through its form to
// POST /logout: the relying party's request, checked by the end-session
// endpoint (internal/oauth) before the page and again when the form comes
// back. This package only echoes it.
type LogoutRequest struct {
	ClientID, PostLogoutRedirectURI, State string
}

// logoutPage is GET /logout: the confirmation page, with whatever the link
// carries (checked when the form is posted).
func (h *Handler) logoutPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	h.ConfirmLogout(w, r, LogoutRequest{ClientID: q.Get("client_id"),
		PostLogoutRedirectURI: q.Get("post_logout_redirect_uri"), State: q.Get("state")})
}

// ConfirmLogout asks the person whether to sign out: a form with a CSRF
// token that posts lr back to POST /logout.
func (h *Handler) ConfirmLogout(w http.ResponseWriter, r *http.Request, lr LogoutRequest) {
	p := page{Title: "Sign out", CSRFToken: h.csrfToken(w, r), ClientID: lr.ClientID,
		PostLogoutRedirectURI: lr.PostLogoutRedirectURI, State: lr.State}
	// The name is a courtesy: without it the page still signs out.
	switch s, err := h.current(r); {
	case err != nil:
		h.log.WarnContext(r.Context(), "logout page: find login session", "error", err)
	case s != nil:
		p.Username = s.User.Username
	}
	h.render(w, http.StatusOK, "logout", p)
}

// ValidLogoutForm reports whether r is the confirmation form this browser
// was given (its CSRF token): a page of another site cannot sign people
// out.
func (h *Handler) ValidLogoutForm(r *http.Request) bool { return h.validCSRF(r) }

// EndSignIn ends the login session of r's browser, if it has one: the
// session is deleted, every grant issued under it revoked and the
// back-channel logout tokens its clients are owed enqueued, in one
// transaction (store.EndLoginSession), and the cookie is cleared. It
// returns who was signed in, or nil when the session was already gone or
// no longer live (it is ended all the same).
func (h *Handler) EndSignIn(w http.ResponseWriter, r *http.Request) (*SignIn, error) {
	c, err := r.Cookie(h.cookieName("latchkey_session"))
	if err != nil || c.Value == "" {
		return nil, nil
	}
	s, err := h.current(r)
	if err != nil {
		return nil, err
	}
	if err := h.store.EndLoginSession(r.Context(), secrets.SignatureKey(c.Value), h.cfg.Now().Add(h.cfg.RevokeFor)); err != nil {
		return nil, err
	}
	h.setCookie(w, "latchkey_session", "", -1)
	h.log.InfoContext(r.Context(), "logout")
	return s, nil
}

// SignedOut shows that the person is signed out.
func (h *Handler) SignedOut(w http.ResponseWriter, r *http.Request) {
	h.render(w, http.StatusOK, "message", page{Title: "Signed out", Message: "You are signed out."})
}

// Fail answers an error of ours on a page (503 with Retry-After when the
// database cannot be reached, 500 otherwise).
func (h *Handler) Fail(w http.ResponseWriter, r *http.Request, err error) { h.fail(w, r, err) }
