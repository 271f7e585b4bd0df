package login

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/mail"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
)

// Password reset and e-mail verification: a single-use link with a 256-bit
// token, stored only as its SHA-256, that works for AccountConfig.LinkTTL.

// mailWorkTimeout bounds the background work of one forgot-password or
// verification request (lookup, token, SMTP exchange).
const mailWorkTimeout = time.Minute

// forgotAnswer is the one answer of the forgot-password form, whoever was
// named: it tells nothing about which accounts exist.
const forgotAnswer = "reset.sent.message"

func (a *Account) forgotPage(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, http.StatusOK, "reset_request", accountView{Title: "reset.request.title", CSRFToken: a.h.csrfToken(w, r)})
}

// forgotSubmit answers at once and the same way for every name: finding
// the account, making the link and sending the mail happen after the
// answer (AccountConfig.Go), so neither the words nor the time of the
// answer tell whether the account exists or has an address.
func (a *Account) forgotSubmit(w http.ResponseWriter, r *http.Request) {
	if !a.h.validCSRF(r) {
		a.render(w, r, http.StatusForbidden, "reset_request", accountView{Title: "reset.request.title", CSRFToken: a.h.csrfToken(w, r),
			Error: "reset.error.csrf"})
		return
	}
	name := strings.TrimSpace(r.PostFormValue("username"))
	if name == "" || len(name) > 320 {
		a.render(w, r, http.StatusBadRequest, "reset_request", accountView{Title: "reset.request.title", CSRFToken: a.h.csrfToken(w, r),
			Error: "reset.error.missing"})
		return
	}
	switch err := a.reserveForgot(r); {
	case errors.Is(err, store.ErrLocked):
		// Counted by address, not by name: the answer says nothing about
		// which accounts exist.
		a.render(w, r, http.StatusTooManyRequests, "reset_request", accountView{Title: "reset.request.title", CSRFToken: a.h.csrfToken(w, r),
			Error: "reset.error.too_many"})
		return
	case err != nil:
		a.h.log.ErrorContext(r.Context(), "forgot password: count request", "error", err)
		a.h.ErrorPage(w, r, http.StatusServiceUnavailable, "error.unavailable.title", "error.unavailable.message")
		return
	}
	lang := a.localizer(r)
	a.background(r.Context(), "forgot password", func(ctx context.Context) error { return a.sendReset(ctx, lang, name) })
	a.message(w, r, http.StatusOK, "reset.sent.title", forgotAnswer, "/login", "reset.back", a.cfg.LinkTTL)
}

// reserveForgot counts a forgot-password request against its client IP in
// the database-backed attempt rows, so the limit holds across instances;
// store.ErrLocked once the IP has made AccountConfig.ForgotPerIP within
// LinkTTL. Requests are never taken back: each one may send a mail.
func (a *Account) reserveForgot(r *http.Request) error {
	limit := a.cfg.ForgotPerIP
	if limit <= 0 {
		limit = 10
	}
	_, err := a.h.store.ReserveLoginAttempt(r.Context(), a.cfg.LinkTTL,
		store.AttemptKey{Key: "forgot-ip:" + a.h.ClientIP(r), Lock: lockAt(limit, a.cfg.LinkTTL)})
	return err
}

// background runs work after the answer (AccountConfig.Go), detached from
// the request but bounded in time, if one of the mail slots is free.
func (a *Account) background(ctx context.Context, what string, work func(ctx context.Context) error) {
	select {
	case a.mailSlots <- struct{}{}:
	default:
		a.h.log.WarnContext(ctx, what+": too much mail work in flight; nothing sent")
		return
	}
	ctx = context.WithoutCancel(ctx)
	a.cfg.Go(func() {
		defer func() { <-a.mailSlots }()
		ctx, cancel := context.WithTimeout(ctx, mailWorkTimeout)
		defer cancel()
		if err := work(ctx); err != nil {
			a.h.log.WarnContext(ctx, what+": no link sent", "error", err)
		}
	})
}

