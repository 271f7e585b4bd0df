package passkeybrowser_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/lktest"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/server"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

const adminToken = "test-admin-token-0123456789"

// latchkey runs a server whose issuer is http://localhost:PORT: WebAuthn
// needs a host name for the RP ID, and localhost is a secure context.
func latchkey(t *testing.T, b storetest.Backend) (issuer, admin string, st *store.Store) {
	t.Helper()
	dbURL := b.URL(t)
	st = storetest.Open(t, dbURL, store.Options{})
	public := httptest.NewUnstartedServer(nil)
	cfg := config.Default()
	cfg.DatabaseURL = dbURL
	cfg.Issuer = fmt.Sprintf("http://localhost:%d", public.Listener.Addr().(*net.TCPAddr).Port)
	cfg.Secret = "test-system-secret-that-is-long-enough-0123456789"
	cfg.AdminToken = adminToken
	cfg.PublicAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AccessTokenFormat = config.FormatOpaque
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(context.Background(), cfg, st, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	public.Config.Handler = srv.PublicHandler()
	public.Start()
	adm := httptest.NewServer(srv.AdminHandler())
	t.Cleanup(public.Close)
	t.Cleanup(adm.Close)
	return cfg.Issuer, adm.URL, st
}

func adminPost(t *testing.T, admin, path string, body any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, admin+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if resp.StatusCode >= 300 || json.Unmarshal(out, &m) != nil {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, out)
	}
	return m
}

func adminGet(t *testing.T, admin, path string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, admin+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// virtualAuthenticator gives the tab a CTAP2 platform authenticator that
// keeps resident keys and verifies the person (as a fingerprint would),
// and keeps its id in id.
func virtualAuthenticator(id *webauthn.AuthenticatorID) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tgt, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return err
		}
		res, err := cdp.Call(ctx, tgt, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21, Transport: webauthn.AuthenticatorTransportInternal,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
		}})
		*id = res.AuthenticatorID
		return err
	})
}

// presence turns the virtual authenticator's automatic touch on or off.
// Off, the login page's autofill request (conditional mediation), which a
// virtual authenticator would otherwise answer at once, waits, so that a
// person can type a password.
func presence(id *webauthn.AuthenticatorID, on bool) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
		_, err := cdp.Call(ctx, tgt, webauthn.SetAutomaticPresenceSimulation, webauthn.SetAutomaticPresenceSimulationParams{AuthenticatorID: *id, Enabled: on})
		return err
	})
}

// clickIfThere clicks the element of selector if the page still has it: the
// autofill request may have signed in first.
func clickIfThere(selector string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
		_, _ = chromedp.Evaluate[bool](`(() => { const b = document.querySelector(`+strconv.Quote(selector)+`); if (b) b.click(); return true })()`)(ctx, tgt)
		return nil
	})
}

// signedIn is true on the page that says so.
const signedIn = `document.querySelector("h1") != null && document.querySelector("h1").textContent == "Signed in"`

// waitFor evaluates expression in the page until it is true. A page that
// navigates away in between (a form posting) fails one evaluation, not the
// wait.
func waitFor(expression string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if ok, err := chromedp.Evaluate[bool](expression)(ctx, tgt); err == nil && ok {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for %s: %w", expression, ctx.Err())
			case <-tick.C:
			}
		}
	})
}

