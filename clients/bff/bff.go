// Package bff is a backend-for-frontend, the way the IETF's OAuth for
// browser-based apps guidance recommends: the browser never sees a token.
// The BFF is a confidential client doing code + PKCE on the server; tokens
// stay in its memory; the browser holds only a __Host- session cookie
// (HttpOnly, Secure, SameSite=Strict); /api/* is proxied to an allow-list of
// upstreams with the access token attached and refreshed when it expires;
// state-changing calls must carry a custom header, which a cross-site page
// cannot send without a CORS preflight this server never approves.
//
// It is an OpenID Connect relying party on github.com/coreos/go-oidc: the
// endpoints come from discovery, the ID token of every sign-in is verified
// (signature, issuer, audience, expiry, the nonce this sign-in sent, and
// at_hash against the access token), and the page shows the person's name
// from it. Sign-out revokes the refresh token (RFC 7009) and then sends the
// browser to the end_session_endpoint with id_token_hint (RP-Initiated
// Logout 1.0), so that the Latchkey login session ends too and the next
// "Sign in" asks for the password again.
//
// /auth/login is open to anyone, so it keeps nothing in memory: the state
// and PKCE verifier of a sign-in in progress travel in a sealed, short-lived
// cookie, and the endpoint is rate-limited per client address.
package bff

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/time/rate"
)

//go:embed static
var static embed.FS

// CSRFHeader must be present on every state-changing call.
const CSRFHeader = "X-BFF-CSRF"

// Config describes the BFF's client registration and upstreams.
type Config struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	// BaseURL is where the browser reaches the BFF; /auth/callback under it
	// is the registered redirect URI, and BaseURL + "/" the registered
	// post_logout_redirect_uri.
	BaseURL string
	// Scopes are requested at sign-in; openid is always added.
	Scopes []string
	// Upstreams maps a path under /api/ to the URL it is proxied to, e.g.
	// "invoices" -> "http://127.0.0.1:9090/invoices". Nothing else is proxied.
	Upstreams map[string]string
	// Insecure drops the Secure flag and the __Host- prefix, for plain-http
	// development only.
	Insecure   bool
	SessionTTL time.Duration
	// CookieKey (32 bytes) seals the cookie that carries a sign-in in
	// progress. Give every instance behind one address the same key; when
	// empty a random key is made, and sign-ins in progress do not survive a
	// restart.
	CookieKey []byte
	// LoginRate and LoginBurst bound /auth/login per client address
	// (default one a second, burst 10); rate.Inf turns the limit off.
	LoginRate  rate.Limit
	LoginBurst int
	// ClientAddr returns the address a request is limited by (default the
	// peer's). Behind a reverse proxy, read the header the proxy sets.
	ClientAddr func(*http.Request) netip.Addr
	HTTPClient *http.Client
	Logger     *slog.Logger
	Now        func() time.Time
}

// BFF is the http.Handler.
type BFF struct {
	cfg      Config
	oauth    oauth2.Config
	mux      *http.ServeMux
	verifier *oidc.IDTokenVerifier
	// endpoints found by discovery that go-oidc does not name.
	revocation, endSession string

	pending sealer
	logins  *addrLimiter

	// dpop holds the key the tokens are bound to; tokenClient is
	// cfg.HTTPClient with a proof added to each token request.
	dpop        *prover
	tokenClient *http.Client

	mu       sync.Mutex
	sessions map[string]*session
}

type session struct {
	mu      sync.Mutex
	token   *oauth2.Token
	idToken string // the raw ID token of the sign-in: the id_token_hint at sign-out
	person  person
	expires time.Time
}

