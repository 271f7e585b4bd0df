package login

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"image/color"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/boombuler/barcode/qr"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
)

// Second factors (issue 17). A person who enrolled one is signed in by a
// password and then a code: the password page leaves a short-lived signed
// "pending" cookie instead of a session, and the second-factor page starts
// the session once the code is right. A person already signed in with a
// password only (before they enrolled, or without any factor) is asked for
// one when the authorization endpoint needs it (step-up), and the page
// raises their session. A code is checked by verifyFactor; a passkey
// (passkey.go) posts its assertion to the same page in the "credential"
// field instead.

// Paths of the second-factor pages.
const (
	// PathSecondFactor is where a code is asked for and checked.
	PathSecondFactor = "/login/second-factor"
	// PathTOTP is TOTP enrolment for a signed-in person.
	PathTOTP = "/account/totp"
	// PathRecoveryCodes makes new recovery codes.
	PathRecoveryCodes = "/account/recovery-codes"
)

// RFC 8176 authentication method references, as login sessions, ID tokens
// and introspection carry them.
const (
	AMRPassword = "pwd"
	AMROTP      = "otp"
	AMRMFA      = "mfa"
)

// Key purposes of the second-factor pages.
const (
	PurposeMFAPending = "latchkey/v1/mfa-pending"
	PurposeTOTPEnrol  = "latchkey/v1/totp-enrol"
)

const (
	// pendingTTL is how long the person has to type the code after the
	// password.
	pendingTTL = 5 * time.Minute
	// enrolTTL is how long an enrolment page's secret can be confirmed.
	enrolTTL = 15 * time.Minute
	// RecoveryCodeCount is how many recovery codes a person gets.
	RecoveryCodeCount = 10
	// totpPeriod and totpDigits are what every authenticator app does.
	totpPeriod = 30
	totpDigits = otp.DigitsSix
)

var mfaPages = []string{"mfa_verify", "mfa_enrol", "mfa_recovery", "mfa_needed"}

// mfaPage is what the second-factor templates show.
type mfaPage struct {
	// QR is the otpauth URI as an inline SVG, drawn here: no script, no
	// image fetched (the CSP allows neither).
	QR template.HTML
	// URI is the same otpauth URI as a link, for a person enrolling on the
	// phone that holds the authenticator app: it cannot scan its own screen.
	URI template.URL
	// Secret is the TOTP secret in base32 for typing; Sealed carries it
	// through the confirming form, sealed.
	Secret, Sealed string
	// RecoveryCodes are shown once, just after they are made.
	RecoveryCodes []string
	// HasFactor says the person already has a second factor.
	HasFactor bool
	// RecoveryLeft is how many unused recovery codes the person has.
	RecoveryLeft int
	// HasPasskey offers "Use a passkey" on the second-factor page.
	HasPasskey bool
}

// mfaState is the Handler's second-factor machinery.
type mfaState struct {
	sealer      *secrets.Sealer
	pendingKeys [][]byte
	enrolSealer *secrets.Sealer
	throttle    *Throttle
}

func (h *Handler) initMFA() error {
	var err error
	if h.mfa.sealer, err = secrets.NewSealer(h.cfg.SystemSecrets, secrets.PurposeFactorSecret); err != nil {
		return err
	}
	if h.mfa.enrolSealer, err = secrets.NewSealer(h.cfg.SystemSecrets, PurposeTOTPEnrol); err != nil {
		return err
	}
	if h.mfa.pendingKeys, err = h.cfg.SystemSecrets.DeriveKeys(PurposeMFAPending); err != nil {
		return err
	}
	// Wrong codes count like wrong passwords, against the person (their
	// own counter, so that a code guesser does not lock the password
	// and the reverse) and against the IP (shared with passwords: one
	// allowance for guessing anything).
	h.mfa.throttle = NewThrottle(h.store, h.cfg.Throttle)
	h.mfa.throttle.OnLockout = func(counter string) { h.cfg.Metrics.Lockout("mfa", counter) }
	return nil
}

func (h *Handler) registerMFA(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathSecondFactor, h.secondFactorPage)
	mux.HandleFunc("POST "+PathSecondFactor, h.secondFactorSubmit)
	mux.HandleFunc("GET "+PathTOTP, h.totpPage)
	mux.HandleFunc("POST "+PathTOTP, h.totpSubmit)
	mux.HandleFunc("POST "+PathRecoveryCodes, h.recoveryCodesSubmit)
}

