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
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/latchkey/latchkey/internal/metrics"
	"github.com/latchkey/latchkey/internal/requestid"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
)

//go:embed templates
var templateFS embed.FS

//go:embed locales
var localeFS embed.FS

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
	// Theme dresses the pages; the zero value is Latchkey's own look.
	Theme Theme
	// PasswordReset offers "Forgot password?" on the login page; NewAccount
	// sets it when mail can be sent (account.go).
	PasswordReset bool
	// Issuer is the public issuer URL: passkeys are for its host (the
	// WebAuthn RP ID) and origin. Empty, or an IP address, leaves
	// passkeys off.
	Issuer string
	// Metrics counts sign-ins, lockouts and second-factor checks; nil
	// counts nothing.
	Metrics *metrics.Metrics
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
	static   *staticFiles
	locales  *catalogues
	product  string
	// imgSrc is the CSP's img-src: ours, and the logo's origin.
	imgSrc string
	auth   *Authenticator
	log    *slog.Logger

	// interactionKeys sign consent-page proofs as csrfKeys do CSRF tokens
	// (interaction.go).
	interactionKeys [][]byte
	// returnToKeys sign what the pages show of a ReturnTo (returnto.go).
	returnToKeys [][]byte
	// mfa is the second-factor pages' keys and throttle (mfa.go).
	mfa mfaState
	// passkeys is nil when the issuer cannot be a WebAuthn RP (passkey.go);
	// script is the pages' one script.
	passkeys *webauthn.WebAuthn
	script   []byte
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
	h.auth.Metrics = cfg.Metrics
	h.auth.throttle.OnLockout = func(counter string) { cfg.Metrics.Lockout("password", counter) }
	if h.interactionKeys, err = cfg.SystemSecrets.DeriveKeys(PurposeInteraction); err != nil {
		return nil, err
	}
	if h.returnToKeys, err = cfg.SystemSecrets.DeriveKeys(PurposeReturnTo); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(cfg.AuthorizePath, "/") {
		return nil, errors.New("login: Config.AuthorizePath must be the authorization endpoint's path")
	}
	if err := h.initMFA(); err != nil {
		return nil, err
	}
	if err := h.initPasskeys(); err != nil {
		return nil, err
	}
	if h.script, err = templateFS.ReadFile("templates/passkey.js"); err != nil {
		return nil, err
	}
	if err := cfg.Theme.Validate(); err != nil {
		return nil, fmt.Errorf("login: theme: %w", err)
	}
	theme := cfg.Theme.themeFS()
	if h.locales, err = loadCatalogues(localeFS, theme); err != nil {
		return nil, fmt.Errorf("login: theme: %w", err)
	}
	if h.tmpl, err = loadTemplates(templateFS, theme, template.FuncMap{}); err != nil {
		return nil, fmt.Errorf("login: theme: %w", err)
	}
	if err := h.dryRun(); err != nil {
		return nil, fmt.Errorf("login: theme: %w", err)
	}
	h.static = &staticFiles{theme: theme, themeCSS: themeCSS(cfg.Theme.PrimaryColor), notFound: h.NotFound}
	if h.static.css, err = templateFS.ReadFile("templates/latchkey.css"); err != nil {
		return nil, err
	}
	h.product = cfg.Theme.ProductName
	if h.product == "" {
		h.product = DefaultProductName
	}
	h.imgSrc = strings.TrimSpace("'self' " + origin(cfg.Theme.LogoURL))
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
	h.registerMFA(mux)
	h.registerPasskeys(mux)
	mux.HandleFunc("GET /static/{path...}", h.static.serve)
}

// NotFound is the page of an address the public listener does not serve.
func (h *Handler) NotFound(w http.ResponseWriter, r *http.Request) {
	h.ErrorPage(w, r, http.StatusNotFound, "error.not_found.title", "error.not_found.message")
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
	// AMR is how the person authenticated in this login session (RFC
	// 8176): ["pwd"], or ["pwd", "otp", "mfa"] after a second factor.
	AMR []string
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
	return &SignIn{LoginSessionID: ls.ID, SID: ls.SID, User: u, AuthTime: ls.AuthTime, AMR: sessionAMR(ls)}, nil
}

