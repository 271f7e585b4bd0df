package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/storage"
)

// The device authorization grant (RFC 8628): a device without a usable
// browser gets a device_code and a user_code at the device authorization
// endpoint, shows the user code and the verification URI, and polls the
// token endpoint while a person types the code on /device, signs in and
// approves. fosite v0.49 has no device flow; this is ours on its extension
// points: an endpoint, a page, and a TokenEndpointHandler.

const (
	// GrantTypeDeviceCode is RFC 8628 §3.4's grant_type.
	GrantTypeDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"
	// PathDeviceAuthorization is the device authorization endpoint.
	PathDeviceAuthorization = "/oauth2/device_authorization"
	// PathDevice is the verification URI, the page where the code is typed.
	PathDevice = "/device"
	// userCodeAlphabet is RFC 8628 §6.1's example: 20 consonants, no
	// vowels (no words), nothing that reads as a digit.
	userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"
	userCodeLength   = 8
	// slowDownStep is what each slow_down adds to the interval (§3.5).
	slowDownStep = 5
)

// Polling errors of RFC 8628 §3.5, which fosite v0.49 does not define.
var (
	errAuthorizationPending = &fosite.RFC6749Error{ErrorField: "authorization_pending", DescriptionField: "The authorization request is still pending: the user has not yet approved it.", CodeField: http.StatusBadRequest}
	errSlowDown             = &fosite.RFC6749Error{ErrorField: "slow_down", DescriptionField: "The device is polling too fast; the interval grows by 5 seconds.", CodeField: http.StatusBadRequest}
	errExpiredToken         = &fosite.RFC6749Error{ErrorField: "expired_token", DescriptionField: "The device code has expired; start a new device authorization.", CodeField: http.StatusBadRequest}
	// fosite's access_denied is 403; at the token endpoint RFC 6749 §5.2
	// answers 400.
	errDeviceDenied = &fosite.RFC6749Error{ErrorField: "access_denied", DescriptionField: "The user denied the authorization request.", CodeField: http.StatusBadRequest}
)

// DeviceStore is what the device flow needs of the store (store/device.go).
type DeviceStore interface {
	CreateDeviceCode(ctx context.Context, dc *store.DeviceCode) error
	// GetDeviceCode is one read by primary key, whatever the code's state.
	GetDeviceCode(ctx context.Context, signature string) (*store.DeviceCode, error)
	FindPendingDeviceCode(ctx context.Context, userCode string) (*store.DeviceCode, error)
	ApproveDeviceCode(ctx context.Context, signature string, a store.DeviceApproval) error
	DenyDeviceCode(ctx context.Context, signature string) error
	SlowDownDeviceCode(ctx context.Context, signature string, seconds int) error
	// ClaimDeviceCode marks an approved code used, once across instances.
	ClaimDeviceCode(ctx context.Context, dc *store.DeviceCode) error
}

var _ DeviceStore = (*store.Store)(nil)

// deviceCodes makes and recognises the two codes. Both are stored only as
// HMACs under a key derived from LATCHKEY_SECRET: a read of the table
// yields neither a device code to poll with nor a user code to approve.
type deviceCodes struct {
	// keys[0] makes signatures; every key is tried when looking one up,
	// so codes made before a LATCHKEY_SECRET rotation still work.
	keys [][]byte
}

func (d deviceCodes) sign(key []byte, kind, value string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(kind + "\x00" + value))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (d deviceCodes) deviceSignatures(code string) []string {
	out := make([]string, len(d.keys))
	for i, k := range d.keys {
		out[i] = d.sign(k, "device_code", code)
	}
	return out
}

func (d deviceCodes) userSignatures(normalised string) []string {
	out := make([]string, len(d.keys))
	for i, k := range d.keys {
		out[i] = d.sign(k, "user_code", normalised)
	}
	return out
}

