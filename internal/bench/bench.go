// Package bench drives a running Latchkey over HTTP with concurrent workers
// and reports throughput, latency percentiles, errors and the server's
// memory. It sets up its own clients and users through the admin API, so it
// measures a server exactly as deployed. cmd/latchkey-bench is its command.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/latchkey/latchkey/internal/dpop"
	"github.com/latchkey/latchkey/internal/seed"
	"golang.org/x/oauth2"
)

// Scenarios, in the order `-scenario all` runs them.
// "healthz" is the baseline: the same HTTP round trip with no OAuth work,
// the ceiling this machine puts on any scenario.
// The "-openid" variants add scope openid, so each token response carries
// an ID token: the pair measures what an ID token costs.
// The "-dpop" variants send a fresh DPoP proof (RFC 9449, ES256, one key
// per worker, signed before the measurement: proofPool) with every token
// request: the pair measures what DPoP costs the server.
var Scenarios = []string{"healthz", "cc", "cc-dpop", "introspect", "token-exchange", "revoke", "refresh", "refresh-dpop", "refresh-openid", "authcode", "authcode-openid", "login", "verify", "device-poll"}

// SeededScenarios run only against a database filled by `latchkey-bench
// seed` (Options.Seed), so `-scenario all` leaves them out.
// "introspect-seeded" introspects the refresh token of a random seeded
// grant each time: a row read by primary key among millions, mostly not in
// memory, where "introspect" checks one JWT whose signature the server
// remembers.
var SeededScenarios = []string{"introspect-seeded"}

// "token-exchange" trades one person's access token (a password grant's,
// scope read) for a delegated one (RFC 8693), as a backend does before it
// calls the next service.

// Options configure a run.
type Options struct {
	PublicURL, AdminURL, AdminToken string
	Workers                         int
	Duration                        time.Duration
	// IDTokenAlg is the id_token_signed_response_alg the bench's clients
	// register ("" leaves the server's default, RS256).
	IDTokenAlg string
	// SeededGrants is how many grants `latchkey-bench seed` wrote, and
	// Seed recomputes their tokens (from the server's LATCHKEY_SECRET);
	// the seeded scenarios need both.
	SeededGrants int
	Seed         *seed.Tokens
}

// Result is one scenario's figures.
type Result struct {
	Scenario   string
	Ops        int
	Errors     int
	FirstError []string
	Elapsed    time.Duration
	P50        time.Duration
	P90        time.Duration
	P99        time.Duration
	RSSBefore  float64 // MiB; 0 when /metrics is unreachable
	RSSAfter   float64
}

// PerSecond is the throughput.
func (r Result) PerSecond() float64 { return float64(r.Ops) / r.Elapsed.Seconds() }

