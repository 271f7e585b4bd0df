package login

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/latchkey/latchkey/internal/mail"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
)

// AccountPath is the account page: a signed-in person's profile, sign-in
// methods, sessions and authorized applications. The login page may return
// there (returnto.go).
const AccountPath = "/account"

// AccountStore is what the account page and the e-mailed links need of
// persistence, besides Store; *store.Store satisfies it.
type AccountStore interface {
	Store
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
	ListLoginSessions(ctx context.Context, userID string, idle time.Duration) ([]store.LoginSession, error)
	// EndUserLoginSession ends one of the user's sessions by sid, as
	// logout does; store.ErrNotFound when it is not theirs.
	EndUserLoginSession(ctx context.Context, userID, sid string, revokeUntil time.Time) error
	EndOtherLoginSessions(ctx context.Context, userID, keepID string, revokeUntil time.Time) ([]string, error)
	ListAuthorizedApps(ctx context.Context, userID string) ([]store.AuthorizedApp, error)
	RevokeApp(ctx context.Context, userID, clientID string, revokeUntil time.Time) error
	SetPasswordHash(ctx context.Context, id, hash string) error
	RevokeSubject(ctx context.Context, subject string, until time.Time) error
	CreateEmailToken(ctx context.Context, token string, et *store.EmailToken, limit int, per time.Duration) error
	RedeemEmailToken(ctx context.Context, token, purpose string) (*store.EmailToken, error)
	PeekEmailToken(ctx context.Context, token, purpose string) error
	MarkEmailVerified(ctx context.Context, userID, email string) error
}

// Mailer sends one message (*mail.Sender).
type Mailer interface {
	Send(ctx context.Context, m mail.Message) error
}

// Backchannel sends the back-channel logout tokens of an ended login
// session at once (*backchannel.Deliverer), as the end-session endpoint
// does; the channel closes when they are sent or rescheduled.
type Backchannel interface {
	DeliverSession(ctx context.Context, sid string) <-chan struct{}
}

// AccountConfig is what the account page needs beyond the login pages'
// Config.
type AccountConfig struct {
	// Issuer is the public base URL the e-mailed links start with.
	Issuer string
	// Mailer sends reset and verification links; nil turns both off (their
	// routes answer 404 and the login page offers no "Forgot password?").
	Mailer Mailer
	// LinkTTL is how long an e-mailed link works.
	LinkTTL time.Duration
	// LinksPerTTL bounds the links of one purpose a person is sent within
	// LinkTTL (a mail bomb through the forgot-password form); zero is 3.
	LinksPerTTL int
	// ForgotPerIP bounds the forgot-password requests one client IP may
	// make within LinkTTL, whatever names they carry: LinksPerTTL holds per
	// person, and without this one address could mail every account in
	// turn. Zero is 10.
	ForgotPerIP int
	// CheckPassword applies the rules of a new password (the admin API's).
	CheckPassword func(password string) error
	// HashPassword hashes a new password; nil is argon2id with
	// secrets.DefaultArgon2Params.
	HashPassword func(password string) (string, error)
	// Backchannel, when set, gets the logout tokens of sessions ended here
	// on their way within BackchannelWait, as at logout.
	Backchannel     Backchannel
	BackchannelWait time.Duration
	// Go runs the work of a forgot-password request after the answer has
	// gone (so its timing says nothing); nil is `go f()`. Tests pass one
	// that lets them wait for it.
	Go func(f func())
}

// Account serves /account and the e-mailed links' pages. It shares the
// login pages' session cookie, CSRF tokens and password throttle.
type Account struct {
	h   *Handler
	st  AccountStore
	cfg AccountConfig
	// mailSlots bounds the mail work in flight: a flood of forgot-password
	// requests cannot pile up goroutines, connections and SMTP sessions.
	// A request that finds no slot sends nothing and is answered the same.
	mailSlots chan struct{}
}

// MaxMailWork is how many forgot-password or verification requests may be
// doing their mail work at once on one instance.
const MaxMailWork = 16

