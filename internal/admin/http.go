package admin

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/latchkey/latchkey/internal/actor"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/store"
)

// API is the admin HTTP API. Every route demands an admin bearer token:
// the bootstrap LATCHKEY_ADMIN_TOKEN or a named one (tokens.go).
type API struct {
	svc *Service
	// bootstrapHash is the SHA-256 of LATCHKEY_ADMIN_TOKEN.
	bootstrapHash [32]byte
	keys          *keys.Manager
	log           *slog.Logger
}

// NewAPI returns the admin API guarded by adminToken (the bootstrap
// token) and the named tokens in the database. Its log lines carry the
// request's actor.
func NewAPI(svc *Service, km *keys.Manager, adminToken string, log *slog.Logger) *API {
	return &API{svc: svc, keys: km, bootstrapHash: sha256.Sum256([]byte(adminToken)), log: actor.Logger(log)}
}

// Register adds the admin routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.Handle("POST /admin/clients", a.guard(a.createClient))
	mux.Handle("GET /admin/clients", a.guard(a.listClients))
	mux.Handle("GET /admin/clients/{id}", a.guard(a.getClient))
	mux.Handle("PUT /admin/clients/{id}", a.guard(a.replaceClient))
	mux.Handle("DELETE /admin/clients/{id}", a.guard(a.deleteClient))
	mux.Handle("POST /admin/clients/{id}/secret", a.guard(a.rotateSecret))
	mux.Handle("POST /admin/users", a.guard(a.createUser))
	mux.Handle("GET /admin/users", a.guard(a.listUsers))
	mux.Handle("GET /admin/users/{id}", a.guard(a.getUser))
	mux.Handle("PATCH /admin/users/{id}", a.guard(a.patchUser))
	mux.Handle("DELETE /admin/users/{id}", a.guard(a.deleteUser))
	mux.Handle("PUT /admin/users/{id}/password", a.guard(a.setPassword))
	mux.Handle("POST /admin/users/{id}/revoke-tokens", a.guard(a.revokeUserTokens))
	mux.Handle("GET /admin/users/{id}/factors", a.guard(a.listFactors))
	mux.Handle("DELETE /admin/users/{id}/factors", a.guard(a.resetFactors))
	mux.Handle("DELETE /admin/users/{id}/factors/{factor}", a.guard(a.resetFactors))
	mux.Handle("GET /admin/scopes", a.guard(a.listScopes))
	mux.Handle("GET /admin/scopes/{name}", a.guard(a.getScope))
	mux.Handle("PUT /admin/scopes/{name}", a.guard(a.putScope))
	mux.Handle("DELETE /admin/scopes/{name}", a.guard(a.deleteScope))
	mux.Handle("GET /admin/keys", a.guard(a.listKeys))
	mux.Handle("POST /admin/keys/rotate", a.guard(a.rotateKey))
	mux.Handle("POST /admin/keys/{kid}/revoke", a.guard(a.revokeKey))
	mux.Handle("POST /admin/keys/import", a.guard(a.importKey))
	mux.Handle("POST /admin/tokens", a.guard(a.createAdminToken))
	mux.Handle("GET /admin/tokens", a.guard(a.listAdminTokens))
	mux.Handle("DELETE /admin/tokens/{name}", a.guard(a.revokeAdminToken))
	mux.Handle("POST /admin/tokens/{name}/rotate", a.guard(a.rotateAdminToken))
	mux.Handle("GET /admin/audit", a.guard(a.listAudit))
}

type userRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// createUserRequest is the body of POST /admin/users: the account and its
// profile. Members are listed one by one (not an embedded Profile) because
// unknownFields knows the top-level fields only.
type createUserRequest struct {
	Username      string   `json:"username"`
	Password      string   `json:"password"`
	Email         string   `json:"email"`
	EmailVerified bool     `json:"email_verified"`
	Name          string   `json:"name"`
	GivenName     string   `json:"given_name"`
	FamilyName    string   `json:"family_name"`
	Picture       string   `json:"picture"`
	Locale        string   `json:"locale"`
	Groups        []string `json:"groups"`
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request) {
	var req createUserRequest
	if !decodeAs(w, r, &req, "invalid_request") {
		return
	}
	p := Profile{
		Email: req.Email, EmailVerified: req.EmailVerified, Name: req.Name, GivenName: req.GivenName,
		FamilyName: req.FamilyName, Picture: req.Picture, Locale: req.Locale, Groups: req.Groups,
	}
	u, err := a.svc.CreateUserWithProfile(r.Context(), req.Username, req.Password, p)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "user created", "user_id", u.ID)
	writeJSON(w, http.StatusCreated, u)
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) {
	u, err := a.svc.GetUser(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

// patchUser changes the members present in the body (RFC 7396 in spirit:
// null clears a field) and answers the user as it now is.
func (a *API) patchUser(w http.ResponseWriter, r *http.Request) {
	var patch UserPatch
	if !decodeAs(w, r, &patch, "invalid_request") {
		return
	}
	id := r.PathValue("id")
	u, err := a.svc.UpdateUser(r.Context(), id, &patch)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "user updated", "user_id", id)
	writeJSON(w, http.StatusOK, u)
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) {
	us, err := a.svc.ListUsers(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, us)
}

func (a *API) deleteUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := a.svc.DeleteUser(r.Context(), id); err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "user deleted", "user_id", id)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) setPassword(w http.ResponseWriter, r *http.Request) {
	var req userRequest
	if !decodeAs(w, r, &req, "invalid_request") {
		return
	}
	id := r.PathValue("id")
	if err := a.svc.SetPassword(r.Context(), id, req.Password); err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "user password changed; sessions and grants revoked", "user_id", id)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) revokeUserTokens(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := a.svc.RevokeUserTokens(r.Context(), id); err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "user tokens revoked", "user_id", id)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.keys.List())
}

// rotateKey publishes a new signing key of every algorithm now; each signs
// after the pre-publication period. The answer is the configured
// algorithm's new key, one object as before there was a chain per
// algorithm, so existing callers keep working; GET /admin/keys lists all.
//
// With ?now=true (or a body {"now": true}) it is the emergency rotation:
// the new keys sign at once, without pre-publication (keys.RotateNow).
func (a *API) rotateKey(w http.ResponseWriter, r *http.Request) {
	now, ok := rotateNow(w, r)
	if !ok {
		return
	}
	rotate := a.keys.Rotate
	if now {
		rotate = a.keys.RotateNow
	}
	info, err := rotate(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "signing key rotation requested", "kid", info.KID, "activates_at", info.ActivatesAt)
	a.recordKey(r, ActionKeyRotate, info.KID, info)
	writeJSON(w, http.StatusOK, info)
}

// Guard puts h behind the admin bearer token: for what the admin listener
// serves besides the API (/metrics, /debug/pprof), which shows internals
// and, for pprof, costs CPU on demand.
func (a *API) Guard(h http.Handler) http.Handler { return a.guard(h.ServeHTTP) }