func (r Result) String() string {
	s := fmt.Sprintf("%-10s %9.0f ops/s  p50 %6.2fms  p90 %6.2fms  p99 %6.2fms  errors %d  rss %.1f→%.1f MiB",
		r.Scenario, r.PerSecond(), ms(r.P50), ms(r.P90), ms(r.P99), r.Errors, r.RSSBefore, r.RSSAfter)
	for _, e := range r.FirstError {
		s += "\n           error: " + e
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Runner holds the HTTP client and the fixtures set up for the scenarios.
type Runner struct {
	opts     Options
	http     *http.Client
	svc      client // client credentials
	rs       client // introspection caller
	pwd      client // trusted confidential client with password + refresh
	spa      client // trusted public client for the code flow
	user     string
	pass     string
	userOnce sync.Once
	userErr  error
	jwks     jose.JSONWebKeySet
	issuer   string
	// device is the public device-flow client (device.go), registered by
	// the first worker that needs it.
	device     client
	deviceOnce sync.Once
	deviceErr  error
}

type client struct{ id, secret string }

// NewRunner sets up clients and a user through the admin API.
func NewRunner(ctx context.Context, opts Options) (*Runner, error) {
	tr := &http.Transport{MaxIdleConns: opts.Workers * 4, MaxIdleConnsPerHost: opts.Workers * 4, IdleConnTimeout: time.Minute}
	r := &Runner{opts: opts, http: &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	var err error
	if r.svc, err = r.register(ctx, map[string]any{"client_name": "bench-cc", "grant_types": []string{"client_credentials"}, "scope": "read write"}); err != nil {
		return nil, err
	}
	if r.rs, err = r.register(ctx, map[string]any{"client_name": "bench-rs", "grant_types": []string{"client_credentials"}}); err != nil {
		return nil, err
	}
	withAlg := func(md map[string]any) map[string]any {
		if opts.IDTokenAlg != "" {
			md["id_token_signed_response_alg"] = opts.IDTokenAlg
		}
		return md
	}
	if r.pwd, err = r.register(ctx, withAlg(map[string]any{"client_name": "bench-password", "trusted": true,
		"grant_types": []string{"password", "refresh_token"}, "scope": "read openid offline_access"})); err != nil {
		return nil, err
	}
	if r.spa, err = r.register(ctx, withAlg(map[string]any{"client_name": "bench-spa", "trusted": true, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "redirect_uris": []string{benchRedirect}, "scope": "openid read offline_access",
		// A browser app: a loopback redirect would make it a native app,
		// which signs in on every authorization (RFC 8252 §8.6).
		"application_type": "web"})); err != nil {
		return nil, err
	}
	var meta struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := r.getJSON(ctx, opts.PublicURL+"/.well-known/oauth-authorization-server", &meta); err != nil {
		return nil, err
	}
	r.issuer = meta.Issuer
	if err := r.getJSON(ctx, opts.PublicURL+"/.well-known/jwks.json", &r.jwks); err != nil {
		return nil, err
	}
	return r, nil
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

func (r *Runner) admin(ctx context.Context, method, path string, body, out any) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, method, r.opts.AdminURL+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+r.opts.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func (r *Runner) register(ctx context.Context, md map[string]any) (client, error) {
	var out struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if err := r.admin(ctx, http.MethodPost, "/admin/clients", md, &out); err != nil {
		return client{}, err
	}
	return client{out.ID, out.Secret}, nil
}

func (r *Runner) getJSON(ctx context.Context, u string, out any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// post sends a form and decodes a JSON answer; a non-2xx is an error
// carrying the body.
func (r *Runner) post(ctx context.Context, hc *http.Client, path string, c client, form url.Values) (map[string]any, error) {
	return r.postProof(ctx, hc, path, c, form, "")
}

// postProof is post with a DPoP proof ("" for none).
func (r *Runner) postProof(ctx context.Context, hc *http.Client, path string, c client, form url.Values, proof string) (map[string]any, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.opts.PublicURL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	if c.secret != "" {
		req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s: %d %s", path, resp.StatusCode, bytes.TrimSpace(data))
	}
	if len(data) == 0 {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

func (r *Runner) ccToken(ctx context.Context) (string, error) {
	m, err := r.post(ctx, r.http, "/oauth2/token", r.svc, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})
	if err != nil {
		return "", err
	}
	return m["access_token"].(string), nil
}

// ensureUser creates the bench user once, for the scenarios that sign in.
func (r *Runner) ensureUser(ctx context.Context) error {
	r.userOnce.Do(func() {
		r.user, r.pass = "bench-"+randomString(8), randomString(24)
		if err := r.admin(ctx, http.MethodPost, "/admin/users", map[string]string{"username": r.user, "password": r.pass}, nil); err != nil {
			r.userErr = fmt.Errorf("create user (POST /admin/users): %w", err)
		}
	})
	return r.userErr
}

func (r *Runner) passwordLogin(ctx context.Context, scope string) (map[string]any, error) {
	if err := r.ensureUser(ctx); err != nil {
		return nil, err
	}
	return r.post(ctx, r.http, "/oauth2/token", r.pwd, url.Values{"grant_type": {"password"}, "username": {r.user},
		"password": {r.pass}, "scope": {scope}})
}

// wantIDToken checks that a token response has an ID token exactly when
// it should, so that a variant never measures a silent failure.
func wantIDToken(m map[string]any, openid bool) error {
	if _, ok := m["id_token"].(string); ok != openid {
		return fmt.Errorf("id_token present %v, want %v", ok, openid)
	}
	return nil
}

// worker runs op in a loop until the deadline; setup runs once per worker.
type op func(ctx context.Context) error

func (r *Runner) scenario(ctx context.Context, name string) (func(ctx context.Context) (op, error), error) {
	switch name {
	case "healthz":
		return func(context.Context) (op, error) {
			return func(ctx context.Context) error {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.opts.PublicURL+"/healthz", nil)
				resp, err := r.http.Do(req)
				if err != nil {
					return err
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return errors.New(resp.Status)
				}
				return nil
			}, nil
		}, nil
	case "cc":
		return func(context.Context) (op, error) {
			return func(ctx context.Context) error { _, err := r.ccToken(ctx); return err }, nil
		}, nil
	case "cc-dpop":
		return func(context.Context) (op, error) {
			proofs, err := r.proofPool()
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context) error {
				proof, err := proofs.next()
				if err != nil {
					return err
				}
				m, err := r.postProof(ctx, r.http, "/oauth2/token", r.svc, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}, proof)
				if err == nil && m["token_type"] != "DPoP" {
					err = fmt.Errorf("token_type %v, want DPoP", m["token_type"])
				}
				return err
			}, nil
		}, nil
	case "refresh-dpop":
		// The confidential password client: the proof's cost (one verify,
		// one write) is the same as for a public client, whose binding
		// check adds only a comparison.
		return func(ctx context.Context) (op, error) {
			proofs, err := r.proofPool()
			if err != nil {
				return nil, err
			}
			m, err := r.passwordLogin(ctx, "read offline_access")
			if err != nil {
				return nil, err
			}
			rt := m["refresh_token"].(string)
			return func(ctx context.Context) error {
				proof, err := proofs.next()
				if err != nil {
					return err
				}
				m, err := r.postProof(ctx, r.http, "/oauth2/token", r.pwd, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, proof)
				if err != nil {
					return err
				}
				if m["token_type"] != "DPoP" {
					return fmt.Errorf("token_type %v, want DPoP", m["token_type"])
				}
				rt = m["refresh_token"].(string)
				return nil
			}, nil
		}, nil
	case "introspect":
		tok, err := r.ccToken(ctx)
		if err != nil {
			return nil, err
		}
		return func(context.Context) (op, error) {
			return func(ctx context.Context) error {
				m, err := r.post(ctx, r.http, "/oauth2/introspect", r.rs, url.Values{"token": {tok}})
				if err == nil && m["active"] != true {
					err = errors.New("token introspected inactive")
				}
				return err
			}, nil
		}, nil
	case "token-exchange":
		// Registered here rather than in NewRunner: the other scenarios
		// still run against a server without the grant.
		xc, err := r.register(ctx, map[string]any{"client_name": "bench-exchange",
			"grant_types": []string{"urn:ietf:params:oauth:grant-type:token-exchange"}, "scope": "read"})
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) (op, error) {
			m, err := r.passwordLogin(ctx, "read")
			if err != nil {
				return nil, err
			}
			form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
				"subject_token": {m["access_token"].(string)}, "subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}}
			return func(ctx context.Context) error {
				m, err := r.post(ctx, r.http, "/oauth2/token", xc, form)
				if err == nil && m["issued_token_type"] != "urn:ietf:params:oauth:token-type:access_token" {
					err = fmt.Errorf("issued_token_type %v", m["issued_token_type"])
				}
				return err
			}, nil
		}, nil
	case "revoke":
		return func(context.Context) (op, error) {
			return func(ctx context.Context) error {
				tok, err := r.ccToken(ctx)
				if err != nil {
					return err
				}
				_, err = r.post(ctx, r.http, "/oauth2/revoke", r.svc, url.Values{"token": {tok}})
				return err
			}, nil
		}, nil
	case "refresh", "refresh-openid":
		openid := name == "refresh-openid"
		scope := "read offline_access"
		if openid {
			scope = "openid " + scope
		}
		return func(ctx context.Context) (op, error) {
			m, err := r.passwordLogin(ctx, scope)
			if err != nil {
				return nil, err
			}
			rt := m["refresh_token"].(string)
			return func(ctx context.Context) error {
				m, err := r.post(ctx, r.http, "/oauth2/token", r.pwd, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
				if err != nil {
					return err
				}
				rt = m["refresh_token"].(string)
				return wantIDToken(m, openid)
			}, nil
		}, nil
	case "authcode", "authcode-openid":
		scopes := []string{"read"}
		if name == "authcode-openid" {
			scopes = []string{"openid", "read"}
		}
		return func(ctx context.Context) (op, error) {
			b, err := r.browser(ctx)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context) error { return r.codeFlow(ctx, b, scopes) }, nil
		}, nil
	case "login":
		return func(context.Context) (op, error) {
			return func(ctx context.Context) error {
				b, err := r.browser(ctx)
				if err != nil {
					return err
				}
				return r.codeFlow(ctx, b, []string{"openid"})
			}, nil
		}, nil
	case "device-poll":
		return r.devicePoll, nil
	case "introspect-seeded":
		if r.opts.SeededGrants < 1 || r.opts.Seed == nil {
			return nil, errors.New("introspect-seeded needs -seeded-grants N (what `latchkey-bench seed` wrote) and the server's LATCHKEY_SECRET")
		}
		return func(context.Context) (op, error) {
			rng := mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))
			return func(ctx context.Context) error {
				// Live, expired or revoked alike: each answer is a 200
				// with "active", and each costs the server the same read.
				m, err := r.post(ctx, r.http, "/oauth2/introspect", r.rs, url.Values{"token": {r.opts.Seed.Refresh(rng.IntN(r.opts.SeededGrants))},
					"token_type_hint": {"refresh_token"}})
				if err == nil {
					if _, ok := m["active"].(bool); !ok {
						err = fmt.Errorf("introspection without active: %v", m)
					}
				}
				return err
			}, nil
		}, nil
	case "verify":
		tok, err := r.ccToken(ctx)
		if err != nil {
			return nil, err
		}
		return func(context.Context) (op, error) {
			return func(context.Context) error { return r.verify(tok) }, nil
		}, nil
	}
	return nil, fmt.Errorf("unknown scenario %q (have %s)", name, strings.Join(append(slices.Clone(Scenarios), SeededScenarios...), ", "))
}

