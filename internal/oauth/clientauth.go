package oauth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/requestid"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/ory/fosite"
)

// jwtBearerAssertion is RFC 7523 §2.2's client_assertion_type.
const jwtBearerAssertion = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

const (
	// assertionLeeway absorbs clock skew between client and server.
	assertionLeeway = 30 * time.Second
	// maxAssertionLifetime bounds how far ahead an assertion's exp may be,
	// and with it how long its jti must be remembered (RFC 7523 §3 item 4
	// lets the server limit this).
	maxAssertionLifetime = time.Hour
	// maxJTILength keeps a client from making the server hash megabytes.
	maxJTILength = 256
)

// assertionStore is what client authentication needs of the store.
type assertionStore interface {
	GetClient(ctx context.Context, id string) (fosite.Client, error)
	SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error
}

var _ assertionStore = (*store.Store)(nil)

// clientAuth authenticates clients at the token, revocation and
// introspection endpoints. It does what fosite v0.49.0's default strategy
// gets wrong or leaves out:
//
//   - A malformed Basic header is invalid_client (401), not a silent fall
//     back to the body and invalid_request (RFC 6749 §5.2).
//   - private_key_jwt (RFC 7523) is verified here: fosite demands the
//     client's registered algorithm and refuses every assertion when none
//     is registered, looks keys up only when they say use=sig, accepts an
//     exp of any distance, checks and records the jti in two steps that
//     concurrent requests can both pass, and only knows the token endpoint
//     as an audience.
//   - A private_key_jwt client cannot authenticate any other way.
//
// Client secrets and public clients stay with fosite's strategy.
type clientAuth struct {
	store     assertionStore
	fallback  fosite.ClientAuthenticationStrategy
	fetchJWKS func(ctx context.Context, uri string, force bool) (*josev3.JSONWebKeySet, error)
	// audiences are the values an assertion's aud may name: the token
	// endpoint or the issuer (RFC 7523 §3 item 3), or the pushed
	// authorization request endpoint (RFC 9126 §2).
	audiences []string
	now       func() time.Time
	log       *slog.Logger
}

// withClientAuth makes f authenticate clients through clientAuth.
//
// fosite's default JWKS fetcher is not used: it retries for minutes, reads
// bodies of any size, and fosite.Config creates it lazily, which races.
func withClientAuth(f *fosite.Fosite, fc *fosite.Config, st assertionStore, cfg *config.Config, log *slog.Logger, now func() time.Time) *fosite.Fosite {
	a := &clientAuth{
		store:     st,
		fallback:  f.DefaultClientAuthenticationStrategy,
		fetchJWKS: newJWKSFetcher(jwksHTTPClient(), now).resolve,
		audiences: []string{cfg.IssuerURL(PathToken), cfg.Issuer, cfg.IssuerURL(PathPAR)},
		now:       now,
		log:       log,
	}
	fc.ClientAuthenticationStrategy = a.authenticate
	return f
}

func (a *clientAuth) authenticate(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	c, err := a.authenticateAny(ctx, r, form)
	if err == nil {
		// The access log line and every later line of the request name
		// the client: the token, revocation, introspection, PAR and
		// device endpoints all authenticate here.
		requestid.SetClientID(ctx, c.GetID())
	}
	return c, err
}

func (a *clientAuth) authenticateAny(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	basic, err := basicCredentials(r)
	if err != nil {
		return nil, err
	}
	if form.Has("client_assertion_type") || form.Has("client_assertion") {
		// RFC 6749 §2.3: one authentication method per request.
		if basic || form.Has("client_secret") {
			return nil, fosite.ErrInvalidRequest.WithHint("Use exactly one client authentication method: a client_assertion, HTTP Basic or client_secret.")
		}
		return a.assertion(ctx, form)
	}
	c, err := a.fallback(ctx, r, form)
	if err != nil {
		return nil, err
	}
	if oc, ok := c.(fosite.OpenIDConnectClient); ok && oc.GetTokenEndpointAuthMethod() == "private_key_jwt" {
		return nil, fosite.ErrInvalidClient.WithHint("This client authenticates with a signed client_assertion (private_key_jwt) only.")
	}
	return c, nil
}