// MFAThrottle is the throttle of wrong second-factor codes; tests replace
// its Sleep.
func (h *Handler) MFAThrottle() *Throttle { return h.mfa.throttle }

func sessionAMR(ls *store.LoginSession) []string {
	if ls.AMR == "" {
		return []string{AMRPassword}
	}
	return strings.Fields(ls.AMR)
}

func multiFactor(amr []string) bool { return slices.Contains(amr, AMRMFA) }

// MultiFactor reports whether the person gave a second factor in this
// login session.
func (s *SignIn) MultiFactor() bool { return s != nil && multiFactor(s.AMR) }

// amrWith is the amr of a password and the factor of kind (RFC 8176):
// a TOTP code or a recovery code is a one-time password, "otp", and the
// two together "mfa". A passkey kind adds its case here ("hwk" or "swk").
func amrWith(kind string) []string {
	switch kind {
	case store.FactorTOTP, factorRecovery:
		return []string{AMRPassword, AMROTP, AMRMFA}
	}
	return []string{AMRPassword, AMRMFA}
}

// factorRecovery is what verifyFactor answers for a recovery code.
const factorRecovery = "recovery"

// askSecondFactor shows the second-factor page instead of starting a
// session when the person has a factor: it reports whether it did.
func (h *Handler) askSecondFactor(w http.ResponseWriter, r *http.Request, userID string, p page) (bool, error) {
	fs, err := h.store.ListFactors(r.Context(), userID)
	if err != nil || len(fs) == 0 {
		return false, err
	}
	exp := strconv.FormatInt(h.cfg.Now().Add(pendingTTL).Unix(), 10)
	h.setCookie(w, "latchkey_mfa", userID+"."+exp+"."+sign(h.mfa.pendingKeys[0], userID, exp), int(pendingTTL/time.Second))
	p.Title, p.Error = "mfa.verify.title", ""
	h.offerPasskey(&p, fs)
	h.render(w, r, http.StatusOK, "mfa_verify", p)
	return true, nil
}

// offerPasskey shows "Use a passkey" on a second-factor page when the
// person has one (and passkeys are on); other pages of p offer none.
func (h *Handler) offerPasskey(p *page, fs []store.Factor) {
	p.Passkeys = false
	if h.passkeys != nil && hasPasskey(fs) {
		p.Passkeys = true
		p.MFA = &mfaPage{HasPasskey: true}
	}
}