// sendReset finds the account the person named (as sign-in does: a
// username, else an address exactly one account has) and mails it a link
// in lang, the language of the page it was asked from.
func (a *Account) sendReset(ctx context.Context, lang localizer, name string) error {
	u, err := a.h.auth.findAccount(ctx, name)
	if err != nil {
		return err
	}
	if u == nil || u.Email == "" {
		return nil
	}
	return a.sendLink(ctx, u, lang, store.EmailTokenReset, "/reset-password", "mail.reset")
}

// sendLink makes a link of purpose for u and mails it to u's address, in
// lang: the catalogue's msg+".subject" and msg+".body", whose {0}, {1} and
// {2} are the username, the lifetime and the link.
func (a *Account) sendLink(ctx context.Context, u *store.User, lang localizer, purpose, path, msg string) error {
	token, err := secrets.RandomToken(32)
	if err != nil {
		return err
	}
	et := &store.EmailToken{UserID: u.ID, Purpose: purpose, Email: u.Email, ExpiresAt: a.h.cfg.Now().Add(a.cfg.LinkTTL)}
	if err := a.st.CreateEmailToken(ctx, token, et, a.cfg.LinksPerTTL, a.cfg.LinkTTL); err != nil {
		if errors.Is(err, store.ErrLocked) {
			a.h.log.InfoContext(ctx, "email link not sent: too many recently", "user_id", u.ID, "purpose", purpose)
			return nil
		}
		return err
	}
	link := strings.TrimSuffix(a.cfg.Issuer, "/") + path + "?" + url.Values{"token": {token}}.Encode()
	err = a.cfg.Mailer.Send(ctx, mail.Message{To: u.Email, Subject: lang.T(msg + ".subject"),
		Body: lang.T(msg+".body", u.Username, a.cfg.LinkTTL, link)})
	if err != nil {
		return fmt.Errorf("send %s link: %w", purpose, err)
	}
	a.h.log.InfoContext(ctx, "email link sent", "user_id", u.ID, "purpose", purpose)
	return nil
}

// deadLink is the page of a link that is unknown, used or expired.
// msg is the key of the sentence naming the kind of link.
func (a *Account) deadLink(w http.ResponseWriter, r *http.Request, msg, again, againText string) {
	a.message(w, r, http.StatusBadRequest, "account.dead_link.title", msg, again, againText, a.cfg.LinkTTL)
}

// linkToken reads the token of a link's page: the query on GET, the form
// on POST. Bounded, so that no lookup is made of a huge string.
func linkToken(r *http.Request) string {
	t := r.FormValue("token")
	if len(t) > 128 {
		return ""
	}
	return t
}

func (a *Account) resetPage(w http.ResponseWriter, r *http.Request) {
	token := linkToken(r)
	err := a.st.PeekEmailToken(r.Context(), token, store.EmailTokenReset)
	switch {
	case errors.Is(err, store.ErrNotFound) || token == "":
		a.deadLink(w, r, "reset.dead_link", "/forgot-password", "reset.ask_again")
		return
	case err != nil:
		a.h.fail(w, r, err)
		return
	}
	a.render(w, r, http.StatusOK, "reset", accountView{Title: "reset.title", CSRFToken: a.h.csrfToken(w, r), Token: token})
}