// page is the data every template gets. Title, Error and Message are
// message keys (i18n.go), shown with T; templates say {{.T "key"}} or,
// inside a range, {{$.T "key"}}.
type page struct {
	localizer
	// Lang is the <html lang> of the page.
	Lang string
	// Product names the server ("Latchkey" unless themed); LogoURL and
	// ThemeCSS come from the theme.
	Product, LogoURL string
	ThemeCSS         bool
	// RequestID is the reference an error page shows for support.
	RequestID string
	// Args fill Message's placeholders.
	Args []any
	// uiLocales is the authorization request's ui_locales, when the page
	// serves one.
	uiLocales string
	// imgSrc adds origins to the CSP's img-src (a client's logo).
	imgSrc []string

	Title, Error, Message, CSRFToken, ReturnTo string
	// ErrorFields names the fields an Error that is not a message key is
	// about (fieldErrors knows those of the keys).
	ErrorFields []string
	// About is the signed ClientName and Scopes of ReturnTo, kept in the
	// login form so that a failed sign-in shows them again.
	About                string
	ClientName, Username string
	// ClientLogoURI and ClientURI are the client's registered logo_uri
	// and client_uri (RFC 7591 §2), shown on the consent page.
	ClientLogoURI, ClientURI string
	// Scopes are the scopes asked for, each with its description.
	Scopes                                 []ScopeLine
	ClientID, PostLogoutRedirectURI, State string
	// UserCode prefills the device page's code.
	UserCode string
	// MFA is what the second-factor pages show (mfa.go).
	MFA *mfaPage
	// ForgotPassword links the login page to /forgot-password.
	ForgotPassword bool
	// Passkeys offers passkeys on the page: it loads the passkey script,
	// which the CSP then allows (passkey.go).
	Passkeys bool
}

// securityHeaders: no script but our passkey script on the pages that
// offer passkeys (script and fetch from our origin only), no framing (clickjacking of the
// consent button), no referrer (the URL carries authorization parameters),
// no caching of pages that carry CSRF tokens.
// Images may come from the theme's logo and a client's logo_uri, and only
// from there. No form-action: browsers apply it to the redirects after a
// form too, and the consent form ends at the client's redirect URI.
func securityHeaders(w http.ResponseWriter, imgSrc string, script bool) {
	h := w.Header()
	scripts := ""
	if script {
		scripts = "script-src 'self'; connect-src 'self'; "
	}
	h.Set("Content-Security-Policy", "default-src 'none'; "+scripts+"style-src 'self'; img-src "+imgSrc+"; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
}

// render draws page name in the language of r (and p.uiLocales).
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	p.ForgotPassword = name == "login" && h.cfg.PasswordReset
	h.draw(w, r, status, h.tmpl[name], &p, &p)
}

// draw fills in p, the page part of data (language, theme, the reference
// of an error), writes the headers and executes t's layout with data.
func (h *Handler) draw(w http.ResponseWriter, r *http.Request, status int, t *template.Template, p *page, data any) {
	p.Lang = h.locales.pick(p.uiLocales, r)
	p.localizer = localizer{c: h.locales, lang: p.Lang}
	p.Product, p.LogoURL, p.ThemeCSS = h.product, h.cfg.Theme.LogoURL, h.cfg.Theme.PrimaryColor != ""
	if r != nil && p.RequestID == "" && status >= 400 {
		p.RequestID = requestid.FromContext(r.Context())
	}
	img := h.imgSrc
	for _, o := range p.imgSrc {
		if o != "" && !strings.Contains(img, o) {
			img += " " + o
		}
	}
	securityHeaders(w, img, p.Passkeys)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Language", p.Lang)
	w.Header().Add("Vary", "Accept-Language")
	w.WriteHeader(status)
	if err := t.ExecuteTemplate(w, "layout", data); err != nil {
		h.log.Error("render page", "page", t.Name(), "error", err)
	}
}