// verify checks a JWT locally the way a resource server does.
func (r *Runner) verify(token string) error {
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA})
	if err != nil {
		return err
	}
	keys := r.jwks.Key(parsed.Headers[0].KeyID)
	if len(keys) == 0 {
		return errors.New("unknown kid")
	}
	var c jwt.Claims
	if err := parsed.Claims(keys[0].Key, &c); err != nil {
		return err
	}
	return c.ValidateWithLeeway(jwt.Expected{Issuer: r.issuer, Time: time.Now()}, 0)
}

// benchRedirect is never followed: the tool reads the code from Location.
const benchRedirect = "https://bench.example/callback"

var csrfRe = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// browser signs a fresh cookie jar in through the login page.
func (r *Runner) browser(ctx context.Context) (*http.Client, error) {
	if err := r.ensureUser(ctx); err != nil {
		return nil, err
	}
	jar, _ := cookiejar.New(nil)
	b := &http.Client{Transport: r.http.Transport, Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.opts.PublicURL+"/login", nil)
	resp, err := b.Do(req)
	if err != nil {
		return nil, err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfRe.FindSubmatch(page)
	if m == nil {
		return nil, errors.New("login page without csrf_token")
	}
	form := url.Values{"csrf_token": {string(m[1])}, "username": {r.user}, "password": {r.pass}}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, r.opts.PublicURL+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = b.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("login: %s", resp.Status)
	}
	return b, nil
}