// NewAccount builds the account pages over the login pages h.
func NewAccount(h *Handler, st AccountStore, cfg AccountConfig) (*Account, error) {
	if cfg.CheckPassword == nil {
		return nil, errors.New("login: AccountConfig.CheckPassword is required")
	}
	if cfg.HashPassword == nil {
		cfg.HashPassword = func(p string) (string, error) { return secrets.HashPassword(p, secrets.DefaultArgon2Params) }
	}
	if cfg.Go == nil {
		cfg.Go = func(f func()) { go f() }
	}
	if cfg.LinksPerTTL == 0 {
		cfg.LinksPerTTL = 3
	}
	if cfg.LinkTTL == 0 {
		cfg.LinkTTL = 30 * time.Minute
	}
	if cfg.BackchannelWait == 0 {
		cfg.BackchannelWait = time.Second
	}
	// The pages were parsed with the login pages (pageNames): a theme
	// overrides them by file name and the start-up dry run checks them.
	a := &Account{h: h, st: st, cfg: cfg, mailSlots: make(chan struct{}, MaxMailWork)}
	// The login page offers "Forgot password?" only when a link can be
	// sent.
	h.cfg.PasswordReset = cfg.Mailer != nil
	return a, nil
}

// Register adds the pages to mux. Without a Mailer the e-mailed links'
// routes are not registered: they answer 404.
func (a *Account) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+AccountPath, a.accountPage)
	mux.HandleFunc("POST "+AccountPath+"/password", a.changePassword)
	mux.HandleFunc("POST "+AccountPath+"/sessions/end", a.endSession)
	mux.HandleFunc("POST "+AccountPath+"/apps/revoke", a.revokeApp)
	if a.cfg.Mailer == nil {
		return
	}
	mux.HandleFunc("POST "+AccountPath+"/verify-email", a.requestVerification)
	mux.HandleFunc("GET /forgot-password", a.forgotPage)
	mux.HandleFunc("POST /forgot-password", a.forgotSubmit)
	mux.HandleFunc("GET /reset-password", a.resetPage)
	mux.HandleFunc("POST /reset-password", a.resetSubmit)
	mux.HandleFunc("GET /verify-email", a.verifyPage)
	mux.HandleFunc("POST /verify-email", a.verifySubmit)
}

// accountView is the data of the account pages' templates.
type accountView struct {
	// page is what the layout draws besides (language, theme); these
	// pages set their own Title, Error, Message and CSRFToken below.
	page
	Title, Error, Message, CSRFToken string
	User                             *store.User
	Sessions                         []sessionView
	Apps                             []appView
	// CanVerify offers a verification mail: the person has an unverified
	// address and mail can be sent.
	CanVerify bool
	// Token is an e-mailed link's token, carried by its page's form.
	Token string
	// Link is a way on from a message page.
	Link, LinkText string
}

type sessionView struct {
	SID, Device, Address string
	Created, LastSeen    string
	ThisDevice           bool
}

type appView struct {
	ClientID, Name, Since string
	Scopes                []string
}

// accountPages are the templates of these pages; they join pageNames.
var accountPages = []string{"account", "account_message", "reset_request", "reset", "verify_email"}

func (a *Account) render(w http.ResponseWriter, r *http.Request, status int, name string, v accountView) {
	a.h.draw(w, r, status, a.h.tmpl[name], &v.page, &v)
}

// message shows the message key msg, its placeholders filled by args,
// under the title key, with a link on (linkText a key too).
func (a *Account) message(w http.ResponseWriter, r *http.Request, status int, title, msg, link, linkText string, args ...any) {
	v := accountView{Title: title, Message: msg, Link: link, LinkText: linkText}
	v.Args = args
	a.render(w, r, status, "account_message", v)
}

// tr is key in r's language with its placeholders filled, for an error
// that carries arguments: the layout shows Error through T, which leaves
// a text no catalogue has as it is.
func (a *Account) tr(r *http.Request, key string, args ...any) string {
	return a.localizer(r).T(key, args...)
}

// localizer is r's language, for text that leaves the page: e-mails.
func (a *Account) localizer(r *http.Request) localizer {
	return localizer{c: a.h.locales, lang: a.h.locales.pick("", r)}
}

// notices are the messages /account shows after a change, by the code in
// its query: fixed words, never text from the URL.
var notices = map[string]string{
	"password":       "account.notice.password",
	"password-other": "account.notice.password_other",
	"session":        "account.notice.session",
	"app":            "account.notice.app",
	"verify-sent":    "account.notice.verify_sent",
}

// signedIn returns the person signed in on r's browser, or sends the
// browser to sign in first (and come back to /account) and returns nil.
func (a *Account) signedIn(w http.ResponseWriter, r *http.Request) *SignIn {
	s, err := a.h.current(r)
	if err != nil {
		a.h.fail(w, r, err)
		return nil
	}
	if s == nil {
		a.h.SendToLogin(w, r, ReturnTo{URL: AccountPath})
		return nil
	}
	return s
}