// dryRun draws every page once with every field set, so that a theme
// template naming a field or method that does not exist ({{.Nope}}) stops
// the start instead of failing each request. The error names the file.
func (h *Handler) dryRun() error {
	p := page{localizer: localizer{c: h.locales, lang: defaultLang}, Lang: defaultLang, Product: "P", LogoURL: "/static/l.png",
		ThemeCSS: true, RequestID: "r", Title: "login.title", Error: "login.error.invalid", ErrorFields: []string{"code"}, Message: "login.done.message",
		CSRFToken: "c", ReturnTo: "/", About: "a", ClientName: "n", Username: "u", ClientLogoURI: "https://l", ClientURI: "https://u",
		Scopes: []ScopeLine{{Name: "s", Description: "d"}, {Name: "t"}}, ClientID: "i", PostLogoutRedirectURI: "https://p", State: "s", UserCode: "c",
		MFA:      &mfaPage{QR: "<svg></svg>", Secret: "S", Sealed: "x", RecoveryCodes: []string{"a"}, HasFactor: true, RecoveryLeft: 1, HasPasskey: true},
		Passkeys: true}
	// The account pages draw an accountView, which shadows some of page's
	// fields with its own.
	v := accountView{page: p, Title: "account.title", Error: "account.error.mismatch", Message: "account.notice.password",
		CSRFToken: "c", User: &store.User{Username: "u", Name: "n", Email: "e@example.com"}, CanVerify: true, Token: "t",
		Sessions: []sessionView{{SID: "s", Device: "d", Address: "a", Created: "c", LastSeen: "l", ThisDevice: true}},
		Apps:     []appView{{ClientID: "i", Name: "n", Since: "s", Scopes: []string{"openid", "email"}}}, Link: "/", LinkText: "account.link",
		PasskeyList: []passkeyView{{ID: "i", Name: "n", Created: "c", LastUsed: "l", Synced: true}}}
	for _, name := range pageNames {
		var data any = p
		if slices.Contains(accountPages, name) {
			data = &v
		}
		if err := h.tmpl[name].ExecuteTemplate(io.Discard, "layout", data); err != nil {
			return err
		}
	}
	return nil
}

// ErrorPage shows a message and never redirects: for requests whose client
// or redirect URI cannot be trusted. title and message are message keys
// (a text no catalogue has is shown as is), args fill the message's
// placeholders. The language follows r's ui_locales (an authorization
// request's) and Accept-Language; a status of 400 or more shows the
// request id to quote to support and a way back.
func (h *Handler) ErrorPage(w http.ResponseWriter, r *http.Request, status int, title, message string, args ...any) {
	h.render(w, r, status, "message", page{Title: title, Message: message, Args: args, uiLocales: r.URL.Query().Get("ui_locales")})
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
	p := page{Title: "login.title", CSRFToken: h.csrfToken(w, r)}
	if rt, ok := h.readReturnTo(r.URL.Query().Get); ok {
		p.ReturnTo, p.About, p.ClientName, p.uiLocales = rt.URL, r.URL.Query().Get(aboutParam), rt.ClientName, rt.uiLocales()
		// Signed with the rest of the about, so a crafted link cannot
		// prefill it; html/template escapes it in the value attribute.
		p.Username = rt.LoginHint
	}
	h.withPasskeys(&p)
	h.render(w, r, http.StatusOK, "login", p)
}

// postedLogin reads what a POSTed sign-in form carries back (where to
// return, for which client) into the login page drawn again on an error,
// and refuses the form, drawing that page, when its CSRF token is wrong.
func (h *Handler) postedLogin(w http.ResponseWriter, r *http.Request) (p page, rt ReturnTo, returning, ok bool) {
	p = page{Title: "login.title", CSRFToken: h.csrfToken(w, r), Username: r.PostFormValue("username")}
	rt, returning = h.readReturnTo(r.PostFormValue)
	if returning {
		p.ReturnTo, p.About, p.ClientName, p.uiLocales = rt.URL, r.PostFormValue(aboutParam), rt.ClientName, rt.uiLocales()
	}
	h.withPasskeys(&p)
	if !h.validCSRF(r) {
		p.Error = "login.error.csrf"
		h.render(w, r, http.StatusForbidden, "login", p)
		return p, rt, returning, false
	}
	return p, rt, returning, true
}

