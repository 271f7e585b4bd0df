package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"time"

	"golang.org/x/oauth2"
)

// HydraScenarios are the scenarios run against an Ory Hydra on the same
// machine, for the comparison in docs/benchmarks.md.
var HydraScenarios = []string{"hydra-healthz", "hydra-authcode-openid"}

// HydraOptions point at a running Hydra and a client registered there
// with grant type authorization_code, scope openid, client_secret_basic
// and RedirectURI among its redirect_uris.
type HydraOptions struct {
	PublicURL, AdminURL    string
	ClientID, ClientSecret string
	Workers                int
	Duration               time.Duration
}

// HydraRedirectURI is the bench client's redirect URI; nothing listens
// there, the code is read from the redirect.
const HydraRedirectURI = "http://127.0.0.1/bench/callback"

// RunHydra runs one of HydraScenarios.
//
// hydra-authcode-openid is the code flow with scope openid for a browser
// that is already signed in, the same work as authcode-openid here. Hydra
// has no login or consent pages of its own: its login and consent app
// accepts each request through the admin API. The bench plays that app,
// accepting at once without reading the request first (a real app reads
// it to see skip=true), which is the least Hydra can be asked to do:
// authorize, accept login, follow, accept consent, follow, token.
func RunHydra(ctx context.Context, o HydraOptions, name string) (Result, error) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * o.Workers}, Timeout: 30 * time.Second}
	conf := &oauth2.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret, RedirectURL: HydraRedirectURI, Scopes: []string{"openid"},
		Endpoint: oauth2.Endpoint{AuthURL: o.PublicURL + "/oauth2/auth", TokenURL: o.PublicURL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}}
	ops := make([]op, o.Workers)
	for i := range ops {
		switch name {
		case "hydra-healthz":
			ops[i] = func(ctx context.Context) error {
				_, err := hydraGet(ctx, hc, o.PublicURL+"/health/alive", http.StatusOK)
				return err
			}
		case "hydra-authcode-openid":
			jar, _ := cookiejar.New(nil)
			browser := &http.Client{Transport: hc.Transport, Jar: jar, Timeout: hc.Timeout,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			ops[i] = func(ctx context.Context) error { return hydraCodeFlow(ctx, o, hc, browser, conf) }
		default:
			return Result{}, fmt.Errorf("unknown Hydra scenario %q (have %v)", name, HydraScenarios)
		}
	}
	return measure(ctx, name, ops, o.Duration, nil), nil
}

func hydraCodeFlow(ctx context.Context, o HydraOptions, hc, browser *http.Client, conf *oauth2.Config) error {
	verifier := oauth2.GenerateVerifier()
	loc, err := hydraGet(ctx, browser, conf.AuthCodeURL(randomString(16), oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("nonce", randomString(16))), http.StatusFound, http.StatusSeeOther)
	if err != nil {
		return err
	}
	to, err := hydraAccept(ctx, hc, o.AdminURL, "login", loc.Query().Get("login_challenge"),
		map[string]any{"subject": "bench-user", "remember": true, "remember_for": 3600})
	if err != nil {
		return err
	}
	if loc, err = hydraGet(ctx, browser, to, http.StatusFound, http.StatusSeeOther); err != nil {
		return err
	}
	to, err = hydraAccept(ctx, hc, o.AdminURL, "consent", loc.Query().Get("consent_challenge"),
		map[string]any{"grant_scope": []string{"openid"}, "remember": true, "remember_for": 3600})
	if err != nil {
		return err
	}
	if loc, err = hydraGet(ctx, browser, to, http.StatusFound, http.StatusSeeOther); err != nil {
		return err
	}
	code := loc.Query().Get("code")
	if code == "" {
		return fmt.Errorf("no code in %s", loc.Redacted())
	}
	tok, err := conf.Exchange(context.WithValue(ctx, oauth2.HTTPClient, hc), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return err
	}
	if tok.Extra("id_token") == nil {
		return errors.New("no id_token")
	}
	return nil
}

// hydraGet fetches u and returns where it redirects.
func hydraGet(ctx context.Context, c *http.Client, u string, want ...int) (*url.URL, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	for _, w := range want {
		if resp.StatusCode == w {
			return resp.Request.URL.Parse(resp.Header.Get("Location"))
		}
	}
	return nil, fmt.Errorf("GET %s: %s", req.URL.Path, resp.Status)
}

// hydraAccept accepts a login or consent request through Hydra's admin API
// and returns where the browser goes next.
func hydraAccept(ctx context.Context, c *http.Client, admin, kind, challenge string, body any) (string, error) {
	if challenge == "" {
		return "", fmt.Errorf("no %s challenge", kind)
	}
	b, _ := json.Marshal(body)
	u := fmt.Sprintf("%s/admin/oauth2/auth/requests/%s/accept?%s_challenge=%s", admin, kind, kind, url.QueryEscape(challenge))
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.RedirectTo == "" {
		return "", fmt.Errorf("accept %s: %s", kind, resp.Status)
	}
	return out.RedirectTo, nil
}