func (a *Account) accountPage(w http.ResponseWriter, r *http.Request) {
	s := a.signedIn(w, r)
	if s == nil {
		return
	}
	a.show(w, r, s, http.StatusOK, "", notices[r.URL.Query().Get("done")])
}

// show renders /account for s with an error or a notice. fields are those
// an error that is no message key is about (fieldErrors).
func (a *Account) show(w http.ResponseWriter, r *http.Request, s *SignIn, status int, errMsg, notice string, fields ...string) {
	ctx := r.Context()
	sessions, err := a.st.ListLoginSessions(ctx, s.User.ID, a.h.cfg.SessionIdleTTL)
	if err != nil {
		a.h.fail(w, r, err)
		return
	}
	apps, err := a.st.ListAuthorizedApps(ctx, s.User.ID)
	if err != nil {
		a.h.fail(w, r, err)
		return
	}
	v := accountView{Title: "account.title", Error: errMsg, Message: notice, CSRFToken: a.h.csrfToken(w, r), User: s.User,
		CanVerify: a.cfg.Mailer != nil && s.User.Email != "" && !s.User.EmailVerified}
	v.ErrorFields = fields
	for _, ls := range sessions {
		v.Sessions = append(v.Sessions, sessionView{SID: ls.SID, Device: describeDevice(ls.UserAgent), Address: ls.Address,
			Created: when(ls.CreatedAt), LastSeen: when(ls.LastSeenAt), ThisDevice: ls.ID == s.LoginSessionID})
	}
	for _, app := range apps {
		name := app.ClientName
		if name == "" {
			name = app.ClientID
		}
		v.Apps = append(v.Apps, appView{ClientID: app.ClientID, Name: name, Scopes: app.Scopes, Since: when(app.Since)})
	}
	a.render(w, r, status, "account", v)
}

func when(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format("2 Jan 2006 15:04 UTC")
}

// post checks what every form of /account needs: the CSRF token of this
// browser, then a signed-in person. nil means the answer has been sent.
func (a *Account) post(w http.ResponseWriter, r *http.Request) *SignIn {
	if !a.h.validCSRF(r) {
		a.message(w, r, http.StatusForbidden, "error.form_expired.title", "account.error.csrf", AccountPath, "account.link")
		return nil
	}
	return a.signedIn(w, r)
}

func (a *Account) done(w http.ResponseWriter, r *http.Request, code string) {
	http.Redirect(w, r, AccountPath+"?done="+code, http.StatusSeeOther)
}

func (a *Account) revokeUntil() time.Time { return a.h.cfg.Now().Add(a.h.cfg.RevokeFor) }

// deliver gives the back-channel logout tokens of ended sessions a bounded
// time to go out, as the end-session endpoint does; the sends go on after.
func (a *Account) deliver(ctx context.Context, sids ...string) {
	if a.cfg.Backchannel == nil || len(sids) == 0 {
		return
	}
	t := time.NewTimer(a.cfg.BackchannelWait)
	defer t.Stop()
	for _, sid := range sids {
		select {
		case <-a.cfg.Backchannel.DeliverSession(ctx, sid):
		case <-t.C:
			return
		}
	}
}

// endSession is the "End" button of a session: it ends as logout ends it
// (grants revoked, back-channel logout tokens sent).
func (a *Account) endSession(w http.ResponseWriter, r *http.Request) {
	s := a.post(w, r)
	if s == nil {
		return
	}
	sid := r.PostFormValue("sid")
	err := a.st.EndUserLoginSession(r.Context(), s.User.ID, sid, a.revokeUntil())
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.show(w, r, s, http.StatusNotFound, "account.error.session_gone", "")
		return
	case err != nil:
		a.h.fail(w, r, err)
		return
	}
	a.h.log.InfoContext(r.Context(), "account: session ended", "user_id", s.User.ID)
	a.deliver(r.Context(), sid)
	if sid == s.SID {
		a.h.setCookie(w, "latchkey_session", "", -1)
	}
	a.done(w, r, "session")
}