func (h *Handler) loginSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p, rt, returning, ok := h.postedLogin(w, r)
	if !ok {
		return
	}
	username, password := strings.TrimSpace(r.PostFormValue("username")), r.PostFormValue("password")
	if username == "" || password == "" {
		p.Error = "login.error.missing"
		h.render(w, r, http.StatusBadRequest, "login", p)
		return
	}
	ip := h.ClientIP(r)
	userID, err := h.auth.Authenticate(ctx, username, password, ip)
	switch {
	case errors.Is(err, store.ErrLocked):
		p.Error = "login.error.locked"
		h.render(w, r, http.StatusTooManyRequests, "login", p)
		return
	case errors.Is(err, ErrBusy):
		h.log.WarnContext(ctx, "login refused: too many password checks", "ip", ip)
		w.Header().Set("Retry-After", BusyRetryAfter)
		p.Error = "login.error.busy"
		h.render(w, r, http.StatusServiceUnavailable, "login", p)
		return
	case errors.Is(err, store.ErrNotFound):
		h.log.InfoContext(ctx, "login failed", "ip", ip)
		// The same words for an unknown user and a wrong password.
		p.Error = "login.error.invalid"
		h.render(w, r, http.StatusUnauthorized, "login", p)
		return
	case err != nil:
		h.fail(w, r, err)
		return
	}
	// A person with a second factor is not signed in by a password alone
	// (mfa.go): the session starts once they give it.
	if pending, err := h.askSecondFactor(w, r, userID, p); pending || err != nil {
		if err != nil {
			h.fail(w, r, err)
			return
		}
		h.cfg.Metrics.SignIn("mfa_required")
		return
	}
	h.startSession(w, r, userID, []string{AMRPassword}, rt, returning)
}

// startSession signs the browser in as userID, who authenticated by amr,
// and sends it back to rt (when returning) with the proof that they signed
// in for it.
func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, userID string, amr []string, rt ReturnTo, returning bool) {
	ctx := r.Context()
	cookie, err := secrets.RandomToken(32)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	now := h.cfg.Now().UTC()
	ls := &store.LoginSession{UserID: userID, AuthTime: now, LastSeenAt: now, ExpiresAt: now.Add(h.cfg.SessionTTL),
		AMR: strings.Join(amr, " "), UserAgent: truncateUTF8(r.UserAgent(), 256), Address: h.ClientIP(r)}
	if multiFactor(amr) {
		ls.MFATime = &now
	}
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
		h.render(w, r, http.StatusOK, "message", page{Title: "login.done.title", Message: "login.done.message"})
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
		h.ErrorPage(w, r, http.StatusServiceUnavailable, "error.unavailable.title", "error.unavailable.message")
		return
	}
	h.ErrorPage(w, r, http.StatusInternalServerError, "error.internal.title", "error.internal.message")
}

func (h *Handler) consentPage(w http.ResponseWriter, r *http.Request) {
	rt, ok := h.readReturnTo(r.URL.Query().Get)
	if !ok || rt.ClientName == "" {
		// Only the authorization endpoint sends the browser here, with
		// what to show signed: anything else is a crafted link.
		h.ErrorPage(w, r, http.StatusBadRequest, "error.invalid_request.title", "error.consent_link")
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
	scopes, err := h.describeScopes(r.Context(), h.locales.pick(rt.uiLocales(), r), rt.Scopes)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "consent", page{Title: "consent.title", CSRFToken: h.csrfToken(w, r), ReturnTo: rt.URL,
		ClientName: rt.ClientName, Scopes: scopes, Username: s.User.Username, uiLocales: rt.uiLocales(),
		ClientLogoURI: rt.ClientLogoURI, ClientURI: rt.ClientURI, imgSrc: []string{origin(rt.ClientLogoURI)}})
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
		h.ErrorPage(w, r, http.StatusBadRequest, "error.invalid_request.title", "error.consent_form")
		return
	}
	if !h.validCSRF(r) {
		h.ErrorPage(w, r, http.StatusForbidden, "error.form_expired.title", "error.consent_expired")
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
		h.ErrorPage(w, r, http.StatusBadRequest, "error.invalid_request.title", "error.consent_choice")
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
	p := page{Title: "logout.title", CSRFToken: h.csrfToken(w, r), ClientID: lr.ClientID,
		PostLogoutRedirectURI: lr.PostLogoutRedirectURI, State: lr.State}
	// The name is a courtesy: without it the page still signs out.
	switch s, err := h.current(r); {
	case err != nil:
		h.log.WarnContext(r.Context(), "logout page: find login session", "error", err)
	case s != nil:
		p.Username = s.User.Username
	}
	h.render(w, r, http.StatusOK, "logout", p)
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
	h.render(w, r, http.StatusOK, "message", page{Title: "logout.done.title", Message: "logout.done.message"})
}

// Fail answers an error of ours on a page (503 with Retry-After when the
// database cannot be reached, 500 otherwise).
func (h *Handler) Fail(w http.ResponseWriter, r *http.Request, err error) { h.fail(w, r, err) }