// person is who signed in, from the verified ID token.
type person struct {
	Subject           string `json:"sub"`
	Name              string `json:"name,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Email             string `json:"email,omitempty"`
}

// display is what the page calls the person.
func (p person) display() string {
	for _, s := range []string{p.Name, p.PreferredUsername, p.Email} {
		if s != "" {
			return s
		}
	}
	return p.Subject
}

// New builds the BFF. It reads the issuer's discovery document
// (/.well-known/openid-configuration), so Latchkey must be reachable.
func New(ctx context.Context, cfg Config) (*BFF, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.ClientSecret == "" || cfg.BaseURL == "" {
		return nil, errors.New("bff: Issuer, ClientID, ClientSecret and BaseURL are required")
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LoginRate <= 0 {
		cfg.LoginRate = 1
	}
	if cfg.LoginBurst <= 0 {
		cfg.LoginBurst = 10
	}
	if cfg.ClientAddr == nil {
		cfg.ClientAddr = remoteAddr
	}
	switch len(cfg.CookieKey) {
	case 0:
		cfg.CookieKey = make([]byte, 32)
		if _, err := rand.Read(cfg.CookieKey); err != nil {
			return nil, fmt.Errorf("bff: cookie key: %w", err)
		}
	case 32:
	default:
		return nil, errors.New("bff: CookieKey must be 32 bytes")
	}
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, cfg.HTTPClient), cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("bff: discovery: %w", err)
	}
	var more struct {
		Revocation string `json:"revocation_endpoint"`
		EndSession string `json:"end_session_endpoint"`
	}
	if err := provider.Claims(&more); err != nil {
		return nil, fmt.Errorf("bff: discovery: %w", err)
	}
	endpoint := provider.Endpoint()
	endpoint.AuthStyle = oauth2.AuthStyleInHeader // client_secret_basic, as registered
	scopes := cfg.Scopes
	if !slices.Contains(scopes, oidc.ScopeOpenID) {
		scopes = append([]string{oidc.ScopeOpenID}, scopes...)
	}
	dpop, err := newProver(cfg.Now)
	if err != nil {
		return nil, err
	}
	base := cfg.HTTPClient.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	b := &BFF{cfg: cfg, sessions: map[string]*session{}, mux: http.NewServeMux(),
		dpop:        dpop,
		tokenClient: &http.Client{Timeout: cfg.HTTPClient.Timeout, Transport: &tokenTransport{base: base, prover: dpop}},
		pending:     sealer{key: cfg.CookieKey, now: cfg.Now},
		logins:      newAddrLimiter(cfg.LoginRate, cfg.LoginBurst, cfg.Now),
		verifier:    provider.Verifier(&oidc.Config{ClientID: cfg.ClientID, Now: cfg.Now}),
		revocation:  more.Revocation, endSession: more.EndSession,
		oauth: oauth2.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Scopes: scopes,
			RedirectURL: strings.TrimSuffix(cfg.BaseURL, "/") + "/auth/callback",
			Endpoint:    endpoint,
		}}
	page, _ := fs.Sub(static, "static")
	b.mux.Handle("GET /", http.FileServerFS(page))
	b.mux.HandleFunc("GET /auth/login", b.login)
	b.mux.HandleFunc("GET /auth/callback", b.callback)
	b.mux.HandleFunc("GET /auth/me", b.me)
	b.mux.HandleFunc("POST /auth/logout", b.logout)
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} {
		b.mux.HandleFunc(m+" /api/{upstream}", b.proxy)
	}
	return b, nil
}

func (b *BFF) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// The page's script and styles are files of its own (static/), so
	// 'self' covers them: nothing inline is needed, and nothing inline runs.
	w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	w.Header().Set("Referrer-Policy", "no-referrer")
	b.mux.ServeHTTP(w, r)
}

func random() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (b *BFF) cookieName(name string) string {
	if b.cfg.Insecure {
		return name
	}
	return "__Host-" + name
}

func (b *BFF) setCookie(w http.ResponseWriter, name, value string, maxAge int, sameSite http.SameSite) {
	http.SetCookie(w, &http.Cookie{Name: b.cookieName(name), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: !b.cfg.Insecure, SameSite: sameSite})
}

// login starts code + PKCE. The state and verifier go to this browser in a
// sealed cookie, which binds the state to it and which it cannot read; the
// BFF keeps nothing, so anonymous calls cost no memory.
func (b *BFF) login(w http.ResponseWriter, r *http.Request) {
	if !b.logins.allow(b.cfg.ClientAddr(r)) {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(1/float64(b.cfg.LoginRate)))))
		http.Error(w, "too many sign-in attempts: wait a moment", http.StatusTooManyRequests)
		return
	}
	state, nonce, verifier := random(), random(), oauth2.GenerateVerifier()
	sealed, err := b.pending.seal(pendingLogin{State: state, Nonce: nonce, Verifier: verifier})
	if err != nil {
		b.cfg.Logger.Error("login", "error", err)
		http.Error(w, "sign-in unavailable", http.StatusInternalServerError)
		return
	}
	// Lax, not Strict: it must come back on the redirect from Latchkey.
	b.setCookie(w, "bff_login", sealed, int(pendingTTL.Seconds()), http.SameSiteLaxMode)
	http.Redirect(w, r, b.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

func (b *BFF) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c, err := r.Cookie(b.cookieName("bff_login"))
	if err != nil {
		http.Error(w, "login state missing: start again", http.StatusBadRequest)
		return
	}
	p, err := b.pending.open(c.Value, q.Get("state"))
	if err != nil {
		http.Error(w, "login state mismatch or expired: start again", http.StatusBadRequest)
		return
	}
	if iss := q.Get("iss"); iss != "" && iss != b.cfg.Issuer {
		http.Error(w, "unexpected issuer", http.StatusBadRequest) // RFC 9207 mix-up defence
		return
	}
	b.setCookie(w, "bff_login", "", -1, http.SameSiteLaxMode)
	if e := q.Get("error"); e != "" {
		http.Redirect(w, r, "/?error="+url.QueryEscape(e), http.StatusFound)
		return
	}
	// The exchange carries a DPoP proof: the tokens come back bound to the
	// BFF's key (token_type DPoP, cnf.jkt).
	tok, err := b.oauth.Exchange(context.WithValue(r.Context(), oauth2.HTTPClient, b.tokenClient), q.Get("code"), oauth2.VerifierOption(p.Verifier))
	if err != nil {
		b.cfg.Logger.Warn("code exchange failed", "error", err)
		http.Error(w, "sign-in failed", http.StatusBadGateway)
		return
	}
	raw, idToken, err := b.verify(context.WithValue(r.Context(), oauth2.HTTPClient, b.cfg.HTTPClient), tok, p.Nonce)
	if err != nil {
		b.cfg.Logger.Warn("ID token refused", "error", err)
		http.Error(w, "sign-in failed", http.StatusBadGateway)
		return
	}
	var who person
	if err := idToken.Claims(&who); err != nil {
		http.Error(w, "sign-in failed", http.StatusBadGateway)
		return
	}
	id := random()
	b.mu.Lock()
	b.sessions[id] = &session{token: tok, idToken: raw, person: who, expires: b.cfg.Now().Add(b.cfg.SessionTTL)}
	b.mu.Unlock()
	b.setCookie(w, "bff_session", id, int(b.cfg.SessionTTL.Seconds()), http.SameSiteStrictMode)
	http.Redirect(w, r, "/", http.StatusFound)
}

// verify checks the ID token of a code exchange (OpenID Connect Core
// §3.1.3.7): go-oidc checks the signature against the issuer's keys, iss,
// aud and exp; the nonce must be the one this sign-in sent (a code or ID
// token injected from another sign-in carries another), and at_hash must
// match the access token issued with it (§3.1.3.8).
func (b *BFF) verify(ctx context.Context, tok *oauth2.Token, nonce string) (string, *oidc.IDToken, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return "", nil, errors.New("the token response has no id_token")
	}
	idToken, err := b.verifier.Verify(ctx, raw)
	if err != nil {
		return "", nil, err
	}
	if subtle.ConstantTimeCompare([]byte(idToken.Nonce), []byte(nonce)) != 1 {
		return "", nil, errors.New("the ID token's nonce is not this sign-in's")
	}
	if err := idToken.VerifyAccessToken(tok.AccessToken); err != nil {
		return "", nil, err
	}
	return raw, idToken, nil
}

func (b *BFF) current(r *http.Request) (string, *session) {
	c, err := r.Cookie(b.cookieName("bff_session"))
	if err != nil {
		return "", nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.sessions[c.Value]
	if !ok || b.cfg.Now().After(s.expires) {
		delete(b.sessions, c.Value)
		return "", nil
	}
	return c.Value, s
}

func (b *BFF) me(w http.ResponseWriter, r *http.Request) {
	_, s := b.current(r)
	w.Header().Set("Cache-Control", "no-store")
	if s == nil {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"not signed in"}`))
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"user": s.person.display(), "name": s.person.Name, "email": s.person.Email})
}