// codeFlow is authorize -> code -> token for a signed-in browser.
func (r *Runner) codeFlow(ctx context.Context, b *http.Client, scopes []string) error {
	conf := oauth2.Config{ClientID: r.spa.id, RedirectURL: benchRedirect, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: r.opts.PublicURL + "/oauth2/authorize", TokenURL: r.opts.PublicURL + "/oauth2/token"}}
	verifier := oauth2.GenerateVerifier()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, conf.AuthCodeURL(randomString(16), oauth2.S256ChallengeOption(verifier)), nil)
	resp, err := b.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		return fmt.Errorf("authorize: %s %s", resp.Status, resp.Header.Get("Location"))
	}
	m, err := r.post(ctx, r.http, "/oauth2/token", client{id: r.spa.id}, url.Values{"grant_type": {"authorization_code"},
		"code": {loc.Query().Get("code")}, "redirect_uri": {conf.RedirectURL}, "client_id": {r.spa.id}, "code_verifier": {verifier}})
	if err != nil {
		return err
	}
	return wantIDToken(m, slices.Contains(scopes, "openid"))
}

// RSS reads the server's resident memory from its /metrics, in MiB.
func (r *Runner) RSS(ctx context.Context) float64 {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.opts.AdminURL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+r.opts.AdminToken)
	resp, err := r.http.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "process_resident_memory_bytes "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f / (1 << 20)
		}
	}
	return 0
}

