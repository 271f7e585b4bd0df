package login

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
)

// Passkeys (WebAuthn Level 2, issue 17). A passkey is a second factor of
// kind store.FactorWebAuthn and, being discoverable, also a way to sign in
// without a username. go-webauthn does the ceremonies: it checks the
// challenge, the origin (the issuer's), the RP ID (the issuer's host), the
// signature and the flags; we keep the credential records, the challenges
// (in the database, bound to the browser by a cookie, used once) and the
// signature counter (UsePasskey's conditional UPDATE).
//
// The pages stay usable without JavaScript; the one script,
// /static/passkey.js, fetches options from PathPasskeyOptions or
// PathPasskeyEnrolOptions, calls navigator.credentials and submits the
// result as the "credential" field of an ordinary form with a CSRF token.

// Paths of the passkey endpoints.
const (
	// PathPasskeyOptions answers the options of a sign-in (purpose
	// "login", discoverable) or of a second factor ("second-factor").
	PathPasskeyOptions = "/login/passkey/options"
	// PathPasskeyLogin signs in with a discoverable passkey.
	PathPasskeyLogin = "/login/passkey"
	// PathPasskeys enrols a passkey (POST) for the signed-in person.
	PathPasskeys = "/account/passkeys"
	// PathPasskeyEnrolOptions answers the options of an enrolment.
	PathPasskeyEnrolOptions = "/account/passkeys/options"
	// PathPasskeyRemove removes one of the person's passkeys.
	PathPasskeyRemove = "/account/passkeys/remove"
	// PathPasskeyScript is the one script of the pages.
	PathPasskeyScript = "/static/passkey.js"
)

// RFC 8176 amr values of a passkey: proof of possession of a key the
// authenticator keeps to itself ("hwk"), or of one that may be synced
// between devices ("swk": the credential is backup-eligible).
const (
	AMRHardwareKey = "hwk"
	AMRSoftwareKey = "swk"
)

// Purposes of a challenge: one ceremony's challenge cannot finish another.
const (
	purposePasskeyLogin  = "login"
	purposeSecondFactor  = "second-factor"
	purposePasskeyEnrol  = "enrol"
	challengeTTL         = 5 * time.Minute
	maxPasskeyNameLength = 64
	credentialFormLimit  = 64 << 10
)

// errPasskeyRefused is any assertion or attestation we do not accept; the
// reason goes to the log, the person sees one message.
var errPasskeyRefused = errors.New("passkey refused")

// PasskeyStore is what passkeys need of persistence besides FactorStore.
type PasskeyStore interface {
	// FindFactorByCredentialID finds a passkey by its credential id;
	// store.ErrNotFound if none.
	FindFactorByCredentialID(ctx context.Context, credentialID []byte) (*store.Factor, error)
	// UsePasskey records a use; a counter that does not move forward is
	// store.ErrNotFound.
	UsePasskey(ctx context.Context, id string, signCount uint32, backupState bool) error
	SaveWebAuthnChallenge(ctx context.Context, c *store.WebAuthnChallenge) error
	// TakeWebAuthnChallenge returns and deletes a live challenge; else
	// store.ErrNotFound.
	TakeWebAuthnChallenge(ctx context.Context, id string) (*store.WebAuthnChallenge, error)
	DeleteFactors(ctx context.Context, userID, factorID string) error
}

