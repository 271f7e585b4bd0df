package cli

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// callbackPath is the path of the loopback redirect URI. The client is
// registered with http://127.0.0.1/callback; Latchkey accepts any port on
// a loopback redirect (RFC 8252 §7.3), so each login can take a free one.
const callbackPath = "/callback"

// loopbackLogin is RFC 8252 §7.3: the authorization code flow with PKCE
// (S256, RFC 7636) in the system browser, the code coming back to a
// listener on 127.0.0.1 and a port the system picks. It returns once one
// callback with this login's state has been redeemed, or ctx ends.
func (a *App) loopbackLogin(ctx context.Context, m *metadata, conf *oauth2.Config, noBrowser bool) (*oauth2.Token, error) {
	if m.AuthorizationEndpoint == "" {
		return nil, fmt.Errorf("%s names no authorization_endpoint", m.Issuer)
	}
	if len(m.CodeChallengeMethods) > 0 && !slices.Contains(m.CodeChallengeMethods, "S256") {
		return nil, fmt.Errorf("%s does not offer PKCE with S256", m.Issuer)
	}
	// 127.0.0.1 rather than localhost (RFC 8252 §8.3): a name may resolve
	// elsewhere, or to ::1 where nothing listens.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on the loopback interface: %w", err)
	}
	conf.RedirectURL = fmt.Sprintf("http://%s%s", ln.Addr(), callbackPath)
	l := &loopback{
		issuer: m.Issuer, requireIss: m.IssParameterSupported, state: randomState(),
		verifier: oauth2.GenerateVerifier(), conf: conf, ctx: ctx, done: make(chan result, 1),
	}
	srv := &http.Server{Handler: l, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		// The browser has had its answer (the handler wrote it before
		// reporting); nothing else may talk to this port.
		shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()

	authURL := conf.AuthCodeURL(l.state, oauth2.S256ChallengeOption(l.verifier))
	fmt.Fprintf(a.stderr(), "Sign in in your browser. If it does not open, open this URL:\n\n  %s\n\n", authURL)
	if !noBrowser {
		if err := a.openBrowser(authURL); err != nil {
			fmt.Fprintf(a.stderr(), "(could not open a browser: %v)\n", err)
		}
	}
	select {
	case r := <-l.done:
		return r.tok, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the sign-in in the browser: %w", ctx.Err())
	}
}

type result struct {
	tok *oauth2.Token
	err error
}

// loopback is the redirect URI's handler.
type loopback struct {
	issuer          string
	requireIss      bool
	state, verifier string
	conf            *oauth2.Config
	ctx             context.Context

	mu       sync.Mutex
	finished bool
	done     chan result
}

func (l *loopback) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || r.URL.Path != callbackPath {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	// A request without this login's state is not the answer to it: any
	// web page can make the browser call this port, with a code of its
	// own choosing (login CSRF, RFC 6749 §10.12). It changes nothing.
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(l.state)) != 1 {
		page(w, http.StatusBadRequest, "Sign-in refused", "This answer does not belong to the sign-in lkcli started (wrong state). Nothing was changed.")
		return
	}
	// RFC 9207: the answer must come from the issuer we sent the person
	// to, not from another server the browser was steered to (mix-up).
	if iss := q.Get("iss"); iss != l.issuer && (iss != "" || l.requireIss) {
		page(w, http.StatusBadRequest, "Sign-in refused", "This answer comes from another issuer than the one lkcli asked. Nothing was changed.")
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.finished {
		page(w, http.StatusConflict, "Already done", "This sign-in has already finished; you can close this window.")
		return
	}
	l.finished = true
	var res result
	if e := q.Get("error"); e != "" {
		res.err = fmt.Errorf("the server refused the sign-in: %s %s", e, q.Get("error_description"))
	} else if code := q.Get("code"); code == "" {
		res.err = errors.New("the answer carries neither a code nor an error")
	} else {
		res.tok, res.err = l.conf.Exchange(l.ctx, code, oauth2.VerifierOption(l.verifier))
		if res.err != nil {
			res.err = fmt.Errorf("redeem the authorization code: %w", res.err)
		}
	}
	if res.err != nil {
		page(w, http.StatusBadRequest, "Sign-in failed", res.err.Error())
	} else {
		page(w, http.StatusOK, "Signed in", "lkcli has its tokens. You can close this window and go back to the terminal.")
	}
	l.done <- res
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lkcli: {{.Title}}</title></head>
<body style="font-family:sans-serif;max-width:36em;margin:4em auto"><h1>{{.Title}}</h1><p>{{.Text}}</p></body></html>
`))

func page(w http.ResponseWriter, status int, title, text string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// The page's URL holds the code: no scripts, nothing fetched, no
	// Referer to anyone.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, struct{ Title, Text string }{title, text})
}

func randomState() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}