// pendingUser is the person whose password this browser has just
// verified, waiting for their second factor, or "".
func (h *Handler) pendingUser(r *http.Request) string {
	c, err := r.Cookie(h.cookieName("latchkey_mfa"))
	if err != nil {
		return ""
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 3 || !signedUnderAny(h.mfa.pendingKeys, parts[2], parts[0], parts[1]) {
		return ""
	}
	n, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || !h.cfg.Now().Before(time.Unix(n, 0)) {
		return ""
	}
	return parts[0]
}

// SendToSecondFactor sends a signed-in person to give a second factor (or
// to learn that they must enrol one), then back to rt.URL.
func (h *Handler) SendToSecondFactor(w http.ResponseWriter, r *http.Request, rt ReturnTo) {
	http.Redirect(w, r, h.pageURL(PathSecondFactor, rt), http.StatusSeeOther)
}

// secondFactorPage is GET PathSecondFactor: the code form for a pending
// sign-in or a step-up, or the page that says a factor must be enrolled.
func (h *Handler) secondFactorPage(w http.ResponseWriter, r *http.Request) {
	p := page{Title: "mfa.verify.title", CSRFToken: h.csrfToken(w, r)}
	rt, returning := h.readReturnTo(r.URL.Query().Get)
	if returning {
		p.ReturnTo, p.About, p.ClientName = rt.URL, r.URL.Query().Get(aboutParam), rt.ClientName
	}
	if id := h.pendingUser(r); id != "" {
		fs, err := h.store.ListFactors(r.Context(), id)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		h.offerPasskey(&p, fs)
		h.render(w, r, http.StatusOK, "mfa_verify", p)
		return
	}
	s, err := h.current(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if s == nil {
		if !returning {
			rt = ReturnTo{}
		}
		h.SendToLogin(w, r, rt)
		return
	}
	fs, err := h.store.ListFactors(r.Context(), s.User.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if len(fs) == 0 {
		// No bypass: the application needs a second factor and the
		// person has none. They are told so, and where to set one up.
		p.Title = "mfa.needed.title"
		h.render(w, r, http.StatusForbidden, "mfa_needed", p)
		return
	}
	h.offerPasskey(&p, fs)
	h.render(w, r, http.StatusOK, "mfa_verify", p)
}

// secondFactorSubmit checks a code: for a pending sign-in it starts the
// session, for a signed-in person it raises theirs, and either way sends
// the browser back to the request.
func (h *Handler) secondFactorSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := page{Title: "mfa.verify.title", CSRFToken: h.csrfToken(w, r)}
	rt, returning := h.readReturnTo(r.PostFormValue)
	if returning {
		p.ReturnTo, p.About, p.ClientName = rt.URL, r.PostFormValue(aboutParam), rt.ClientName
	}
	if !h.validCSRF(r) {
		p.Error = "mfa.error.csrf"
		h.render(w, r, http.StatusForbidden, "mfa_verify", p)
		return
	}
	userID := h.pendingUser(r)
	var s *SignIn
	if userID == "" {
		var err error
		if s, err = h.current(r); err != nil {
			h.fail(w, r, err)
			return
		}
		if s == nil {
			h.SendToLogin(w, r, rt)
			return
		}
		userID = s.User.ID
	}
	// A page drawn again after a failure offers the passkey again; a
	// success draws none, and reads no more.
	again := func(status int, msg string) {
		if fs, err := h.store.ListFactors(ctx, userID); err == nil {
			h.offerPasskey(&p, fs)
		}
		p.Error = msg
		h.render(w, r, status, "mfa_verify", p)
	}
	var factorAMR []string
	var ok bool
	var err error
	if r.PostFormValue("credential") != "" {
		r.Body = http.MaxBytesReader(w, r.Body, 2*credentialFormLimit)
		had := []string{AMRPassword}
		if s != nil {
			had = s.AMR
		}
		factorAMR, err = h.secondFactorPasskey(w, r, userID, had)
		if errors.Is(err, errPasskeyRefused) {
			h.log.InfoContext(ctx, "second factor failed: passkey", "user_id", userID, "reason", err.Error())
			err = nil
		}
		ok = factorAMR != nil
	} else {
		var kind string
		kind, ok, err = h.verifyFactor(ctx, userID, h.ClientIP(r), r.PostFormValue("code"))
		// The factor's part: a person signed in by passkey typed no
		// password here.
		factorAMR = slices.DeleteFunc(amrWith(kind), func(m string) bool { return m == AMRPassword })
	}
	switch {
	case errors.Is(err, store.ErrLocked):
		again(http.StatusTooManyRequests, "mfa.error.too_many")
		return
	case err != nil:
		h.fail(w, r, err)
		return
	case !ok:
		h.log.InfoContext(ctx, "second factor failed", "user_id", userID)
		msg := "mfa.error.wrong"
		if r.PostFormValue("credential") != "" {
			msg = "passkey.error.refused"
		}
		again(http.StatusUnauthorized, msg)
		return
	}
	if s == nil {
		// The password was just verified: it and the factor.
		amr := raisedAMR([]string{AMRPassword}, factorAMR)
		h.setCookie(w, "latchkey_mfa", "", -1)
		h.startSession(w, r, userID, amr, rt, returning)
		return
	}
	// What the session had (a password, or a passkey without user
	// verification) and the factor.
	if err := h.store.RaiseLoginSession(ctx, s.LoginSessionID, raisedAMR(s.AMR, factorAMR)); err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.InfoContext(ctx, "second factor", "user_id", userID)
	if !returning {
		h.render(w, r, http.StatusOK, "message", page{Title: "mfa.verified.title", Message: "mfa.verified.message"})
		return
	}
	http.Redirect(w, r, rt.URL, http.StatusSeeOther)
}

// verifyFactor checks code against the person's factors under the
// throttle: a 6-digit code against their TOTP, anything else as a recovery
// code. It returns the kind that matched.
func (h *Handler) verifyFactor(ctx context.Context, userID, ip, code string) (string, bool, error) {
	code = strings.Join(strings.Fields(code), "")
	if code == "" {
		return "", false, nil
	}
	kind, ok, err := h.verifyThrottled(ctx, userID, ip, code)
	// The kind a wrong code was meant as is read from its shape, as
	// checkCode does.
	counted := factorRecovery
	if len(code) == int(totpDigits) && strings.Trim(code, "0123456789") == "" {
		counted = store.FactorTOTP
	}
	switch {
	case errors.Is(err, store.ErrLocked):
		h.cfg.Metrics.MFAVerification(counted, "locked")
	case err != nil:
		h.cfg.Metrics.MFAVerification(counted, "error")
	case !ok:
		h.cfg.Metrics.MFAVerification(counted, "failure")
	default:
		h.cfg.Metrics.MFAVerification(kind, "success")
	}
	return kind, ok, err
}

func (h *Handler) verifyThrottled(ctx context.Context, userID, ip, code string) (string, bool, error) {
	att, err := h.mfa.throttle.Reserve(ctx, "mfa:"+userID, ip)
	if err != nil {
		return "", false, err
	}
	kind, ok, err := h.checkCode(ctx, userID, code)
	switch {
	case err != nil:
		return "", false, errors.Join(err, att.Cancel(ctx))
	case !ok:
		att.Failed(ctx)
		return "", false, nil
	}
	return kind, true, att.Succeeded(ctx)
}

func (h *Handler) checkCode(ctx context.Context, userID, code string) (string, bool, error) {
	if len(code) == int(totpDigits) && strings.Trim(code, "0123456789") == "" {
		fs, err := h.store.ListFactors(ctx, userID)
		if err != nil {
			return "", false, err
		}
		for _, f := range fs {
			if f.Kind != store.FactorTOTP {
				continue
			}
			secret, err := h.mfa.sealer.Open(f.Secret, []byte(f.ID))
			if err != nil {
				return "", false, fmt.Errorf("open totp secret: %w", err)
			}
			step, ok := matchTOTP(string(secret), code, h.cfg.Now())
			if !ok {
				continue
			}
			// Once per time step, across instances: a replayed code, or
			// an older one than the last accepted, loses here.
			err = h.store.AdvanceFactorCounter(ctx, f.ID, step)
			if errors.Is(err, store.ErrNotFound) {
				return "", false, nil
			}
			return store.FactorTOTP, err == nil, err
		}
		return "", false, nil
	}
	err := h.store.ConsumeRecoveryCode(ctx, userID, recoveryHash(userID, code))
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	return factorRecovery, err == nil, err
}

// matchTOTP finds the time step of code within one step of now (RFC 6238
// §5.2: one step of clock drift either way), comparing in constant time.
func matchTOTP(secret, code string, now time.Time) (int64, bool) {
	cur := now.Unix() / totpPeriod
	found, matched := int64(0), 0
	for _, step := range []int64{cur - 1, cur, cur + 1} {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*totpPeriod, 0), totpOpts())
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			found, matched = step, 1
		}
	}
	return found, matched == 1
}