// initPasskeys sets up go-webauthn for the issuer, or leaves passkeys off
// (with a warning) when the issuer's host cannot be an RP ID: browsers
// refuse IP addresses there.
func (h *Handler) initPasskeys() error {
	if h.cfg.Issuer == "" {
		return nil
	}
	u, err := url.Parse(h.cfg.Issuer)
	if err != nil || u.Host == "" {
		return fmt.Errorf("login: issuer %q is not a URL", h.cfg.Issuer)
	}
	if net.ParseIP(u.Hostname()) != nil {
		h.log.Warn("passkeys are off: the issuer's host is an IP address, which cannot be a WebAuthn RP ID; use a host name (localhost for development)", "issuer", h.cfg.Issuer)
		return nil
	}
	product := h.cfg.Theme.ProductName
	if product == "" {
		product = DefaultProductName
	}
	h.passkeys, err = webauthn.New(&webauthn.Config{
		RPID:          u.Hostname(),
		RPDisplayName: product,
		RPOrigins:     []string{u.Scheme + "://" + u.Host},
		// A passkey must be discoverable: it is how a person signs in
		// without typing a username.
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementRequired, RequireResidentKey: protocol.ResidentKeyRequired(),
			UserVerification: protocol.VerificationPreferred,
		},
		AttestationPreference: protocol.PreferNoAttestation,
		// Timeouts are enforced by the challenge's expiry in the database,
		// on the store's clock.
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Timeout: challengeTTL, TimeoutUVD: challengeTTL},
			Registration: webauthn.TimeoutConfig{Timeout: challengeTTL, TimeoutUVD: challengeTTL},
		},
		// We ask for no extension and read none; an output a browser adds
		// unasked changes nothing here.
		ExtensionsUnsolicitedOutputPolicy: protocol.UnsolicitedOutputPolicyIgnore,
	})
	if err != nil {
		return fmt.Errorf("login: passkeys for issuer %q: %w", h.cfg.Issuer, err)
	}
	return nil
}

func (h *Handler) registerPasskeys(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathPasskeyScript, h.serveScript)
	if h.passkeys == nil {
		return
	}
	mux.HandleFunc("POST "+PathPasskeyOptions, h.passkeyOptions)
	mux.HandleFunc("POST "+PathPasskeyLogin, h.passkeyLogin)
	mux.HandleFunc("POST "+PathPasskeyEnrolOptions, h.passkeyEnrolOptions)
	mux.HandleFunc("POST "+PathPasskeys, h.passkeyEnrol)
	mux.HandleFunc("POST "+PathPasskeyRemove, h.passkeyRemove)
}

// PasskeysOn reports whether the pages offer passkeys.
func (h *Handler) PasskeysOn() bool { return h.passkeys != nil }

// passkeyUser is a person as go-webauthn sees them: the user handle is
// their id (random, never shown), the credentials their passkeys.
type passkeyUser struct {
	u     *store.User
	creds []webauthn.Credential
	// factors are the passkeys' rows, in creds' order.
	factors []store.Factor
}

func (p *passkeyUser) WebAuthnID() []byte   { return []byte(p.u.ID) }
func (p *passkeyUser) WebAuthnName() string { return p.u.Username }
func (p *passkeyUser) WebAuthnDisplayName() string {
	if p.u.Name != "" {
		return p.u.Name
	}
	return p.u.Username
}
func (p *passkeyUser) WebAuthnCredentials() []webauthn.Credential { return p.creds }

func (p *passkeyUser) factor(credentialID []byte) *store.Factor {
	for i := range p.factors {
		if bytes.Equal(p.factors[i].CredentialID, credentialID) {
			return &p.factors[i]
		}
	}
	return nil
}

var _ webauthn.User = (*passkeyUser)(nil)

func (h *Handler) loadPasskeyUser(ctx context.Context, userID string) (*passkeyUser, error) {
	u, err := h.store.FindUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	fs, err := h.store.ListFactors(ctx, userID)
	if err != nil {
		return nil, err
	}
	p := &passkeyUser{u: u}
	for _, f := range fs {
		if f.Kind != store.FactorWebAuthn {
			continue
		}
		p.factors = append(p.factors, f)
		p.creds = append(p.creds, credentialOf(f))
	}
	return p, nil
}

// credentialOf is the credential record of a passkey row.
func credentialOf(f store.Factor) webauthn.Credential {
	var ts []protocol.AuthenticatorTransport
	for _, t := range strings.Fields(f.Transports) {
		ts = append(ts, protocol.AuthenticatorTransport(t))
	}
	return webauthn.Credential{
		ID: f.CredentialID, PublicKey: f.PublicKey, AttestationFormat: f.AttestationFormat, Transport: ts,
		Flags:         webauthn.CredentialFlags{UserPresent: true, BackupEligible: f.BackupEligible, BackupState: f.BackupState},
		Authenticator: webauthn.Authenticator{AAGUID: f.AAGUID, SignCount: uint32(f.Counter)},
	}
}