// In Chromium with a virtual authenticator: a person enrols a passkey on
// /account, signs out, signs in with the passkey alone (no username), signs
// out again, and then, for a client that requires a second factor, signs
// in with their password and gives the passkey as the second factor; the
// ID token's amr says pwd, hwk and mfa.
func TestBrowserPasskeys(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		issuer, admin, st := latchkey(t, b)
		hash, err := secrets.HashPassword("pia-password-1", secrets.Argon2Params{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateUser(context.Background(), &store.User{ID: "user-pia", Username: "pia", PasswordHash: hash}); err != nil {
			t.Fatal(err)
		}
		codes := make(chan string, 1)
		app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/callback" && r.URL.Query().Get("code") != "" {
				select {
				case codes <- r.URL.Query().Get("code"):
				default:
				}
			}
			_, _ = w.Write([]byte("<!doctype html><title>app</title><p id=done>back in the app</p>"))
		}))
		defer app.Close()
		client := adminPost(t, admin, "/admin/clients", map[string]any{
			"client_name": "Strict", "token_endpoint_auth_method": "none", "trusted": true, "require_mfa": true,
			"grant_types": []string{"authorization_code"}, "redirect_uris": []string{app.URL + "/callback"}, "scope": "openid",
		})
		conf := oauth2.Config{ClientID: client["client_id"].(string), RedirectURL: app.URL + "/callback", Scopes: []string{"openid"},
			Endpoint: oauth2.Endpoint{AuthURL: issuer + "/oauth2/authorize", TokenURL: issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}

		ctx := lktest.Browser(t, 90*time.Second)
		// The browser lives as long as the context of the first run: this
		// one, not a step's.
		if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
			t.Fatal(err)
		}
		step := func(what string, steps ...chromedp.Action[chromedp.Void]) {
			t.Helper()
			sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			if err := chromedp.Do(sctx, steps...); err != nil {
				loc, _ := chromedp.Run(ctx, chromedp.Location())
				html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
				t.Fatalf("%s: %v (at %s)\n%s", what, err, loc, html)
			}
		}
		signOut := []chromedp.Action[chromedp.Void]{
			chromedp.Navigate(issuer + "/logout"),
			chromedp.Click(chromedp.CSS(`form[action="/logout"] button[type=submit]`)),
			waitFor(`document.querySelector("h1") != null && document.querySelector("h1").textContent == "Signed out"`),
		}

		var authID webauthn.AuthenticatorID
		step("password sign-in",
			chromedp.Navigate(issuer+"/login"),
			virtualAuthenticator(&authID),
			chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "pia"),
			chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "pia-password-1"),
			chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
			waitFor(signedIn),
		)
		step("enrol a passkey on /account",
			chromedp.Navigate(issuer+"/account"),
			chromedp.WaitVisible(chromedp.CSS(`form[data-passkey=enrol] button[data-passkey-start]`)),
			chromedp.SendKeys(chromedp.CSS(`#passkey_name`), "Virtual key"),
			chromedp.Click(chromedp.CSS(`form[data-passkey=enrol] button[data-passkey-start]`)),
			chromedp.WaitVisible(chromedp.CSS(`p.notice`)),
		)
		if fs := adminGet(t, admin, "/admin/users/user-pia/factors")["factors"].([]any); len(fs) != 1 ||
			fs[0].(map[string]any)["kind"] != store.FactorWebAuthn || fs[0].(map[string]any)["name"] != "Virtual key" {
			t.Fatalf("factors after enrolment: %v", fs)
		}
		step("sign out", signOut...)

		step("sign in with the passkey, no username",
			chromedp.Navigate(issuer+"/login"),
			waitFor(`document.readyState == "complete"`),
			clickIfThere(`form[data-passkey=login] button[data-passkey-start]`),
			waitFor(`location.pathname == "/login/passkey" && `+signedIn),
			chromedp.Navigate(issuer+"/account"),
			chromedp.WaitVisible(chromedp.CSS(`form[data-passkey=enrol]`)),
		)
		if ls, err := st.ListLoginSessions(context.Background(), "user-pia", time.Hour); err != nil || len(ls) != 1 || ls[0].AMR != "hwk mfa" {
			t.Fatalf("session after passkey sign-in: %+v %v, want amr \"hwk mfa\"", ls, err)
		}
		step("sign out again", signOut...)

		verifier := oauth2.GenerateVerifier()
		step("password, then the passkey as second factor",
			presence(&authID, false),
			chromedp.Navigate(conf.AuthCodeURL("state-pk", oauth2.S256ChallengeOption(verifier))),
			chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "pia"),
			chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "pia-password-1"),
			chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
			chromedp.WaitVisible(chromedp.CSS(`form[data-passkey=second-factor] button[data-passkey-start]`)),
			presence(&authID, true),
			chromedp.Click(chromedp.CSS(`form[data-passkey=second-factor] button[data-passkey-start]`)),
			waitFor(`document.getElementById("done") != null`),
		)
		var code string
		select {
		case code = <-codes:
		case <-ctx.Done():
			t.Fatal("the app never received a code")
		}
		tok, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := tok.Extra("id_token").(string)
		parts := strings.Split(raw, ".")
		if len(parts) != 3 {
			t.Fatalf("id_token %q", raw)
		}
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var claims struct {
			AMR []string `json:"amr"`
			ACR string   `json:"acr"`
		}
		if err := json.Unmarshal(payload, &claims); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"pwd", "hwk", "mfa"} {
			if !slices.Contains(claims.AMR, want) {
				t.Errorf("id_token amr %v lacks %q (acr %q)", claims.AMR, want, claims.ACR)
			}
		}
	})
}
