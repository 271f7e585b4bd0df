// Package cli is lkcli, the reference command-line client of Latchkey: a
// public native client (RFC 8252) that signs a person in with the
// authorization code flow and PKCE over a loopback redirect, or with the
// device authorization grant (RFC 8628), keeps the tokens in a 0600 file,
// prints a fresh access token for scripts, and revokes on logout. The
// protocol is golang.org/x/oauth2's; this package adds the loopback
// listener, the tokens file and the error messages.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/oauth2"
)

var (
	// ErrNotLoggedIn: the tokens file has no session for this issuer and
	// client.
	ErrNotLoggedIn = errors.New("not logged in")
	// ErrUnreachable: the issuer did not answer.
	ErrUnreachable = errors.New("cannot reach the server")
	// ErrSessionEnded: the refresh token was refused (revoked, expired, or
	// its grant ended with a logout); only a new login helps.
	ErrSessionEnded = errors.New("the session has ended")
)

// refreshLeeway is how long before its expiry an access token is renewed,
// so that a token printed by `lkcli token` still works when the script
// that asked for it sends it a moment later.
const refreshLeeway = time.Minute

// App is lkcli with its surroundings made explicit, so that tests can run
// it in process: the clock, where output goes, how a browser is opened and
// where tokens are kept. Zero fields take the real ones.
type App struct {
	Stdout, Stderr io.Writer
	// Getenv reads LATCHKEY_ISSUER, LKCLI_CLIENT_ID and LKCLI_NO_BROWSER.
	Getenv func(string) string
	// Now decides whether the stored access token is still good.
	Now func() time.Time
	// OpenBrowser opens a URL in the system browser.
	OpenBrowser func(url string) error
	// TokensPath is the tokens file (default DefaultStorePath()).
	TokensPath string
	HTTPClient *http.Client
}

// Main runs lkcli with args (without the program name) and returns the
// exit code.
func (a *App) Main(ctx context.Context, args []string) int {
	cmd := a.Command()
	cmd.SetArgs(args)
	cmd.SetOut(a.stdout())
	cmd.SetErr(a.stderr())
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(a.stderr(), "lkcli:", err)
		return 1
	}
	return 0
}

type target struct {
	issuer, clientID string
}

// Command is the lkcli command tree.
func (a *App) Command() *cobra.Command {
	root := &cobra.Command{
		Use:           "lkcli",
		Short:         "Sign in to a Latchkey server from the command line and print access tokens",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var t target
	root.PersistentFlags().StringVar(&t.issuer, "issuer", a.getenv("LATCHKEY_ISSUER"), "the issuer URL (env LATCHKEY_ISSUER)")
	root.PersistentFlags().StringVar(&t.clientID, "client-id", a.getenv("LKCLI_CLIENT_ID"), "the client_id of lkcli's registration (env LKCLI_CLIENT_ID)")
	check := func(*cobra.Command, []string) error {
		t.issuer = strings.TrimSuffix(t.issuer, "/")
		switch {
		case t.issuer == "":
			return errors.New("no issuer: pass --issuer or set LATCHKEY_ISSUER")
		case t.clientID == "":
			return errors.New("no client: pass --client-id or set LKCLI_CLIENT_ID")
		}
		if a.TokensPath == "" {
			p, err := DefaultStorePath()
			if err != nil {
				return err
			}
			a.TokensPath = p
		}
		return nil
	}

	var (
		scope             string
		device, noBrowser bool
		timeout           time.Duration
	)
	login := &cobra.Command{
		Use:   "login",
		Short: "Sign in: in the browser (loopback redirect), or with --device on another device",
		Example: `  lkcli login --issuer https://id.example.com --client-id lkcli
  lkcli login --device   # prints a code to type at the verification page`,
		Args:    cobra.NoArgs,
		PreRunE: check,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			noBrowser = noBrowser || a.getenv("LKCLI_NO_BROWSER") != ""
			return a.login(ctx, t, strings.Fields(scope), device, noBrowser)
		},
	}
	login.Flags().StringVar(&scope, "scope", "openid offline_access", "space-separated scopes to ask for (offline_access for a refresh token)")
	login.Flags().BoolVar(&device, "device", false, "use the device authorization grant (RFC 8628): approve on any device with a browser")
	login.Flags().BoolVar(&noBrowser, "no-browser", false, "only print the sign-in URL, do not open a browser (env LKCLI_NO_BROWSER)")
	login.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "give up waiting for the sign-in after this long")

	token := &cobra.Command{
		Use:     "token",
		Short:   "Print a valid access token, refreshing it first when it has expired or is about to",
		Example: `  curl -H "Authorization: Bearer $(lkcli token)" https://api.example.com/invoices`,
		Args:    cobra.NoArgs,
		PreRunE: check,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := a.token(cmd.Context(), t)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(a.stdout(), tok)
			return err
		},
	}
	logout := &cobra.Command{
		Use:     "logout",
		Short:   "Revoke the refresh token (RFC 7009) and forget the session",
		Args:    cobra.NoArgs,
		PreRunE: check,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.logout(cmd.Context(), t)
		},
	}
	root.AddCommand(login, token, logout)
	return root
}