// hasPasskey reports whether fs has a passkey.
func hasPasskey(fs []store.Factor) bool {
	return slices.ContainsFunc(fs, func(f store.Factor) bool { return f.Kind == store.FactorWebAuthn })
}

// passkeyAMR is the amr of a passkey used alone (RFC 8176): hwk or swk,
// and mfa when the authenticator verified the person (a PIN or a
// biometric besides possession of the key).
func passkeyAMR(backupEligible, userVerified bool) []string {
	key := AMRHardwareKey
	if backupEligible {
		key = AMRSoftwareKey
	}
	if userVerified {
		return []string{key, AMRMFA}
	}
	return []string{key}
}

// raisedAMR is the amr of a session whose person gave factor amr on top
// of what the session had: both, and mfa.
func raisedAMR(session, factor []string) []string {
	out := slices.Clone(session)
	for _, m := range append(slices.Clone(factor), AMRMFA) {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// saveChallenge keeps the server's half of a ceremony for this browser.
func (h *Handler) saveChallenge(w http.ResponseWriter, r *http.Request, purpose, userID string, sd *webauthn.SessionData) error {
	token, err := secrets.RandomToken(32)
	if err != nil {
		return err
	}
	// Expiry is the row's, on the store's clock.
	sd.Expires = time.Time{}
	data, err := json.Marshal(sd)
	if err != nil {
		return err
	}
	c := &store.WebAuthnChallenge{ID: secrets.SignatureKey(token), Purpose: purpose, UserID: userID, Data: string(data),
		ExpiresAt: h.cfg.Now().Add(challengeTTL)}
	if err := h.store.SaveWebAuthnChallenge(r.Context(), c); err != nil {
		return err
	}
	h.setCookie(w, "latchkey_webauthn", token, int(challengeTTL/time.Second))
	return nil
}

// takeChallenge uses up this browser's challenge of purpose for userID
// ("" for a discoverable sign-in). None, another's, or of another purpose
// is errPasskeyRefused.
func (h *Handler) takeChallenge(w http.ResponseWriter, r *http.Request, purpose, userID string) (*webauthn.SessionData, error) {
	c, err := r.Cookie(h.cookieName("latchkey_webauthn"))
	if err != nil || c.Value == "" {
		return nil, fmt.Errorf("%w: no challenge cookie", errPasskeyRefused)
	}
	h.setCookie(w, "latchkey_webauthn", "", -1)
	ch, err := h.store.TakeWebAuthnChallenge(r.Context(), secrets.SignatureKey(c.Value))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("%w: challenge unknown, used or expired", errPasskeyRefused)
	case err != nil:
		return nil, err
	case ch.Purpose != purpose || ch.UserID != userID:
		return nil, fmt.Errorf("%w: challenge of another ceremony", errPasskeyRefused)
	}
	var sd webauthn.SessionData
	if err := json.Unmarshal([]byte(ch.Data), &sd); err != nil {
		return nil, fmt.Errorf("read webauthn challenge: %w", err)
	}
	return &sd, nil
}

// writeJSON answers the script.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func jsonError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code})
}