// basicCredentials checks an Authorization header, when there is one, is
// well-formed HTTP Basic with a client ID (RFC 6749 §2.3.1, RFC 7617). A
// client that tried the header and got it wrong gets invalid_client, and
// writeError adds the WWW-Authenticate challenge (RFC 6749 §5.2).
func basicCredentials(r *http.Request) (bool, error) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return false, nil
	}
	bad := func(why string) (bool, error) {
		return true, fosite.ErrInvalidClient.WithHint("The Authorization header is not valid HTTP Basic client credentials: " + why + ".")
	}
	if len(values) > 1 {
		return bad("it is sent more than once")
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		return bad("expected 'Basic' and base64 of client_id:client_secret")
	}
	// The ID and secret are form-encoded before base64 (RFC 6749 §2.3.1).
	if id, err := url.QueryUnescape(id); err != nil || id == "" {
		return bad("the client_id is empty or not form-encoded")
	}
	if _, err := url.QueryUnescape(secret); err != nil {
		return bad("the client_secret is not form-encoded")
	}
	return true, nil
}

// assertion authenticates a client by an RFC 7523 JWT signed with one of
// its registered keys.
func (a *clientAuth) assertion(ctx context.Context, form url.Values) (fosite.Client, error) {
	if t := form.Get("client_assertion_type"); t != jwtBearerAssertion {
		return nil, fosite.ErrInvalidRequest.WithHintf("The client_assertion_type must be '%s'.", jwtBearerAssertion)
	}
	raw := form.Get("client_assertion")
	if raw == "" {
		return nil, fosite.ErrInvalidRequest.WithHint("The client_assertion parameter is missing.")
	}
	invalid := func(hint string) error { return fosite.ErrInvalidClient.WithHint(hint) }

	// Only asymmetric algorithms parse: an HS256 "signature" made with the
	// client's public key, or alg none, never reaches a key.
	tok, err := jwt.ParseSigned(raw, keys.ClientAssertionAlgorithms)
	if err != nil || len(tok.Headers) != 1 {
		return nil, invalid("The client_assertion is not a JWT signed with an asymmetric algorithm (RS, PS, ES or EdDSA).")
	}
	hdr := tok.Headers[0]
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, invalid("The client_assertion's claims cannot be read.")
	}
	id := form.Get("client_id")
	if id == "" {
		id = unverified.Subject
	}
	if id == "" {
		return nil, invalid("The client_assertion has no 'sub' claim.")
	}
	client, err := a.store.GetClient(ctx, id)
	if err != nil {
		return nil, fosite.ErrInvalidClient.WithWrap(err).WithDebug(err.Error())
	}
	oc, ok := client.(fosite.OpenIDConnectClient)
	if !ok || oc.GetTokenEndpointAuthMethod() != "private_key_jwt" {
		return nil, invalid("This client does not authenticate with private_key_jwt.")
	}
	alg := string(hdr.Algorithm)
	if pinned := oc.GetTokenEndpointAuthSigningAlgorithm(); pinned != "" && pinned != alg {
		return nil, invalid("The client_assertion must be signed with the registered token_endpoint_auth_signing_alg " + pinned + ".")
	}

	var claims jwt.Claims
	if err := a.verify(ctx, oc, tok, hdr.KeyID, alg, &claims); err != nil {
		return nil, err
	}
	if err := a.checkClaims(id, claims); err != nil {
		return nil, err
	}
	// Single use on every instance: the jti row is inserted under a
	// primary key, so of two concurrent uses one fails. It is kept until
	// the assertion could no longer be accepted, leeway included. The key
	// is per client, so one client cannot spend another's jti.
	err = a.store.SetClientAssertionJWT(ctx, id+" "+claims.ID, claims.Expiry.Time().Add(assertionLeeway))
	switch {
	case errors.Is(err, fosite.ErrJTIKnown):
		return nil, invalid("The client_assertion was already used; its jti must be new for every request (RFC 7523 §3).")
	case err != nil:
		return nil, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	return client, nil
}

// storedKeySet is a client whose registered key set may fail to parse
// (store.Client); fosite's GetJSONWebKeys cannot say so.
type storedKeySet interface {
	GetID() string
	JSONWebKeys() (*josev3.JSONWebKeySet, error)
}