func totpOpts() totp.ValidateOpts {
	return totp.ValidateOpts{Period: totpPeriod, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1}
}

// recoveryAlphabet has no look-alikes (0/o, 1/l/i).
const recoveryAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// newRecoveryCodes makes RecoveryCodeCount codes of 10 characters (about
// 49 bits each: the throttle bounds guessing far below that) shown as
// "xxxxx-xxxxx", and their hashes.
func newRecoveryCodes(userID string) ([]string, []string, error) {
	codes, hashes := make([]string, RecoveryCodeCount), make([]string, RecoveryCodeCount)
	for i := range codes {
		b := make([]byte, 10)
		for j := range b {
			// Rejection sampling keeps the characters uniform.
			for {
				var one [1]byte
				if _, err := rand.Read(one[:]); err != nil {
					return nil, nil, err
				}
				if int(one[0]) < 256/len(recoveryAlphabet)*len(recoveryAlphabet) {
					b[j] = recoveryAlphabet[int(one[0])%len(recoveryAlphabet)]
					break
				}
			}
		}
		codes[i] = string(b[:5]) + "-" + string(b[5:])
		hashes[i] = recoveryHash(userID, codes[i])
	}
	return codes, hashes, nil
}

// recoveryHash is how a recovery code is stored: SHA-256 over the person
// and the code as typed without case, dashes or spaces. The codes are
// random, so a fast hash is enough.
func recoveryHash(userID, code string) string {
	code = strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(code))
	return secrets.SignatureKey(userID + "\x00" + code)
}