// passkeyOptions is POST PathPasskeyOptions: the options of a
// discoverable sign-in, or of a second factor for the person whose
// password this browser just verified (or who is signed in).
func (h *Handler) passkeyOptions(w http.ResponseWriter, r *http.Request) {
	if !h.validCSRF(r) {
		jsonError(w, http.StatusForbidden, "csrf")
		return
	}
	var (
		assertion *protocol.CredentialAssertion
		sd        *webauthn.SessionData
		err       error
		userID    string
		purpose   = r.PostFormValue("purpose")
	)
	switch purpose {
	case purposePasskeyLogin:
		assertion, sd, err = h.passkeys.BeginDiscoverableLogin()
	case purposeSecondFactor:
		if userID, err = h.secondFactorUser(r); err != nil || userID == "" {
			break
		}
		var p *passkeyUser
		if p, err = h.loadPasskeyUser(r.Context(), userID); err != nil {
			break
		}
		if len(p.creds) == 0 {
			jsonError(w, http.StatusBadRequest, "no_passkey")
			return
		}
		assertion, sd, err = h.passkeys.BeginLogin(p)
	default:
		jsonError(w, http.StatusBadRequest, "purpose")
		return
	}
	switch {
	case err != nil:
		h.log.ErrorContext(r.Context(), "passkey options", "error", err)
		jsonError(w, http.StatusInternalServerError, "server_error")
		return
	case assertion == nil:
		jsonError(w, http.StatusUnauthorized, "not_signed_in")
		return
	}
	if err := h.saveChallenge(w, r, purpose, userID, sd); err != nil {
		h.log.ErrorContext(r.Context(), "passkey options", "error", err)
		jsonError(w, http.StatusInternalServerError, "server_error")
		return
	}
	writeJSON(w, http.StatusOK, assertion)
}

// secondFactorUser is whose second factor the second-factor page asks
// for: the person whose password was just verified, or the signed-in one.
func (h *Handler) secondFactorUser(r *http.Request) (string, error) {
	if id := h.pendingUser(r); id != "" {
		return id, nil
	}
	s, err := h.current(r)
	if err != nil || s == nil {
		return "", err
	}
	return s.User.ID, nil
}

// parseAssertion reads the form's credential field.
func parseAssertion(r *http.Request) (*protocol.ParsedCredentialAssertionData, error) {
	raw := r.PostFormValue("credential")
	if raw == "" || len(raw) > credentialFormLimit {
		return nil, fmt.Errorf("%w: no credential", errPasskeyRefused)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errPasskeyRefused, err)
	}
	return parsed, nil
}

// verifyAssertion checks an assertion of a passkey of p against sd under
// the factor throttle and records its use. It returns the passkey and
// whether the authenticator verified the person; errPasskeyRefused for
// anything wrong with the assertion, store.ErrLocked when throttled.
func (h *Handler) verifyAssertion(ctx context.Context, p *passkeyUser, sd *webauthn.SessionData, parsed *protocol.ParsedCredentialAssertionData, ip string, discoverable bool) (*store.Factor, bool, error) {
	// One allowance with TOTP codes: guessing either counts.
	att, err := h.mfa.throttle.Reserve(ctx, "mfa:"+p.u.ID, ip)
	switch {
	case errors.Is(err, store.ErrLocked):
		h.cfg.Metrics.MFAVerification("passkey", "locked")
		return nil, false, err
	case err != nil:
		h.cfg.Metrics.MFAVerification("passkey", "error")
		return nil, false, err
	}
	f, uv, err := h.checkAssertion(ctx, p, sd, parsed, discoverable)
	switch {
	case errors.Is(err, errPasskeyRefused):
		h.cfg.Metrics.MFAVerification("passkey", "failure")
		att.Failed(ctx)
		return nil, false, err
	case err != nil:
		h.cfg.Metrics.MFAVerification("passkey", "error")
		return nil, false, errors.Join(err, att.Cancel(ctx))
	}
	h.cfg.Metrics.MFAVerification("passkey", "success")
	return f, uv, att.Succeeded(ctx)
}

