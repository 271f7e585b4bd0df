package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/actor"
	"github.com/latchkey/latchkey/internal/oauth"
	"github.com/latchkey/latchkey/internal/requestid"
	"github.com/latchkey/latchkey/internal/store"
)

// middleware wraps a listener's mux: recover, limit the body, then record.
func (s *Server) middleware(next http.Handler) http.Handler {
	return s.observe(s.recoverPanics(limitBody(next)))
}

// wellKnown holds the documents any page may read (RFC 8414 and
// OpenID Connect Discovery metadata, the JWKS). Every answer under it is
// readable cross-origin, a 404 or 405 included: a browser library must see
// the real status, not what looks like a CORS failure.
const wellKnown = "/.well-known/"

// corsOAuth are the endpoints a browser app (a public client) calls itself.
var corsOAuth = map[string]bool{
	oauth.PathToken: true, oauth.PathRevoke: true, oauth.PathPAR: true, oauth.PathDeviceAuthorization: true,
}

// corsBearer are resource endpoints a browser app calls with a bearer
// token in the Authorization header (OpenID Connect UserInfo). Any origin
// may: the token is the credential, never a cookie, so a page that holds
// one could use it anyway, and a page that does not gets nothing.
var corsBearer = map[string]bool{oauth.PathUserinfo: true}