// token returns a live access token, refreshing (and keeping the rotated
// refresh token) when the old one has expired. The refresh carries a proof
// by the BFF's key, like the exchange.
func (b *BFF) token(ctx context.Context, s *session, force bool) (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if force {
		s.token.Expiry = time.Now().Add(-time.Second)
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, b.tokenClient)
	tok, err := b.oauth.TokenSource(ctx, s.token).Token()
	if err != nil {
		return nil, err
	}
	s.token = tok
	return tok, nil
}

// authorize sets the upstream request's Authorization: a DPoP-bound token
// goes with the DPoP scheme and a proof for this method and URL carrying
// ath (RFC 9449 §7); a bearer token (an issuer without DPoP) as before.
func (b *BFF) authorize(h http.Header, method string, u *url.URL, tok *oauth2.Token) error {
	if !strings.EqualFold(tok.TokenType, "DPoP") {
		h.Set("Authorization", "Bearer "+tok.AccessToken)
		return nil
	}
	p, err := b.dpop.proof(method, u, tok.AccessToken)
	if err != nil {
		return err
	}
	h.Set("Authorization", "DPoP "+tok.AccessToken)
	h.Set("DPoP", p)
	return nil
}

func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// proxy forwards /api/{upstream} to its allow-listed URL with the token.
func (b *BFF) proxy(w http.ResponseWriter, r *http.Request) {
	target, ok := b.cfg.Upstreams[r.PathValue("upstream")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if unsafeMethod(r.Method) && r.Header.Get(CSRFHeader) == "" {
		http.Error(w, "missing "+CSRFHeader+" header", http.StatusForbidden)
		return
	}
	_, s := b.current(r)
	if s == nil {
		http.Error(w, `{"error":"not signed in"}`, http.StatusUnauthorized)
		return
	}
	u, err := url.Parse(target)
	if err != nil {
		http.Error(w, "bad upstream", http.StatusInternalServerError)
		return
	}
	// The body is kept so that a request refused for want of a DPoP nonce
	// can be sent again; Latchkey caps its own requests at 1 MiB too.
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		if body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20)); err != nil {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
	}
	refreshed, nonced := false, false
	for {
		tok, err := b.token(r.Context(), s, refreshed)
		if err != nil {
			// The grant is over (expired, revoked, reused): sign in again.
			http.Error(w, `{"error":"session expired"}`, http.StatusUnauthorized)
			return
		}
		out := r.Clone(r.Context())
		out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		creds := http.Header{}
		if err := b.authorize(creds, r.Method, u, tok); err != nil {
			b.cfg.Logger.Error("DPoP proof", "error", err)
			http.Error(w, "proxy error", http.StatusInternalServerError)
			return
		}
		auth, proof := creds.Get("Authorization"), creds.Get("DPoP")
		var again *bool
		rec := &statusCapture{ResponseWriter: w}
		proxy := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.Out.URL = u
				pr.Out.Host = u.Host
				pr.Out.Header.Del("Cookie")
				pr.Out.Header.Set("Authorization", auth)
				pr.Out.Header.Del("DPoP") // never the browser's
				if proof != "" {
					pr.Out.Header.Set("DPoP", proof)
				}
			},
			ModifyResponse: func(resp *http.Response) error {
				fresh := b.dpop.noteNonce(u, resp.Header)
				switch {
				case wantsNonce(resp) && fresh && !nonced:
					// §9: refused before anything ran; send it again with the nonce.
					again = &nonced
					return errRetry
				case resp.StatusCode == http.StatusUnauthorized && !refreshed && !unsafeMethod(r.Method):
					// The token may have been revoked or expired early: refresh once.
					again = &refreshed
					return errRetry
				}
				return nil
			},
			ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
				if errors.Is(err, errRetry) {
					rec.retry = true
					return
				}
				http.Error(w, "upstream unavailable", http.StatusBadGateway)
			},
		}
		proxy.ServeHTTP(rec, out)
		if !rec.retry {
			return
		}
		*again = true
	}
}