func (a *App) login(ctx context.Context, t target, scopes []string, device, noBrowser bool) error {
	m, err := a.discover(ctx, t.issuer)
	if err != nil {
		return err
	}
	conf := m.oauth2Config(t.clientID, scopes)
	ctx = context.WithValue(ctx, oauth2.HTTPClient, a.httpClient())
	var tok *oauth2.Token
	if device {
		tok, err = a.deviceLogin(ctx, m, conf)
	} else {
		tok, err = a.loopbackLogin(ctx, m, conf, noBrowser)
	}
	if err != nil {
		return err
	}
	prev, err := a.save(sessionOf(t, tok, strings.Join(scopes, " ")))
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stderr(), "Signed in to %s; tokens saved in %s.\n", t.issuer, a.store().Path)
	// The session this login replaces would otherwise stay valid at the
	// server, with nothing left on this machine to revoke it by.
	if prev.RefreshToken != "" && m.RevocationEndpoint != "" {
		if err := a.revoke(ctx, m.RevocationEndpoint, t, prev.RefreshToken, "refresh_token"); err != nil {
			fmt.Fprintf(a.stderr(), "Could not revoke the previous session: %v\n", err)
		}
	}
	if tok.RefreshToken == "" {
		fmt.Fprintln(a.stderr(), "No refresh token was issued (no offline_access?): log in again when the access token expires.")
	}
	return nil
}

func sessionOf(t target, tok *oauth2.Token, asked string) Session {
	scope, _ := tok.Extra("scope").(string)
	if scope == "" {
		scope = asked // RFC 6749 §5.1: omitted when it is what was asked
	}
	return Session{Issuer: t.issuer, ClientID: t.clientID, Scope: scope, TokenType: tok.TokenType,
		AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry}
}

// token returns a usable access token: the stored one while it has more
// than refreshLeeway left, otherwise a new one from x/oauth2's refreshing
// TokenSource, saved with the rotated refresh token before it is printed.
func (a *App) token(ctx context.Context, t target) (string, error) {
	st := a.store()
	unlock, err := st.Lock()
	if err != nil {
		return "", err
	}
	defer unlock()
	sess, err := st.Get(t.issuer, t.clientID)
	if errors.Is(err, ErrNotLoggedIn) {
		return "", fmt.Errorf("%w to %s as %s: run lkcli login", ErrNotLoggedIn, t.issuer, t.clientID)
	}
	if err != nil {
		return "", err
	}
	if sess.Expiry.IsZero() || a.now().Add(refreshLeeway).Before(sess.Expiry) {
		return sess.AccessToken, nil
	}
	if sess.RefreshToken == "" {
		return "", fmt.Errorf("%w: the access token expired and there is no refresh token: run lkcli login", ErrSessionEnded)
	}
	m, err := a.discover(ctx, t.issuer)
	if err != nil {
		return "", err
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, a.httpClient())
	// An empty access token is invalid to x/oauth2 whatever the clock
	// says, so the source refreshes; the decision stays with a.Now.
	old := &oauth2.Token{RefreshToken: sess.RefreshToken, TokenType: sess.TokenType}
	tok, err := m.oauth2Config(t.clientID, nil).TokenSource(ctx, old).Token()
	if err != nil {
		return "", a.refreshError(t, err)
	}
	// The rotated refresh token replaces the old one at once: the old one
	// stops working after the server's grace period, and presenting it
	// later would revoke the whole grant.
	next := sessionOf(t, tok, sess.Scope)
	if err := st.Put(next); err != nil {
		return "", fmt.Errorf("save the refreshed tokens: %w", err)
	}
	return next.AccessToken, nil
}

func (a *App) refreshError(t target, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
		return fmt.Errorf("%w at %s (the refresh token was revoked or has expired): run lkcli login", ErrSessionEnded, t.issuer)
	}
	if errors.As(err, &re) {
		return fmt.Errorf("refresh at %s: %w", t.issuer, err)
	}
	return unreachable(t.issuer, err)
}

func unreachable(issuer string, err error) error {
	var netErr net.Error
	if errors.As(err, &netErr) {
		return fmt.Errorf("%w %s: %w", ErrUnreachable, issuer, err)
	}
	return err
}

// save stores sess and returns the session it replaced, if any.
func (a *App) save(sess Session) (prev Session, err error) {
	st := a.store()
	unlock, err := st.Lock()
	if err != nil {
		return Session{}, err
	}
	defer unlock()
	prev, err = st.Get(sess.Issuer, sess.ClientID)
	if err != nil && !errors.Is(err, ErrNotLoggedIn) {
		return Session{}, err
	}
	return prev, st.Put(sess)
}

func (a *App) store() Store {
	return Store{Path: a.TokensPath}
}

func (a *App) stdout() io.Writer {
	if a.Stdout != nil {
		return a.Stdout
	}
	return os.Stdout
}

func (a *App) stderr() io.Writer {
	if a.Stderr != nil {
		return a.Stderr
	}
	return os.Stderr
}

func (a *App) getenv(k string) string {
	if a.Getenv != nil {
		return a.Getenv(k)
	}
	return os.Getenv(k)
}

func (a *App) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *App) httpClient() *http.Client {
	if a.HTTPClient != nil {
		return a.HTTPClient
	}
	return &http.Client{Timeout: 30 * time.Second}
}