func (h *Handler) checkAssertion(ctx context.Context, p *passkeyUser, sd *webauthn.SessionData, parsed *protocol.ParsedCredentialAssertionData, discoverable bool) (*store.Factor, bool, error) {
	var (
		cred *webauthn.Credential
		err  error
	)
	if discoverable {
		cred, err = h.passkeys.ValidateDiscoverableLogin(func(_, userHandle []byte) (webauthn.User, error) {
			if !bytes.Equal(userHandle, p.WebAuthnID()) {
				return nil, errors.New("user handle is not the passkey's owner")
			}
			return p, nil
		}, *sd, parsed)
	} else {
		cred, err = h.passkeys.ValidateLogin(p, *sd, parsed)
	}
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", errPasskeyRefused, describeWebAuthnError(err))
	}
	f := p.factor(cred.ID)
	if f == nil {
		return nil, false, fmt.Errorf("%w: credential is not the person's", errPasskeyRefused)
	}
	if cred.Authenticator.CloneWarning {
		h.log.WarnContext(ctx, "passkey refused: signature counter did not move forward (a cloned authenticator?)",
			"user_id", p.u.ID, "factor_id", f.ID, "stored", f.Counter, "presented", parsed.Response.AuthenticatorData.Counter)
		return nil, false, fmt.Errorf("%w: signature counter went backwards", errPasskeyRefused)
	}
	err = h.store.UsePasskey(ctx, f.ID, cred.Authenticator.SignCount, cred.Flags.BackupState)
	if errors.Is(err, store.ErrNotFound) {
		// Another instance accepted the same or a later counter meanwhile,
		// or the passkey was removed.
		h.log.WarnContext(ctx, "passkey refused: signature counter already used", "user_id", p.u.ID, "factor_id", f.ID)
		return nil, false, fmt.Errorf("%w: counter already used", errPasskeyRefused)
	}
	if err != nil {
		return nil, false, err
	}
	// The flag of this assertion, covered by its signature; the record's
	// UV flag is latched and says nothing of this use.
	return f, parsed.Response.AuthenticatorData.Flags.HasUserVerified(), nil
}

// describeWebAuthnError keeps go-webauthn's details for the log.
func describeWebAuthnError(err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.DevInfo != "" {
		return fmt.Errorf("%w (%s)", err, pe.DevInfo)
	}
	return err
}

// passkeyLogin is POST PathPasskeyLogin: a discoverable passkey signs the
// browser in, with no username and no password.
func (h *Handler) passkeyLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 2*credentialFormLimit)
	ctx := r.Context()
	p, rt, returning, ok := h.postedLogin(w, r)
	if !ok {
		return
	}
	userID, amr, err := h.discoverablePasskey(w, r)
	switch {
	case errors.Is(err, store.ErrLocked):
		p.Error = "login.error.locked"
		h.render(w, r, http.StatusTooManyRequests, "login", p)
		return
	case errors.Is(err, errPasskeyRefused):
		h.log.InfoContext(ctx, "passkey sign-in refused", "ip", h.ClientIP(r), "reason", err.Error())
		p.Error = "passkey.error.refused"
		h.render(w, r, http.StatusUnauthorized, "login", p)
		return
	case err != nil:
		h.fail(w, r, err)
		return
	}
	h.startSession(w, r, userID, amr, rt, returning)
}

func (h *Handler) discoverablePasskey(w http.ResponseWriter, r *http.Request) (string, []string, error) {
	ctx := r.Context()
	parsed, err := parseAssertion(r)
	if err != nil {
		return "", nil, err
	}
	sd, err := h.takeChallenge(w, r, purposePasskeyLogin, "")
	if err != nil {
		return "", nil, err
	}
	f, err := h.store.FindFactorByCredentialID(ctx, parsed.RawID)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, fmt.Errorf("%w: unknown credential", errPasskeyRefused)
	}
	if err != nil {
		return "", nil, err
	}
	pu, err := h.loadPasskeyUser(ctx, f.UserID)
	if err != nil {
		return "", nil, err
	}
	used, uv, err := h.verifyAssertion(ctx, pu, sd, parsed, h.ClientIP(r), true)
	if err != nil {
		return "", nil, err
	}
	return pu.u.ID, passkeyAMR(used.BackupEligible, uv), nil
}