// revokeApp is the "Revoke" button of an application: its grants' tokens
// revoked and the consent forgotten.
func (a *Account) revokeApp(w http.ResponseWriter, r *http.Request) {
	s := a.post(w, r)
	if s == nil {
		return
	}
	clientID := r.PostFormValue("client_id")
	if clientID == "" {
		a.show(w, r, s, http.StatusBadRequest, "account.error.choose_app", "")
		return
	}
	if err := a.st.RevokeApp(r.Context(), s.User.ID, clientID, a.revokeUntil()); err != nil {
		a.h.fail(w, r, err)
		return
	}
	a.h.log.InfoContext(r.Context(), "account: application revoked", "user_id", s.User.ID, "client_id", clientID)
	a.done(w, r, "app")
}

// changePassword checks the current password through the sign-in throttle
// (a stolen session cannot guess it faster than a sign-in could), applies
// the admin API's rules to the new one, and on request ends every other
// session of the person with its grants.
func (a *Account) changePassword(w http.ResponseWriter, r *http.Request) {
	s := a.post(w, r)
	if s == nil {
		return
	}
	ctx := r.Context()
	current, next := r.PostFormValue("current_password"), r.PostFormValue("new_password")
	if current == "" {
		a.show(w, r, s, http.StatusBadRequest, "account.error.current_missing", "")
		return
	}
	if next != r.PostFormValue("confirm_password") {
		a.show(w, r, s, http.StatusBadRequest, "account.error.mismatch", "")
		return
	}
	if err := a.cfg.CheckPassword(next); err != nil {
		a.show(w, r, s, http.StatusBadRequest, a.tr(r, "account.error.password_rule", err.Error()), "", "new_password")
		return
	}
	ip := a.h.ClientIP(r)
	_, err := a.h.auth.AuthenticateUser(ctx, s.User.Username, current, ip)
	switch {
	case errors.Is(err, store.ErrLocked):
		a.show(w, r, s, http.StatusTooManyRequests, "account.error.locked", "")
		return
	case errors.Is(err, ErrBusy):
		w.Header().Set("Retry-After", BusyRetryAfter)
		a.show(w, r, s, http.StatusServiceUnavailable, "login.error.busy", "")
		return
	case errors.Is(err, store.ErrNotFound):
		a.h.log.InfoContext(ctx, "account: wrong current password", "user_id", s.User.ID, "ip", ip)
		a.show(w, r, s, http.StatusUnauthorized, "account.error.wrong_current", "")
		return
	case err != nil:
		a.h.fail(w, r, err)
		return
	}
	hash, err := a.cfg.HashPassword(next)
	if err != nil {
		a.h.fail(w, r, err)
		return
	}
	others := r.PostFormValue("sign_out_others") != ""
	var ended []string
	err = a.st.InTx(ctx, func(ctx context.Context) error {
		if err := a.st.SetPasswordHash(ctx, s.User.ID, hash); err != nil {
			return err
		}
		if others {
			var err error
			ended, err = a.st.EndOtherLoginSessions(ctx, s.User.ID, s.LoginSessionID, a.revokeUntil())
			return err
		}
		return nil
	})
	if err != nil {
		a.h.fail(w, r, err)
		return
	}
	a.h.log.InfoContext(ctx, "account: password changed", "user_id", s.User.ID, "other_sessions_ended", len(ended))
	a.deliver(ctx, ended...)
	if others {
		a.done(w, r, "password-other")
		return
	}
	a.done(w, r, "password")
}

// describeDevice names a browser and system from a User-Agent, simply:
// "Firefox on Linux". Unknown parts are left out.
func describeDevice(ua string) string {
	if ua == "" {
		return "Unknown device"
	}
	browser := ""
	for _, b := range []struct{ token, name string }{
		{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"}, {"Chrome/", "Chrome"},
		{"Safari/", "Safari"}, {"curl/", "curl"}, {"Go-http-client", "Go program"},
	} {
		if strings.Contains(ua, b.token) {
			browser = b.name
			break
		}
	}
	system := ""
	for _, o := range []struct{ token, name string }{
		{"iPhone", "iPhone"}, {"iPad", "iPad"}, {"Android", "Android"}, {"Windows", "Windows"},
		{"Mac OS X", "macOS"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, o.token) {
			system = o.name
			break
		}
	}
	switch {
	case browser != "" && system != "":
		return browser + " on " + system
	case browser != "":
		return browser
	case system != "":
		return system
	}
	if len(ua) > 40 {
		return truncateUTF8(ua, 40) + "…"
	}
	return ua
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