// totpPage is GET PathTOTP: a new secret as a QR code and as text, and
// the form that confirms it with a first code.
func (h *Handler) totpPage(w http.ResponseWriter, r *http.Request) {
	s, fs, ok := h.enrolling(w, r)
	if !ok {
		return
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: h.product, AccountName: s.User.Username,
		Period: totpPeriod, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p, err := h.enrolPage(w, r, s, fs, key)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "mfa_enrol", p)
}

func (h *Handler) enrolPage(w http.ResponseWriter, r *http.Request, s *SignIn, fs []store.Factor, key *otp.Key) (page, error) {
	exp := strconv.FormatInt(h.cfg.Now().Add(enrolTTL).Unix(), 10)
	sealed, err := h.mfa.enrolSealer.Seal([]byte(exp+"."+key.Secret()), []byte(s.User.ID))
	if err != nil {
		return page{}, err
	}
	qrSVG, err := qrCode(key.URL())
	if err != nil {
		return page{}, err
	}
	left, err := h.store.CountRecoveryCodes(r.Context(), s.User.ID)
	if err != nil {
		return page{}, err
	}
	return page{Title: "mfa.enrol.title", CSRFToken: h.csrfToken(w, r), MFA: &mfaPage{
		// key.URL is built here from base32 and the product name, both
		// escaped by url.Values: the otpauth scheme html/template would
		// otherwise refuse is safe.
		QR: qrSVG, URI: template.URL(key.URL()), Secret: key.Secret(), Sealed: base64.RawURLEncoding.EncodeToString(sealed),
		HasFactor: len(fs) > 0, RecoveryLeft: left,
	}}, nil
}

// enrolling finds the signed-in person who may change their factors: one
// who has none yet, or who gave one in this session (a stolen
// password-only session cannot swap the factor out). Otherwise it sends
// the browser to sign in or to give the factor, and reports false.
func (h *Handler) enrolling(w http.ResponseWriter, r *http.Request) (*SignIn, []store.Factor, bool) {
	return h.enrollingFor(w, r, PathTOTP)
}

// enrollingFor is enrolling for a page that comes back to back.
func (h *Handler) enrollingFor(w http.ResponseWriter, r *http.Request, back string) (*SignIn, []store.Factor, bool) {
	s, err := h.current(r)
	if err != nil {
		h.fail(w, r, err)
		return nil, nil, false
	}
	if s == nil {
		h.SendToLogin(w, r, ReturnTo{URL: back})
		return nil, nil, false
	}
	fs, err := h.store.ListFactors(r.Context(), s.User.ID)
	if err != nil {
		h.fail(w, r, err)
		return nil, nil, false
	}
	if len(fs) > 0 && !s.MultiFactor() {
		h.SendToSecondFactor(w, r, ReturnTo{URL: back})
		return nil, nil, false
	}
	return s, fs, true
}