// secondFactorPasskey checks a passkey given on the second-factor page
// for userID: it must be one of theirs, answer this browser's challenge
// for them, and pass go-webauthn. It returns the factor's amr (without
// mfa, which the caller adds). sessionAMR is what the person already
// gave: after a password, possession of the key is the second factor,
// verified or not; after a passkey without user verification (a session
// of one factor), a key again counts only with user verification.
func (h *Handler) secondFactorPasskey(w http.ResponseWriter, r *http.Request, userID string, sessionAMR []string) ([]string, error) {
	if h.passkeys == nil {
		return nil, fmt.Errorf("%w: passkeys are off", errPasskeyRefused)
	}
	parsed, err := parseAssertion(r)
	if err != nil {
		return nil, err
	}
	sd, err := h.takeChallenge(w, r, purposeSecondFactor, userID)
	if err != nil {
		return nil, err
	}
	pu, err := h.loadPasskeyUser(r.Context(), userID)
	if err != nil {
		return nil, err
	}
	f, uv, err := h.verifyAssertion(r.Context(), pu, sd, parsed, h.ClientIP(r), false)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(sessionAMR, AMRPassword) && !uv {
		return nil, fmt.Errorf("%w: a passkey session stepped up by a passkey without user verification", errPasskeyRefused)
	}
	return passkeyAMR(f.BackupEligible, false), nil
}

// withPasskeys lets page p offer passkeys: their script and its CSP.
func (h *Handler) withPasskeys(p *page) {
	if h.passkeys != nil {
		p.Passkeys = true
	}
}

// passkeyEnrolOptions is POST PathPasskeyEnrolOptions: the options that
// create a passkey for the signed-in person.
func (h *Handler) passkeyEnrolOptions(w http.ResponseWriter, r *http.Request) {
	if !h.validCSRF(r) {
		jsonError(w, http.StatusForbidden, "csrf")
		return
	}
	s, code := h.mayChangeFactors(r)
	if s == nil {
		jsonError(w, code, "not_allowed")
		return
	}
	pu, err := h.loadPasskeyUser(r.Context(), s.User.ID)
	if err != nil {
		h.log.ErrorContext(r.Context(), "passkey enrol options", "error", err)
		jsonError(w, http.StatusInternalServerError, "server_error")
		return
	}
	creation, sd, err := h.passkeys.BeginRegistration(pu,
		// The same authenticator twice would be one factor counted twice.
		webauthn.WithExclusions(webauthn.Credentials(pu.creds).CredentialDescriptors()),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired))
	if err == nil {
		err = h.saveChallenge(w, r, purposePasskeyEnrol, s.User.ID, sd)
	}
	if err != nil {
		h.log.ErrorContext(r.Context(), "passkey enrol options", "error", err)
		jsonError(w, http.StatusInternalServerError, "server_error")
		return
	}
	writeJSON(w, http.StatusOK, creation)
}

// mayChangeFactors is enrolling for the script's requests: the person, or
// nil and the status to answer.
func (h *Handler) mayChangeFactors(r *http.Request) (*SignIn, int) {
	s, err := h.current(r)
	if err != nil {
		return nil, http.StatusInternalServerError
	}
	if s == nil {
		return nil, http.StatusUnauthorized
	}
	fs, err := h.store.ListFactors(r.Context(), s.User.ID)
	if err != nil {
		return nil, http.StatusInternalServerError
	}
	if len(fs) > 0 && !s.MultiFactor() {
		return nil, http.StatusForbidden
	}
	return s, 0
}