// cors lets browser apps read the metadata and keys, and lets browser apps
// call the token, revocation, PAR and device authorization endpoints from
// the origins their client allows (allowed_cors_origins, or those of its
// redirect URIs) or from any in LATCHKEY_CORS_ORIGINS. No credentials
// (cookies) are ever allowed cross-origin. Hand-written rather than
// github.com/rs/cors: these are three policies by path (public documents,
// a bearer resource, per-client endpoints whose decision reads the body),
// and rs/cors would answer a refused preflight itself where this lets the
// mux answer 405 as for any other method it does not serve.
func (s *Server) cors(next http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, o := range s.cfg.AllowedOrigins() {
		allowed[o] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		switch {
		case origin == "":
		case strings.HasPrefix(r.URL.Path, wellKnown):
			w.Header().Set("Access-Control-Allow-Origin", "*")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				// A preflight (a library adding a header to its GET): the
				// documents are public, so any header may be sent; no
				// credentials are ever allowed.
				w.Header().Set("Access-Control-Allow-Methods", "GET")
				if h := r.Header.Get("Access-Control-Request-Headers"); h != "" {
					w.Header().Set("Access-Control-Allow-Headers", h)
				}
				w.Header().Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		case corsBearer[r.URL.Path]:
			w.Header().Set("Access-Control-Allow-Origin", "*")
			// The challenge says why a call failed (RFC 6750 §3, RFC 9449
			// §7.1); a DPoP client reads its next nonce from DPoP-Nonce.
			w.Header().Set("Access-Control-Expose-Headers", "WWW-Authenticate, DPoP-Nonce")
			if r.Method == http.MethodOptions {
				w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
				w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, DPoP")
				w.Header().Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		case corsOAuth[r.URL.Path]:
			// Whether the origin is allowed depends on it (and on the
			// client named in the body): no shared cache may reuse an
			// answer for another.
			w.Header().Add("Vary", "Origin")
			preflight := r.Method == http.MethodOptions
			if !allowed[origin] && !s.clientAllowsOrigin(r, origin, preflight) {
				break
			}
			w.Header().Set("Access-Control-Allow-Origin", origin)
			// A browser app using DPoP (RFC 9449) sends a proof and reads
			// the server's nonce.
			w.Header().Set("Access-Control-Expose-Headers", "DPoP-Nonce")
			if preflight {
				w.Header().Set("Access-Control-Allow-Methods", "POST")
				w.Header().Set("Access-Control-Allow-Headers", "Content-Type, DPoP")
				w.Header().Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// clientAllowsOrigin decides for the per-client origins. A preflight
// carries no body, so it names no client: it is let through when some
// client allows the origin, which only lets the browser send the request
// that follows. That request names its client (client_id, Basic auth or
// a client assertion), and only that client's origins let the page read
// the answer: one client's origin never speaks for another's client_id.
// Both are read through the store's client cache, which every instance
// drops on a client change, so an update takes effect without a restart.
func (s *Server) clientAllowsOrigin(r *http.Request, origin string, preflight bool) bool {
	ctx := r.Context()
	if preflight {
		ok, err := s.store.AnyClientAllowsOrigin(ctx, origin)
		if err != nil {
			s.log.WarnContext(ctx, "CORS preflight: client origins unavailable", "error", err)
		}
		return ok
	}
	id := requestClientID(r)
	if id == "" {
		return false
	}
	c, err := s.store.FindClient(ctx, id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.WarnContext(ctx, "CORS: client unavailable", "client_id", id, "error", err)
		}
		return false
	}
	return c.AllowsOrigin(origin)
}

// requestClientID names the client a request is made as, before any
// handler has parsed it: Basic auth's user name (form-encoded, RFC 6749
// §2.3.1), else the form's client_id, else the sub of a client assertion
// (RFC 7523 §3; unverified here: it only picks whose origins apply, and
// the endpoint verifies it). limitBody has already read the body into
// memory, so reading it here costs a copy, never the network.
func requestClientID(r *http.Request) string {
	if user, _, ok := r.BasicAuth(); ok {
		if id, err := url.QueryUnescape(user); err == nil {
			return id
		}
		return ""
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" || r.Body == nil {
		return ""
	}
	body, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return ""
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return ""
	}
	if id := form.Get("client_id"); id != "" {
		return id
	}
	return assertionSubject(form.Get("client_assertion"))
}

// assertionSubject is the sub claim of a JWT, read without verifying it.
func assertionSubject(jwt string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	return claims.Sub
}

// limitBody refuses bodies over MaxBodyBytes with 413 before any handler
// parses them. The body is read here (it is small by construction), so
// fosite's own parser never sees a truncated form and answers 400 for what
// is really a size problem.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxBodyBytes {
			tooLarge(w)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
			if err != nil {
				var maxErr *http.MaxBytesError
				if errors.As(err, &maxErr) {
					tooLarge(w)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, `{"error":"invalid_request","error_description":"the request body could not be read"}`+"\n")
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		next.ServeHTTP(w, r)
	})
}

func tooLarge(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	_, _ = io.WriteString(w, `{"error":"invalid_request","error_description":"the request body is larger than 1 MiB"}`+"\n")
}

// recoverPanics turns a panic into a plain 500: the stack goes to the log,
// never to the client.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.ErrorContext(r.Context(), "panic serving request", "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = io.WriteString(w, `{"error":"server_error"}`+"\n")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// observe gives the request its id (the caller's X-Request-Id when sane, so
// a proxy's logs and ours share it), records metrics by route pattern (never
// the raw path, which would explode label cardinality) and writes one access
// log line per request at info. The id travels in the context: every line
// logged with it carries request_id, and the response echoes it. Handlers
// record the client (requestid.SetClientID) and the admin guard its actor
// (actor.NewContext) in holders this puts in the context and reads once
// they return.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		requestID := requestid.FromHeader(r.Header.Get(requestid.Header))
		// The holders that handlers further in fill: the client
		// (requestid) and the admin guard's actor (actor).
		ctx := actor.WithSlot(requestid.WithFields(requestid.NewContext(r.Context(), requestID)))
		r = r.WithContext(ctx)
		w.Header().Set(requestid.Header, requestID)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		elapsed := time.Since(start)
		nameSpan(ctx, route, requestID)
		s.metrics.HTTPRequests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
		s.metrics.HTTPDuration.WithLabelValues(route).Observe(elapsed.Seconds())
		// client_id and actor join from the context (requestid.Logger,
		// actor.Logger).
		s.log.InfoContext(ctx, "request", "method", r.Method, "route", route,
			"status", rec.status, "duration_ms", float64(elapsed.Microseconds())/1000)
	})
}