// guard checks the bearer token (Service.AuthenticateAdmin) and puts its
// name in the request's context as the actor. Named tokens are read from
// the database on every request, so a revoked one fails at once on every
// instance; admin calls are rare enough for one indexed query each.
func (a *API) guard(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r.Header.Get("Authorization"))
		name := ""
		if ok {
			var err error
			name, ok, err = a.svc.AuthenticateAdmin(r.Context(), token, a.bootstrapHash)
			if err != nil {
				a.fail(w, r, err)
				return
			}
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="latchkey-admin"`)
			writeError(w, http.StatusUnauthorized, "invalid_token", "the admin API needs Authorization: Bearer with LATCHKEY_ADMIN_TOKEN or a named admin token")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		next(w, r.WithContext(actor.NewContext(r.Context(), name)))
	})
}

// bearerToken takes the token of an "Authorization: Bearer …" header. The
// scheme is case-insensitive (RFC 7235 §2.1, RFC 6750 §2.1), so "bearer"
// and "BEARER" from an HTTP library are the same request.
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	return token, token != ""
}

func (a *API) createClient(w http.ResponseWriter, r *http.Request) {
	var md ClientMetadata
	if !decode(w, r, &md) {
		return
	}
	out, err := a.svc.CreateClient(r.Context(), &md)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "client created", "client_id", out.ClientID)
	writeJSON(w, http.StatusCreated, out)
}

func (a *API) listClients(w http.ResponseWriter, r *http.Request) {
	out, err := a.svc.ListClients(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) getClient(w http.ResponseWriter, r *http.Request) {
	out, err := a.svc.GetClient(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) replaceClient(w http.ResponseWriter, r *http.Request) {
	var md ClientMetadata
	if !decode(w, r, &md) {
		return
	}
	out, err := a.svc.ReplaceClient(r.Context(), r.PathValue("id"), &md)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "client replaced", "client_id", out.ClientID)
	writeJSON(w, http.StatusOK, out)
}

func (a *API) deleteClient(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := a.svc.DeleteClient(r.Context(), id); err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "client deleted", "client_id", id)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) rotateSecret(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	out, err := a.svc.RotateSecret(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "client secret rotated", "client_id", id)
	writeJSON(w, http.StatusOK, out)
}

// fail is the one place admin errors become HTTP statuses.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var md *MetadataError
	switch {
	case errors.As(err, &md):
		writeError(w, http.StatusBadRequest, md.Code, md.Description)
	case errors.As(err, new(*InputError)):
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
	case errors.Is(err, ErrAdminTokenExists):
		writeError(w, http.StatusConflict, "conflict", "an admin token of that name exists; revoke or rotate it")
	case errors.Is(err, ErrUsernameTaken):
		writeError(w, http.StatusConflict, "conflict", "that username is taken")
	case errors.Is(err, keys.ErrInvalidKey):
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
	case errors.Is(err, keys.ErrKeyExists):
		writeError(w, http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no such "+resource(r))
	case errors.Is(err, ErrPublicClient):
		writeError(w, http.StatusBadRequest, "invalid_request", "a public or private_key_jwt client has no secret to rotate")
	case errors.Is(err, store.ErrUnavailable):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the database cannot be reached; retry shortly")
	default:
		a.log.ErrorContext(r.Context(), "admin request failed", "path", r.URL.Path, "error", err)
		writeError(w, http.StatusInternalServerError, "server_error", "the request could not be completed")
	}
}

// resource names what a path is about, for error messages.
func resource(r *http.Request) string {
	switch {
	case strings.HasPrefix(r.URL.Path, "/admin/users"):
		return "user"
	case strings.HasPrefix(r.URL.Path, "/admin/clients"):
		return "client"
	case strings.HasPrefix(r.URL.Path, "/admin/scopes"):
		return "scope description"
	case strings.HasPrefix(r.URL.Path, "/admin/keys"):
		return "signing key"
	case strings.HasPrefix(r.URL.Path, "/admin/tokens"):
		return "admin token"
	}
	return "resource"
}

// decode reads a JSON body of client metadata. RFC 7591 §2 lets a server
// ignore metadata it does not know, but an operator who sends logo_uri or
// a misspelt redirect_uri and gets 201 believes it was stored: unknown
// fields are refused, each named (invalid_client_metadata). Trailing data
// is refused too.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	return decodeAs(w, r, v, "invalid_client_metadata")
}

// decodeAs is decode with the error code the endpoint answers with.
func decodeAs(w http.ResponseWriter, r *http.Request, v any, code string) bool {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, code, "the body could not be read")
		return false
	}
	if unknown := unknownFields(body, v); len(unknown) > 0 {
		writeError(w, http.StatusBadRequest, code, "unknown fields: "+strings.Join(unknown, ", "))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, code, "the body is not a valid JSON object: "+jsonProblem(err))
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, code, "the body has data after the JSON object")
		return false
	}
	return true
}

// unknownFields names, sorted, every top-level member of a JSON object body
// that v (a pointer to a struct) has no field for. encoding/json stops at
// the first; a person fixing a request wants them all. Names match as
// encoding/json matches them, ignoring case. A body that is no object gives
// none here and fails to decode instead.
func unknownFields(body []byte, v any) []string {
	var members map[string]json.RawMessage
	if json.Unmarshal(body, &members) != nil {
		return nil
	}
	var known []string
	t := reflect.TypeOf(v).Elem()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported():
		case name == "":
			known = append(known, f.Name)
		default:
			known = append(known, name)
		}
	}
	var unknown []string
	for m := range members {
		if !slices.ContainsFunc(known, func(k string) bool { return strings.EqualFold(k, m) }) {
			unknown = append(unknown, strconv.Quote(m))
		}
	}
	slices.Sort(unknown)
	return unknown
}

func jsonProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return "field " + typeErr.Field + " must be " + typeErr.Type.String()
	}
	if errors.Is(err, io.EOF) {
		return "it is empty"
	}
	return err.Error()
}

func writeError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// recordKey writes the audit entry of a signing key change that has been
// made (RecordKeyChange says why afterwards). The change stands either
// way, so a failure is logged, not answered.
func (a *API) recordKey(r *http.Request, action, kid string, after any) {
	if err := a.svc.RecordKeyChange(r.Context(), action, kid, nil, after); err != nil {
		a.log.ErrorContext(r.Context(), "audit entry of a signing key change not written", "action", action, "kid", kid, "error", err)
	}
}