// verify checks the assertion's signature with a registered key that fits
// its algorithm, refetching a jwks_uri once when no key does (the client
// may have rotated).
func (a *clientAuth) verify(ctx context.Context, oc fosite.OpenIDConnectClient, tok *jwt.JSONWebToken, kid, alg string, claims *jwt.Claims) error {
	try := func(set *josev3.JSONWebKeySet) bool {
		for _, k := range candidateKeys(set, kid, alg) {
			if tok.Claims(k, claims) == nil {
				return true
			}
		}
		return false
	}
	// A stored client's set is parsed once, with its error; any other
	// client only has fosite's accessor.
	var set *josev3.JSONWebKeySet
	if sc, ok := oc.(storedKeySet); !ok {
		set = oc.GetJSONWebKeys()
	} else {
		var err error
		if set, err = sc.JSONWebKeys(); err != nil {
			// Not "no keys": the registration is broken and only an
			// administrator can mend it, so say so on both sides.
			a.log.ErrorContext(ctx, "client authentication refused: stored JWKS unreadable", "client_id", sc.GetID(), "error", err)
			return fosite.ErrInvalidClient.WithHint("The client's registered key set cannot be read; it must be registered again.").WithWrap(err)
		}
	}
	if set != nil {
		if try(set) {
			return nil
		}
	} else if uri := oc.GetJSONWebKeysURI(); uri != "" {
		for _, force := range []bool{false, true} {
			set, err := a.fetchJWKS(ctx, uri, force)
			if err != nil {
				return fosite.ErrInvalidClient.WithHint("The client's jwks_uri could not be fetched.").WithWrap(err).WithDebug(err.Error())
			}
			if try(set) {
				return nil
			}
		}
	}
	return fosite.ErrInvalidClient.WithHintf("The client_assertion is not signed by a registered %s key of the client.", alg)
}

// candidateKeys are the keys of set that may verify a signature by alg:
// the right kid when the header names one, meant for signatures, not
// pinned to another algorithm, and of the algorithm's type and size.
func candidateKeys(set *josev3.JSONWebKeySet, kid, alg string) []any {
	var out []any
	for _, k := range set.Keys {
		if kid != "" && k.KeyID != kid {
			continue
		}
		if (k.Use != "" && k.Use != "sig") || (k.Algorithm != "" && k.Algorithm != alg) {
			continue
		}
		if keys.Fits(alg, k.Key) {
			out = append(out, k.Key)
		}
	}
	return out
}

// checkClaims applies RFC 7523 §3 to a verified assertion.
func (a *clientAuth) checkClaims(id string, c jwt.Claims) error {
	invalid := func(hint string) error { return fosite.ErrInvalidClient.WithHint(hint) }
	now := a.now()
	switch {
	case c.Issuer != id || c.Subject != id:
		return invalid("The client_assertion's 'iss' and 'sub' must both be the client_id.")
	case !slices.ContainsFunc([]string(c.Audience), func(aud string) bool { return slices.Contains(a.audiences, aud) }):
		return invalid("The client_assertion's 'aud' must name the token endpoint (" + a.audiences[0] + ") or the issuer (" + a.audiences[1] + ").")
	case c.Expiry == nil:
		return invalid("The client_assertion has no 'exp' claim.")
	case !now.Before(c.Expiry.Time().Add(assertionLeeway)):
		return invalid("The client_assertion has expired.")
	case c.Expiry.Time().Sub(now) > maxAssertionLifetime+assertionLeeway:
		return invalid("The client_assertion's 'exp' is more than " + maxAssertionLifetime.String() + " ahead.")
	case c.NotBefore != nil && now.Add(assertionLeeway).Before(c.NotBefore.Time()):
		return invalid("The client_assertion is not valid yet ('nbf').")
	case c.IssuedAt != nil && now.Add(assertionLeeway).Before(c.IssuedAt.Time()):
		return invalid("The client_assertion's 'iat' is in the future.")
	case c.ID == "" || len(c.ID) > maxJTILength:
		return invalid("The client_assertion needs a 'jti' of at most 256 characters.")
	}
	return nil
}