// passkeyEnrol is POST PathPasskeys: the new credential is checked against
// this browser's enrolment challenge (origin, RP ID, resident key) and
// stored; the session counts as two-factor, as after a TOTP enrolment.
func (h *Handler) passkeyEnrol(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 2*credentialFormLimit)
	ctx := r.Context()
	if !h.validCSRF(r) {
		h.ErrorPage(w, r, http.StatusForbidden, "error.form_expired.title", "account.error.csrf")
		return
	}
	s, _, ok := h.enrollingFor(w, r, AccountPath)
	if !ok {
		return
	}
	f, err := h.createPasskey(w, r, s)
	if errors.Is(err, errPasskeyRefused) {
		h.log.InfoContext(ctx, "passkey enrolment refused", "user_id", s.User.ID, "reason", err.Error())
		http.Redirect(w, r, AccountPath+"?done=passkey-failed", http.StatusSeeOther)
		return
	}
	if err == nil {
		err = h.store.EnrollFactor(ctx, f, nil)
	}
	if errors.Is(err, store.ErrAlreadyExists) {
		http.Redirect(w, r, AccountPath+"?done=passkey-failed", http.StatusSeeOther)
		return
	}
	if err == nil {
		err = h.store.RaiseLoginSession(ctx, s.LoginSessionID, raisedAMR(s.AMR, passkeyAMR(f.BackupEligible, false)))
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.InfoContext(ctx, "passkey enrolled", "user_id", s.User.ID, "factor_id", f.ID)
	http.Redirect(w, r, AccountPath+"?done=passkey", http.StatusSeeOther)
}

func (h *Handler) createPasskey(w http.ResponseWriter, r *http.Request, s *SignIn) (*store.Factor, error) {
	raw := r.PostFormValue("credential")
	if raw == "" || len(raw) > credentialFormLimit {
		return nil, fmt.Errorf("%w: no credential", errPasskeyRefused)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errPasskeyRefused, describeWebAuthnError(err))
	}
	sd, err := h.takeChallenge(w, r, purposePasskeyEnrol, s.User.ID)
	if err != nil {
		return nil, err
	}
	pu, err := h.loadPasskeyUser(r.Context(), s.User.ID)
	if err != nil {
		return nil, err
	}
	cred, err := h.passkeys.CreateCredential(pu, *sd, parsed)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errPasskeyRefused, describeWebAuthnError(err))
	}
	id, err := secrets.NewID()
	if err != nil {
		return nil, err
	}
	ts := make([]string, 0, len(cred.Transport))
	for _, t := range cred.Transport {
		ts = append(ts, string(t))
	}
	return &store.Factor{ID: id, UserID: s.User.ID, Kind: store.FactorWebAuthn, CredentialID: cred.ID, PublicKey: cred.PublicKey,
		AAGUID: cred.Authenticator.AAGUID, Transports: strings.Join(ts, " "), AttestationFormat: cred.AttestationFormat,
		BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState, Counter: int64(cred.Authenticator.SignCount),
		Name: passkeyName(r.PostFormValue("name"))}, nil
}

// passkeyName is the name a person gave, one line and not too long.
func passkeyName(name string) string {
	name = strings.Join(strings.Fields(name), " ")
	if name == "" {
		return "Passkey"
	}
	return truncateUTF8(name, maxPasskeyNameLength)
}

// passkeyRemove is POST PathPasskeyRemove: the same session rules as
// enrolment (a password-only session of a person with factors cannot
// remove them), and only the person's own passkeys.
func (h *Handler) passkeyRemove(w http.ResponseWriter, r *http.Request) {
	if !h.validCSRF(r) {
		h.ErrorPage(w, r, http.StatusForbidden, "error.form_expired.title", "account.error.csrf")
		return
	}
	s, fs, ok := h.enrollingFor(w, r, AccountPath)
	if !ok {
		return
	}
	id := r.PostFormValue("id")
	if !slices.ContainsFunc(fs, func(f store.Factor) bool { return f.ID == id && f.Kind == store.FactorWebAuthn }) {
		h.ErrorPage(w, r, http.StatusNotFound, "error.not_found.title", "account.error.passkey_gone")
		return
	}
	err := h.store.DeleteFactors(r.Context(), s.User.ID, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.fail(w, r, err)
		return
	}
	h.log.InfoContext(r.Context(), "passkey removed", "user_id", s.User.ID, "factor_id", id)
	http.Redirect(w, r, AccountPath+"?done=passkey-removed", http.StatusSeeOther)
}

// serveScript is the pages' one script (templates/passkey.js).
func (h *Handler) serveScript(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(h.script)
}