// totpSubmit confirms an enrolment with a first code: the factor is
// stored (its secret sealed), the session counts as two-factor, and the
// recovery codes are shown once.
func (h *Handler) totpSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !h.validCSRF(r) {
		h.ErrorPage(w, r, http.StatusForbidden, "error.form_expired.title", "mfa.error.enrol_expired_form")
		return
	}
	s, fs, ok := h.enrolling(w, r)
	if !ok {
		return
	}
	sealed, err := base64.RawURLEncoding.DecodeString(r.PostFormValue("secret"))
	var plain []byte
	if err == nil {
		plain, err = h.mfa.enrolSealer.Open(sealed, []byte(s.User.ID))
	}
	exp, secret, found := strings.Cut(string(plain), ".")
	n, perr := strconv.ParseInt(exp, 10, 64)
	if err != nil || !found || perr != nil || !h.cfg.Now().Before(time.Unix(n, 0)) {
		h.ErrorPage(w, r, http.StatusBadRequest, "mfa.error.setup_expired.title", "mfa.error.setup_expired")
		return
	}
	code := strings.Join(strings.Fields(r.PostFormValue("code")), "")
	att, err := h.mfa.throttle.Reserve(ctx, "mfa:"+s.User.ID, h.ClientIP(r))
	if errors.Is(err, store.ErrLocked) {
		h.ErrorPage(w, r, http.StatusTooManyRequests, "mfa.error.too_many.title", "mfa.error.wait")
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	step, ok := matchTOTP(secret, code, h.cfg.Now())
	if !ok {
		att.Failed(ctx)
		k, kerr := totpKey(h.product, secret, s.User.Username)
		if kerr != nil {
			h.fail(w, r, kerr)
			return
		}
		p, perr := h.enrolPage(w, r, s, fs, k)
		if perr != nil {
			h.fail(w, r, perr)
			return
		}
		p.Error = "mfa.error.wrong_enrol"
		h.render(w, r, http.StatusUnauthorized, "mfa_enrol", p)
		return
	}
	if err := att.Succeeded(ctx); err != nil {
		h.fail(w, r, err)
		return
	}
	id, err := secrets.NewID()
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sealedSecret, err := h.mfa.sealer.Seal([]byte(secret), []byte(id))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	codes, hashes, err := newRecoveryCodes(s.User.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// The confirming code is spent: counter starts at its step, so it
	// cannot sign anyone in afterwards.
	f := &store.Factor{ID: id, UserID: s.User.ID, Kind: store.FactorTOTP, Secret: sealedSecret, Counter: step}
	if err := h.store.EnrollFactor(ctx, f, hashes); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.store.RaiseLoginSession(ctx, s.LoginSessionID, amrWith(store.FactorTOTP)); err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.InfoContext(ctx, "totp enrolled", "user_id", s.User.ID)
	h.render(w, r, http.StatusOK, "mfa_recovery", page{Title: "mfa.recovery.title", MFA: &mfaPage{RecoveryCodes: codes}})
}

// recoveryCodesSubmit replaces the person's recovery codes and shows the
// new ones once.
func (h *Handler) recoveryCodesSubmit(w http.ResponseWriter, r *http.Request) {
	if !h.validCSRF(r) {
		h.ErrorPage(w, r, http.StatusForbidden, "error.form_expired.title", "mfa.error.enrol_expired_form")
		return
	}
	s, fs, ok := h.enrolling(w, r)
	if !ok {
		return
	}
	if len(fs) == 0 {
		h.ErrorPage(w, r, http.StatusBadRequest, "mfa.error.no_factor.title", "mfa.error.no_factor")
		return
	}
	codes, hashes, err := newRecoveryCodes(s.User.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.store.ReplaceRecoveryCodes(r.Context(), s.User.ID, hashes); err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "mfa_recovery", page{Title: "mfa.recovery.title", MFA: &mfaPage{RecoveryCodes: codes}})
}

// totpKey is the key of an enrolment page shown again (after a wrong
// code): the same secret, so the app's entry still matches.
func totpKey(issuer, secret, account string) (*otp.Key, error) {
	u := url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + issuer + ":" + account, RawQuery: url.Values{
		"secret": {secret}, "issuer": {issuer}, "period": {strconv.Itoa(totpPeriod)},
		"digits": {"6"}, "algorithm": {"SHA1"},
	}.Encode()}
	return otp.NewKeyFromURL(u.String())
}

// qrCode draws content as an SVG QR code: one path of dark modules, with a
// quiet zone of four modules (ISO/IEC 18004).
func qrCode(content string) (template.HTML, error) {
	code, err := qr.Encode(content, qr.M, qr.Auto)
	if err != nil {
		return "", err
	}
	n := code.Bounds().Dx()
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="qr" viewBox="-4 -4 %d %d" width="232" height="232" role="img" aria-label="QR code for your authenticator app" shape-rendering="crispEdges"><rect x="-4" y="-4" width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, n+8, n+8, n+8, n+8)
	for y := range n {
		for x := range n {
			if isDark(code.At(x, y)) {
				fmt.Fprintf(&b, "M%d %dh1v1h-1z", x, y)
			}
		}
	}
	b.WriteString(`"/></svg>`)
	// Only numbers and fixed markup: nothing of content reaches the HTML.
	return template.HTML(b.String()), nil //nolint:gosec
}

func isDark(c color.Color) bool {
	r, g, bl, _ := c.RGBA()
	return r+g+bl < 3*0x8000
}