// resetSubmit sets the new password and ends every session and grant of
// the person, in the transaction that uses the link: the link works once,
// and a failure leaves it unused.
func (a *Account) resetSubmit(w http.ResponseWriter, r *http.Request) {
	token := linkToken(r)
	again := func(status int, msg string, fields ...string) {
		v := accountView{Title: "reset.title", CSRFToken: a.h.csrfToken(w, r), Token: token, Error: msg}
		v.ErrorFields = fields
		a.render(w, r, status, "reset", v)
	}
	if !a.h.validCSRF(r) {
		again(http.StatusForbidden, "reset.error.csrf")
		return
	}
	next := r.PostFormValue("new_password")
	if next != r.PostFormValue("confirm_password") {
		again(http.StatusBadRequest, "account.error.mismatch")
		return
	}
	if err := a.cfg.CheckPassword(next); err != nil {
		again(http.StatusBadRequest, a.tr(r, "account.error.password_rule", err.Error()), "new_password")
		return
	}
	if token == "" {
		a.deadLink(w, r, "reset.dead_link", "/forgot-password", "reset.ask_again")
		return
	}
	// Hashed before the transaction: argon2id takes a while, and the
	// transaction holds locks.
	hash, err := a.cfg.HashPassword(next)
	if err != nil {
		a.h.fail(w, r, err)
		return
	}
	var userID string
	err = a.st.InTx(r.Context(), func(ctx context.Context) error {
		et, err := a.st.RedeemEmailToken(ctx, token, store.EmailTokenReset)
		if err != nil {
			return err
		}
		userID = et.UserID
		if err := a.st.SetPasswordHash(ctx, et.UserID, hash); err != nil {
			return err
		}
		// Whoever knew the old password is out: every session, grant and
		// JWT of the person, with their clients' logout tokens.
		return a.st.RevokeSubject(ctx, et.UserID, a.revokeUntil())
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.deadLink(w, r, "reset.dead_link", "/forgot-password", "reset.ask_again")
		return
	case err != nil:
		a.h.fail(w, r, err)
		return
	}
	a.h.log.InfoContext(r.Context(), "password reset", "user_id", userID)
	a.h.setCookie(w, "latchkey_session", "", -1)
	a.message(w, r, http.StatusOK, "reset.done.title", "reset.done.message", "/login", "login.submit")
}

// requestVerification mails a verification link to the signed-in person's
// unverified address.
func (a *Account) requestVerification(w http.ResponseWriter, r *http.Request) {
	s := a.post(w, r)
	if s == nil {
		return
	}
	if s.User.Email == "" || s.User.EmailVerified {
		a.done(w, r, "verify-sent")
		return
	}
	u := s.User
	lang := a.localizer(r)
	a.background(r.Context(), "verify email", func(ctx context.Context) error {
		return a.sendLink(ctx, u, lang, store.EmailTokenVerify, "/verify-email", "mail.verify")
	})
	a.done(w, r, "verify-sent")
}

// verifyPage asks for a click before the link is used: mail scanners fetch
// links, and a GET that used it would spend the person's link.
func (a *Account) verifyPage(w http.ResponseWriter, r *http.Request) {
	token := linkToken(r)
	err := a.st.PeekEmailToken(r.Context(), token, store.EmailTokenVerify)
	switch {
	case errors.Is(err, store.ErrNotFound) || token == "":
		a.deadLink(w, r, "verify.dead_link", AccountPath, "account.link")
		return
	case err != nil:
		a.h.fail(w, r, err)
		return
	}
	a.render(w, r, http.StatusOK, "verify_email", accountView{Title: "verify.title", CSRFToken: a.h.csrfToken(w, r), Token: token})
}

// verifySubmit uses the link and marks the address verified, if it is
// still the one the link was sent to.
func (a *Account) verifySubmit(w http.ResponseWriter, r *http.Request) {
	token := linkToken(r)
	if !a.h.validCSRF(r) {
		a.render(w, r, http.StatusForbidden, "verify_email", accountView{Title: "verify.title", CSRFToken: a.h.csrfToken(w, r),
			Token: token, Error: "verify.error.csrf"})
		return
	}
	err := a.st.InTx(r.Context(), func(ctx context.Context) error {
		et, err := a.st.RedeemEmailToken(ctx, token, store.EmailTokenVerify)
		if err != nil {
			return err
		}
		return a.st.MarkEmailVerified(ctx, et.UserID, et.Email)
	})
	switch {
	case errors.Is(err, store.ErrNotFound) || token == "":
		a.deadLink(w, r, "verify.dead_link", AccountPath, "account.link")
		return
	case err != nil:
		a.h.fail(w, r, err)
		return
	}
	a.message(w, r, http.StatusOK, "verify.done.title", "verify.done.message", AccountPath, "account.link")
}
