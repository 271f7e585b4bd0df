package login

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// PurposeReturnTo derives the key that signs what a page shows of the
// request it returns to (ReturnTo).
const PurposeReturnTo = "latchkey/v1/return-to"

// ReturnTo is what the authorization endpoint hands the pages when it sends
// the browser to them: the request to resume, and what the pages show of
// it. The pages never read client_id or scope themselves; the endpoint,
// which has checked the client and the scopes, says what to show.
type ReturnTo struct {
	// URL is the authorization request to send the browser back to: a
	// relative URL of Config.AuthorizePath, opaque to the pages.
	URL string
	// ClientName names the application on the login and consent pages.
	ClientName string
	// Scopes are what the application asks for, listed on the consent page.
	Scopes []string
	// LoginHint prefills the login page's username (OpenID Connect
	// login_hint); the endpoint bounds its length.
	LoginHint string
	// UILocales is the request's ui_locales (OpenID Connect Core §3.1.2.1),
	// the pages' first choice of language. Empty: read from URL's query.
	UILocales string
	// ClientLogoURI and ClientURI are the client's registered logo_uri and
	// client_uri (RFC 7591 §2), shown on the consent page.
	ClientLogoURI, ClientURI string
}

// uiLocales is the language preference of the request rt resumes: as the
// endpoint said, else the ui_locales of its URL.
func (rt ReturnTo) uiLocales() string {
	if rt.UILocales != "" {
		return rt.UILocales
	}
	if u, err := url.Parse(rt.URL); err == nil {
		return u.Query().Get("ui_locales")
	}
	return ""
}

// aboutParam carries ClientName and Scopes through the browser, signed
// together with the URL: otherwise a crafted link could show a trusted
// application's name over another's request.
const aboutParam = "about"

type about struct {
	ClientName string   `json:"n"`
	Scopes     []string `json:"s,omitempty"`
	LoginHint  string   `json:"h,omitempty"`
	UILocales  string   `json:"l,omitempty"`
	LogoURI    string   `json:"i,omitempty"`
	ClientURI  string   `json:"u,omitempty"`
}

// pageURL is the page at path for rt: "/consent?return_to=…&about=…".
func (h *Handler) pageURL(path string, rt ReturnTo) string {
	return path + "?" + url.Values{"return_to": {rt.URL}, aboutParam: {h.sealAbout(rt)}}.Encode()
}

// sealAbout is "BASE64(JSON).MAC", the MAC over the URL and the JSON.
func (h *Handler) sealAbout(rt ReturnTo) string {
	js, _ := json.Marshal(about{ClientName: rt.ClientName, Scopes: rt.Scopes, LoginHint: rt.LoginHint,
		UILocales: rt.UILocales, LogoURI: rt.ClientLogoURI, ClientURI: rt.ClientURI})
	b := base64.RawURLEncoding.EncodeToString(js)
	return b + "." + sign(h.returnToKeys[0], rt.URL, b)
}

// readReturnTo reads return_to and about with get: a GET page's query or a
// POST's form. ok
// is false when return_to is not a relative URL of the authorization
// endpoint (a page is never an open redirect). A missing or forged about
// leaves ClientName and Scopes empty: the request still goes back to the
// endpoint, which checks everything again.
func (h *Handler) readReturnTo(get func(string) string) (rt ReturnTo, ok bool) {
	rt.URL = get("return_to")
	if !h.safeReturnTo(rt.URL) {
		return ReturnTo{}, false
	}
	b, mac, found := strings.Cut(get(aboutParam), ".")
	if !found {
		return rt, true
	}
	valid := signedUnderAny(h.returnToKeys, mac, rt.URL, b)
	js, err := base64.RawURLEncoding.DecodeString(b)
	var a about
	if !valid || err != nil || json.Unmarshal(js, &a) != nil {
		return rt, true
	}
	rt.ClientName, rt.Scopes, rt.LoginHint = a.ClientName, a.Scopes, a.LoginHint
	rt.UILocales, rt.ClientLogoURI, rt.ClientURI = a.UILocales, a.LogoURI, a.ClientURI
	return rt, true
}

// safeReturnTo accepts only a relative URL of the authorization endpoint,
// of the device page or of the account page.
func (h *Handler) safeReturnTo(raw string) bool {
	if raw == PathTOTP {
		// Enrolment sends the browser to sign in (or give a second
		// factor) and back.
		return true
	}
	for _, path := range []string{h.cfg.AuthorizePath, h.cfg.DevicePath, AccountPath} {
		if path == "" || raw == "" {
			continue
		}
		// The device page may be resumed without a query (the code is
		// typed after sign-in); an authorization request always has one.
		bare := raw == path && (path == h.cfg.DevicePath || path == AccountPath)
		if !bare && !strings.HasPrefix(raw, path+"?") {
			continue
		}
		u, err := url.Parse(raw)
		if err == nil && u.Scheme == "" && u.Host == "" && u.Path == path {
			return true
		}
	}
	return false
}

// SendToLogin sends the browser to the login page, to come back to rt.URL
// once signed in, with the proof that the person signed in for it
// (interaction.go).
func (h *Handler) SendToLogin(w http.ResponseWriter, r *http.Request, rt ReturnTo) {
	http.Redirect(w, r, h.pageURL("/login", rt), http.StatusSeeOther)
}

// SendToConsent sends the browser to the consent page, which shows
// rt.ClientName and rt.Scopes and comes back to rt.URL with the person's
// answer.
func (h *Handler) SendToConsent(w http.ResponseWriter, r *http.Request, rt ReturnTo) {
	http.Redirect(w, r, h.pageURL("/consent", rt), http.StatusSeeOther)
}