// newUserCode draws 8 letters of userCodeAlphabet uniformly (rejection
// sampling: 256 is not a multiple of 20): 20^8, about 2^34.6 codes.
func newUserCode() (string, error) {
	out := make([]byte, 0, userCodeLength)
	buf := make([]byte, 16)
	for len(out) < userCodeLength {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, b := range buf {
			if b < 240 && len(out) < userCodeLength {
				out = append(out, userCodeAlphabet[int(b)%len(userCodeAlphabet)])
			}
		}
	}
	return string(out), nil
}

// normaliseUserCode is what a person typed as the code it stands for:
// case, dashes and spaces ignored (RFC 8628 §6.1). ok is false for
// anything that cannot be a code.
func normaliseUserCode(typed string) (string, bool) {
	if len(typed) > 64 {
		return "", false
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(typed) {
		switch {
		case r == '-' || r == ' ' || r == '\t':
		case r < 128 && strings.ContainsRune(userCodeAlphabet, r):
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	if b.Len() != userCodeLength {
		return "", false
	}
	return b.String(), true
}

// displayUserCode is the code as shown: "BDWP-HQPK".
func displayUserCode(normalised string) string {
	return normalised[:4] + "-" + normalised[4:]
}

type deviceAnswer struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int    `json:"expires_in"`
	Interval                int    `json:"interval"`
}

// DeviceAuthorization serves POST /oauth2/device_authorization (RFC 8628
// §3.1, §3.2). The client authenticates as at the token endpoint (a public
// client by its client_id); the scopes and audience it asks for are
// checked against its registration as the authorization endpoint would.
// Errors are RFC 6749 §5.2 JSON.
func (p *Provider) DeviceAuthorization(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	fail := func(err error) { p.writeError(w, r, PathDeviceAuthorization, nil, err) }
	if err := parsePostForm(r, tokenMultiValued); err != nil {
		fail(err)
		return
	}
	client, err := p.fosite.AuthenticateClient(ctx, r, r.PostForm)
	if err != nil {
		fail(err)
		return
	}
	if !client.GetGrantTypes().Has(GrantTypeDeviceCode) {
		fail(fosite.ErrUnauthorizedClient.WithHintf("The client is not allowed to use the grant type '%s'.", GrantTypeDeviceCode))
		return
	}
	form := r.PostForm
	if res := form["resource"]; len(res) > 0 {
		form["audience"] = append(form["audience"], res...)
	}
	dropUnservedScopes(form)
	scopes := fosite.RemoveEmpty(strings.Split(form.Get("scope"), " "))
	for _, s := range scopes {
		if !p.fconf.ScopeStrategy(client.GetScopes(), s) {
			fail(fosite.ErrInvalidScope.WithHintf("The OAuth 2.0 Client is not allowed to request scope '%s'.", s))
			return
		}
	}
	audience := fosite.GetAudiences(form)
	if err := p.fconf.AudienceMatchingStrategy(client.GetAudience(), audience); err != nil {
		fail(err)
		return
	}
	if len(audience) == 0 {
		audience = client.GetAudience()
	}
	requestID, err := secrets.NewID()
	if err != nil {
		fail(fosite.ErrServerError.WithWrap(err))
		return
	}
	deviceCode, err := secrets.RandomToken(32)
	if err != nil {
		fail(fosite.ErrServerError.WithWrap(err))
		return
	}
	now := p.now()
	interval := int(p.cfg.DevicePollInterval / time.Second)
	dc := &store.DeviceCode{
		Signature: p.devices.deviceSignatures(deviceCode)[0], RequestID: requestID, ClientID: client.GetID(),
		Scopes: scopes, Audience: audience, Interval: interval, RequestedAt: now, ExpiresAt: now.Add(p.cfg.DeviceCodeTTL),
	}
	// A user code already live is drawn again; with 2^34.6 codes and a
	// few thousand live, a second draw is rare and a fifth never happens.
	var userCode string
	for range 5 {
		if userCode, err = newUserCode(); err != nil {
			break
		}
		dc.UserCode = p.devices.userSignatures(userCode)[0]
		if err = p.store.CreateDeviceCode(ctx, dc); !errors.Is(err, store.ErrAlreadyExists) {
			break
		}
	}
	if err != nil {
		fail(fmt.Errorf("create device code: %w", err))
		return
	}
	complete := p.cfg.IssuerURL(PathDevice) + "?" + url.Values{"user_code": {displayUserCode(userCode)}}.Encode()
	writeJSON(w, http.StatusOK, deviceAnswer{
		DeviceCode: deviceCode, UserCode: displayUserCode(userCode),
		VerificationURI: p.cfg.IssuerURL(PathDevice), VerificationURIComplete: complete,
		ExpiresIn: int(p.cfg.DeviceCodeTTL / time.Second), Interval: interval,
	})
}

// DeviceUI is what the device page needs of the browser side beyond
// LoginUI: the code form, its CSRF check and the wrong-code throttle.
type DeviceUI interface {
	UserCodePage(w http.ResponseWriter, r *http.Request, status int, action, code, errMsg string)
	ValidForm(r *http.Request) bool
	ReserveUserCode(ctx context.Context, w http.ResponseWriter, r *http.Request) (*login.UserCodeAttempt, error)
	Fail(w http.ResponseWriter, r *http.Request, err error)
}

var _ DeviceUI = (*login.Handler)(nil)

// Device serves GET and POST /device, the verification URI (RFC 8628
// §3.3). A person signs in if needed, types the user code (or arrives
// with it, verification_uri_complete), and always sees the consent page
// of the main flow (§5.4: the device is not where they are; only they can
// tell whether they started this). The consent page comes back here with
// its signed proof of approval, or with the denial, as it does to the
// authorization endpoint.
//
// A POSTed code is sent on as GET /device?user_code=…: one URL for the
// code, whether typed or linked, that the login and consent pages resume.
func (p *Provider) Device(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil || !p.deviceUI.ValidForm(r) {
			p.deviceUI.UserCodePage(w, r, http.StatusForbidden, PathDevice, "", "device.error.csrf")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, PathDevice+"?"+url.Values{"user_code": {r.PostForm.Get("user_code")}}.Encode(), http.StatusSeeOther)
		return
	}
	q := r.URL.Query()
	typed := q.Get("user_code")
	si, err := p.ui.CurrentSignIn(r)
	if err != nil {
		p.deviceUI.Fail(w, r, err)
		return
	}
	if si == nil {
		target := PathDevice
		if typed != "" {
			target += "?" + url.Values{"user_code": {typed}}.Encode()
		}
		p.ui.SendToLogin(w, r, login.ReturnTo{URL: target})
		return
	}
	if typed == "" {
		p.deviceUI.UserCodePage(w, r, http.StatusOK, PathDevice, "", "")
		return
	}
	dc, ok := p.findUserCode(w, r, typed)
	if !ok {
		return
	}
	switch {
	case q.Get(login.ConsentDeniedParam) == "denied":
		if err := p.store.DenyDeviceCode(ctx, dc.Signature); err != nil && !errors.Is(err, store.ErrNotFound) {
			p.deviceUI.Fail(w, r, err)
			return
		}
		p.ui.ErrorPage(w, r, http.StatusOK, "device.denied.title", "device.denied.message")
	default:
		client, err := p.store.FindClient(ctx, dc.ClientID)
		if err != nil {
			p.deviceUI.Fail(w, r, err)
			return
		}
		name := client.Name
		if name == "" {
			name = client.ID
		}
		norm, _ := normaliseUserCode(typed)
		target := PathDevice + "?" + url.Values{"user_code": {displayUserCode(norm)}}.Encode()
		switch {
		case client.RequireMFA && !si.MultiFactor():
			// Step-up, as at the authorization endpoint (mfa.go).
			p.ui.SendToSecondFactor(w, r, login.ReturnTo{URL: target, ClientName: name})
		case si.Did == login.Approved:
			p.approveDevice(w, r, si, dc)
		default:
			p.ui.SendToConsent(w, r, login.ReturnTo{URL: target, ClientName: name, Scopes: dc.Scopes})
		}
	}
}

// findUserCode finds the live pending device code of a typed user code,
// counting the try against the wrong-code throttle first and taking it
// back when the code was right. Otherwise it answers the page and
// reports false.
func (p *Provider) findUserCode(w http.ResponseWriter, r *http.Request, typed string) (*store.DeviceCode, bool) {
	ctx := r.Context()
	attempt, err := p.deviceUI.ReserveUserCode(ctx, w, r)
	if errors.Is(err, login.ErrTooManyCodes) {
		w.Header().Set("Retry-After", "60")
		p.deviceUI.UserCodePage(w, r, http.StatusTooManyRequests, PathDevice, "", "device.error.too_many")
		return nil, false
	}
	if err != nil {
		p.deviceUI.Fail(w, r, err)
		return nil, false
	}
	norm, ok := normaliseUserCode(typed)
	var dc *store.DeviceCode
	err = store.ErrNotFound
	if ok {
		for _, sig := range p.devices.userSignatures(norm) {
			if dc, err = p.store.FindPendingDeviceCode(ctx, sig); !errors.Is(err, store.ErrNotFound) {
				break
			}
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		// Expired, used, denied or never issued: the same words for all.
		p.deviceUI.UserCodePage(w, r, http.StatusBadRequest, PathDevice, typed, "device.error.wrong")
		return nil, false
	}
	if err != nil {
		p.deviceUI.Fail(w, r, err)
		return nil, false
	}
	if err := attempt.Right(ctx); err != nil {
		p.log.WarnContext(ctx, "release user code attempt", "error", err)
	}
	return dc, true
}

// approveDevice records the approval the consent page proved, with the
// login session's sign-in as the grant's session: the ID token's auth_time,
// sid and amr, and logout's reach (the grant is tied to the session).
func (p *Provider) approveDevice(w http.ResponseWriter, r *http.Request, si *login.SignIn, dc *store.DeviceCode) {
	sess := grantsession.New(si.User.ID)
	sess.Username = si.User.Username
	sess.AuthTime = si.AuthTime
	sess.LoginSessionID = si.LoginSessionID
	sess.SID = si.SID
	sess.AMR = signInAMR(si)
	sess.ACR = acrFor(sess.AMR)
	sess.GrantedAt = p.now().UTC()
	js, err := json.Marshal(sess)
	if err != nil {
		p.deviceUI.Fail(w, r, err)
		return
	}
	err = p.store.ApproveDeviceCode(r.Context(), dc.Signature, store.DeviceApproval{
		UserID: si.User.ID, LoginSessionID: si.LoginSessionID, SessionData: string(js),
	})
	if errors.Is(err, store.ErrNotFound) {
		p.ui.ErrorPage(w, r, http.StatusBadRequest, "device.expired.title", "device.expired.message")
		return
	}
	if err != nil {
		p.deviceUI.Fail(w, r, err)
		return
	}
	p.log.InfoContext(r.Context(), "device approved", "client_id", dc.ClientID, "grant_id", dc.RequestID, "user_id", si.User.ID)
	p.ui.ErrorPage(w, r, http.StatusOK, "device.connected.title", "device.connected.message")
}

// deviceGrant is the token endpoint's device_code grant (RFC 8628 §3.4,
// §3.5), in the style of fosite's handlers.
//
// A pending poll is one indexed read (the row by its primary key) and no
// write. Too-fast polling is noticed with a per-instance memory of each
// code's last poll (polls): a device polling one instance faster than its
// interval gets slow_down, and the grown interval is written to the row,
// so every instance enforces it from then on. The trade-off: a device
// whose polls a load balancer spreads over several instances may poll
// each of them at the interval, and so the server as a whole faster, until
// one instance sees two polls too close together. Remembering every poll
// in the database would make each poll a write; RFC 8628 §3.5 leaves the
// means of noticing to the server.
type deviceGrant struct {
	strategy oauth2.CoreStrategy
	storage  grantStorage
	devices  DeviceStore
	codes    deviceCodes
	polls    *pollTracker
	config   interface {
		fosite.AccessTokenLifespanProvider
		fosite.RefreshTokenScopesProvider
	}
	idleTTL, absoluteTTL time.Duration
	now                  func() time.Time
}

var _ fosite.TokenEndpointHandler = (*deviceGrant)(nil)

func (g *deviceGrant) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool { return false }

func (g *deviceGrant) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne(GrantTypeDeviceCode)
}

var errDeviceCodeInvalid = fosite.ErrInvalidGrant.WithHint("The device code is invalid.")

// HandleTokenEndpointRequest reads the device code and answers the
// polling errors; an approved code gets its grant's session, scopes and
// audience, to be redeemed in PopulateTokenEndpointResponse.
func (g *deviceGrant) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !g.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	client := r.GetClient()
	if !client.GetGrantTypes().Has(GrantTypeDeviceCode) {
		return fosite.ErrUnauthorizedClient.WithHintf("The client is not allowed to use the grant type '%s'.", GrantTypeDeviceCode)
	}
	code := r.GetRequestForm().Get("device_code")
	if code == "" {
		return fosite.ErrInvalidRequest.WithHint("The 'device_code' parameter is missing.")
	}
	var dc *store.DeviceCode
	var err error = store.ErrNotFound
	for _, sig := range g.codes.deviceSignatures(code) {
		if dc, err = g.devices.GetDeviceCode(ctx, sig); !errors.Is(err, store.ErrNotFound) {
			break
		}
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errDeviceCodeInvalid
	case errors.Is(err, store.ErrUnavailable):
		return err
	case err != nil:
		return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	// Another client's code is no code at all to this one; it learns
	// nothing of its state, and the owner's polling is left alone.
	if dc.ClientID != client.GetID() {
		return errDeviceCodeInvalid
	}
	now := g.now()
	if !now.Before(dc.ExpiresAt) {
		return errExpiredToken
	}
	switch dc.Status {
	case store.DevicePending:
		return g.pending(ctx, dc, now)
	case store.DeviceDenied:
		return errDeviceDenied
	case store.DeviceApproved:
	default:
		return fosite.ErrInvalidGrant.WithHint("The device code was already used, or its grant was revoked.")
	}
	sess, ok := r.GetSession().(*grantsession.Session)
	if !ok || dc.SessionData == nil {
		return fosite.ErrServerError.WithHint("Unexpected session type.")
	}
	if err := json.Unmarshal([]byte(*dc.SessionData), sess); err != nil {
		return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	sess.DeviceSignature = dc.Signature
	r.SetID(dc.RequestID)
	for _, s := range dc.Scopes {
		r.GrantScope(s)
	}
	for _, a := range dc.Audience {
		r.GrantAudience(a)
	}
	// The tokens' lifetimes, as the code exchange sets them; a refresh
	// token's never beyond the grant's absolute lifetime.
	sess.SetExpiresAt(fosite.AccessToken, now.Add(g.config.GetAccessTokenLifespan(ctx)).Round(time.Second))
	if g.issuesRefresh(ctx, r) {
		sess.SetExpiresAt(fosite.RefreshToken, minTime(now.Add(g.idleTTL), grantStart(r).Add(g.absoluteTTL)).Round(time.Second))
	}
	return nil
}

// pending answers a poll of a code nobody has decided yet:
// authorization_pending, or slow_down when it came sooner than the
// interval after the last poll this instance saw.
func (g *deviceGrant) pending(ctx context.Context, dc *store.DeviceCode, now time.Time) error {
	if !g.polls.tooSoon(dc.Signature, now, time.Duration(dc.Interval)*time.Second) {
		return errAuthorizationPending
	}
	if err := g.devices.SlowDownDeviceCode(ctx, dc.Signature, dc.Interval+slowDownStep); err != nil {
		if errors.Is(err, store.ErrUnavailable) {
			return err
		}
		return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	return errSlowDown
}

// issuesRefresh: as for the code flow, a refresh token needs the
// refresh_token grant type and a granted offline_access.
func (g *deviceGrant) issuesRefresh(ctx context.Context, r fosite.AccessRequester) bool {
	return r.GetClient().GetGrantTypes().Has("refresh_token") && r.GetGrantedScopes().HasOneOf(g.config.GetRefreshTokenScopes(ctx)...)
}

// PopulateTokenEndpointResponse redeems the approved code and issues the
// tokens in one transaction: the claim is a conditional update under the
// grant's lock, so of two redemptions exactly one gets tokens, and a
// failure to store them leaves the code redeemable.
func (g *deviceGrant) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) (err error) {
	if !g.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	sess := r.GetSession().(*grantsession.Session)
	access, accessSig, err := g.strategy.GenerateAccessToken(ctx, r)
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	var refresh, refreshSig string
	if g.issuesRefresh(ctx, r) {
		if refresh, refreshSig, err = g.strategy.GenerateRefreshToken(ctx, r); err != nil {
			return fosite.ErrServerError.WithWrap(err)
		}
	}
	ctx, err = storage.MaybeBeginTx(ctx, g.storage)
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	defer func() {
		if err != nil {
			if rbErr := storage.MaybeRollbackTx(ctx, g.storage); rbErr != nil {
				err = fosite.ErrServerError.WithWrap(err).WithDebugf("rollback: %s", rbErr)
			}
		}
	}()
	err = g.devices.ClaimDeviceCode(ctx, &store.DeviceCode{Signature: sess.DeviceSignature, ClientID: r.GetClient().GetID(), RequestID: r.GetID()})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fosite.ErrInvalidGrant.WithHint("The device code was already used, or its grant was revoked.")
	case errors.Is(err, fosite.ErrSerializationFailure):
		return fosite.ErrInvalidGrant.WithHint("The device code was already used.")
	case err != nil:
		return err
	}
	storeReq := r.Sanitize(nil)
	storeReq.SetID(r.GetID())
	if err = g.storage.CreateAccessTokenSession(ctx, accessSig, storeReq); err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	if refreshSig != "" {
		if err = g.storage.CreateRefreshTokenSession(ctx, refreshSig, accessSig, storeReq); err != nil {
			return fosite.ErrServerError.WithWrap(err)
		}
	}
	if err = storage.MaybeCommitTx(ctx, g.storage); err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	resp.SetAccessToken(access)
	resp.SetTokenType("bearer")
	resp.SetExpiresIn(sess.GetExpiresAt(fosite.AccessToken).Sub(g.now()).Round(time.Second))
	resp.SetScopes(r.GetGrantedScopes())
	if refresh != "" {
		resp.SetExtra("refresh_token", refresh)
	}
	return nil
}

// pollTracker remembers when this instance last saw each device code
// polled: only an optimisation for noticing too-fast polling (see
// deviceGrant). It is bounded: past max codes it forgets those not polled
// within maxAge, and if that is not enough, everything; forgetting costs
// at most one missed slow_down per code.
type pollTracker struct {
	mu     sync.Mutex
	last   map[string]time.Time
	max    int
	maxAge time.Duration
}

func newPollTracker(max int, maxAge time.Duration) *pollTracker {
	return &pollTracker{last: make(map[string]time.Time), max: max, maxAge: maxAge}
}

// tooSoon records a poll of sig at now and reports whether it came sooner
// than interval after the previous one. A tenth of the interval is
// forgiven: a client that waits the interval between requests sees its
// polls arrive with the network's jitter.
func (t *pollTracker) tooSoon(sig string, now time.Time, interval time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	prev, seen := t.last[sig]
	if !seen && len(t.last) >= t.max {
		for k, at := range t.last {
			if now.Sub(at) > t.maxAge {
				delete(t.last, k)
			}
		}
		if len(t.last) >= t.max {
			clear(t.last)
		}
	}
	t.last[sig] = now
	return seen && now.Sub(prev) < interval-interval/10
}