var errRetry = errors.New("retry with a fresh token")

type statusCapture struct {
	http.ResponseWriter
	retry bool
}

// logout revokes the refresh token, forgets the session and answers where
// the browser goes next: Latchkey's end_session_endpoint with the ID token
// as id_token_hint and this BFF's page as post_logout_redirect_uri, which
// ends the Latchkey login session too (without it, the next "Sign in" would
// go straight back in on the single sign-on session). The page navigates
// there itself: this is a fetch with the CSRF header, not a navigation.
func (b *BFF) logout(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(CSRFHeader) == "" {
		http.Error(w, "missing "+CSRFHeader+" header", http.StatusForbidden)
		return
	}
	next := "/"
	id, s := b.current(r)
	if s != nil {
		s.mu.Lock()
		refresh, idToken := s.token.RefreshToken, s.idToken
		s.mu.Unlock()
		if refresh != "" && b.revocation != "" {
			b.revoke(r.Context(), refresh)
		}
		if b.endSession != "" {
			u, err := url.Parse(b.endSession)
			if err == nil {
				q := u.Query()
				q.Set("id_token_hint", idToken)
				q.Set("client_id", b.cfg.ClientID)
				q.Set("post_logout_redirect_uri", strings.TrimSuffix(b.cfg.BaseURL, "/")+"/")
				u.RawQuery = q.Encode()
				next = u.String()
			}
		}
		b.mu.Lock()
		delete(b.sessions, id)
		b.mu.Unlock()
	}
	b.setCookie(w, "bff_session", "", -1, http.SameSiteStrictMode)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]string{"next": next})
}

// revoke revokes the refresh token, and with it the whole grant (RFC 7009).
func (b *BFF) revoke(ctx context.Context, refresh string) {
	form := url.Values{"token": {refresh}, "token_type_hint": {"refresh_token"}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.revocation, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(b.cfg.ClientID), url.QueryEscape(b.cfg.ClientSecret))
	resp, err := b.cfg.HTTPClient.Do(req)
	if err != nil {
		b.cfg.Logger.Warn("revoke on logout failed", "error", err)
		return
	}
	resp.Body.Close()
}