// Run runs one scenario for opts.Duration with opts.Workers workers.
func (r *Runner) Run(ctx context.Context, name string) (Result, error) {
	setup, err := r.scenario(ctx, name)
	if err != nil {
		return Result{}, err
	}
	ops := make([]op, r.opts.Workers)
	for i := range ops {
		if ops[i], err = setup(ctx); err != nil {
			return Result{}, fmt.Errorf("%s setup: %w", name, err)
		}
	}
	res := measure(ctx, name, ops, r.opts.Duration, func() float64 { return r.RSS(ctx) })
	return res, nil
}

// measure runs each op in a worker of its own for d and gathers the
// figures; rss (nil: none) reads the server's memory before and after.
func measure(ctx context.Context, name string, ops []op, d time.Duration, rss func() float64) Result {
	res := Result{Scenario: name}
	if rss != nil {
		res.RSSBefore = rss()
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		wg        sync.WaitGroup
	)
	runCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	for i := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			var errs []string
			nerr := 0
			for runCtx.Err() == nil {
				t0 := time.Now()
				err := ops[i](runCtx)
				if runCtx.Err() != nil {
					break
				}
				if err != nil {
					nerr++
					if len(errs) < 3 {
						errs = append(errs, err.Error())
					}
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, local...)
			res.Errors += nerr
			for _, e := range errs {
				if len(res.FirstError) < 3 && !slices.Contains(res.FirstError, e) {
					res.FirstError = append(res.FirstError, e)
				}
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(latencies)
	res.Ops = len(latencies)
	if n := len(latencies); n > 0 {
		res.P50, res.P90, res.P99 = latencies[n*50/100], latencies[n*90/100], latencies[min(n-1, n*99/100)]
	}
	if rss != nil {
		res.RSSAfter = rss()
	}
	return res
}

// proofPool is a worker's DPoP proofs for the token endpoint, signed before
// the measurement starts. A real client signs on its own machine; signing
// here, on the machine that runs the server, would measure the load tool's
// ECDSA as much as the server. Each proof has its own jti and an iat of
// setup time, well inside the server's 60 s window for a run of up to
// proofPoolMaxAge; past that, or when the pool runs dry, proofs are signed
// live.
type proofPool struct {
	key    *dpop.Signer
	htu    string
	proofs []string
	made   time.Time
}

const (
	proofsPerWorkerSecond = 250
	proofPoolMaxAge       = 45 * time.Second
)

func (r *Runner) proofPool() (*proofPool, error) {
	key, err := newDPoPSigner()
	if err != nil {
		return nil, err
	}
	p := &proofPool{key: key, htu: r.issuer + "/oauth2/token", made: time.Now()}
	n := min(int(r.opts.Duration.Seconds()+1)*proofsPerWorkerSecond, int(proofPoolMaxAge.Seconds())*proofsPerWorkerSecond)
	p.proofs = make([]string, 0, n)
	for range n {
		proof, err := key.Proof(http.MethodPost, p.htu, "", "", p.made)
		if err != nil {
			return nil, err
		}
		p.proofs = append(p.proofs, proof)
	}
	return p, nil
}

func (p *proofPool) next() (string, error) {
	if len(p.proofs) == 0 || time.Since(p.made) > proofPoolMaxAge {
		return p.key.Proof(http.MethodPost, p.htu, "", "", time.Now())
	}
	proof := p.proofs[len(p.proofs)-1]
	p.proofs = p.proofs[:len(p.proofs)-1]
	return proof, nil
}

// newDPoPSigner is a worker's DPoP key: ES256, what browsers' WebCrypto
// and most DPoP clients use.
func newDPoPSigner() (*dpop.Signer, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return dpop.NewSigner(k, jose.ES256)
}
