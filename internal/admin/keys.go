package admin

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/latchkey/latchkey/internal/keys"
)

// rotateNow reads the emergency flag of POST /admin/keys/rotate from the
// query (?now=true) or a JSON body ({"now": true}). No body and no query is
// the ordinary staged rotation, as before the flag existed.
func rotateNow(w http.ResponseWriter, r *http.Request) (bool, bool) {
	now := false
	if q := r.URL.Query().Get("now"); q != "" {
		v, err := strconv.ParseBool(q)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "now must be true or false")
			return false, false
		}
		now = v
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "the body could not be read")
		return false, false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return now, true
	}
	var req struct {
		Now bool `json:"now"`
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if !decodeAs(w, r, &req, "invalid_request") {
		return false, false
	}
	return now || req.Now, true
}

// revokeKey removes a compromised signing key at once (keys.Revoke): it
// leaves the JWKS, and the tokens it signed stop verifying on every
// instance. An unknown kid is 404.
func (a *API) revokeKey(w http.ResponseWriter, r *http.Request) {
	rev, err := a.keys.Revoke(r.Context(), r.PathValue("kid"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	args := []any{"kid", rev.Revoked.KID, "alg", rev.Revoked.Alg}
	if rev.ReplacedBy != nil {
		args = append(args, "replaced_by", rev.ReplacedBy.KID)
	}
	a.log.WarnContext(r.Context(), "signing key revoked", args...)
	a.recordKey(r, ActionKeyRevoke, rev.Revoked.KID, rev)
	writeJSON(w, http.StatusOK, rev)
}

// importKeyRequest is the body of POST /admin/keys/import. Key is the
// private key: a string holding a PEM block or a JWK, or a JWK object.
type importKeyRequest struct {
	Key json.RawMessage `json:"key"`
	Alg string          `json:"alg"`
	KID string          `json:"kid"`
	Now bool            `json:"now"`
}

// importKey stores a private key an operator brings (keys.Import). The key
// is never logged or echoed; the answer describes it as GET /admin/keys
// does. A key that cannot be used is 400 with the reason.
func (a *API) importKey(w http.ResponseWriter, r *http.Request) {
	var req importKeyRequest
	if !decodeAs(w, r, &req, "invalid_request") {
		return
	}
	material := []byte(req.Key)
	var text string
	if json.Unmarshal(req.Key, &text) == nil {
		material = []byte(text)
	}
	if len(bytes.TrimSpace(material)) == 0 || bytes.Equal(bytes.TrimSpace(material), []byte("null")) {
		writeError(w, http.StatusBadRequest, "invalid_request", "key is required: a PEM private key or a JWK")
		return
	}
	info, err := a.keys.Import(r.Context(), material, keys.ImportOptions{Alg: req.Alg, KID: req.KID, Now: req.Now})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "signing key imported", "kid", info.KID, "alg", info.Alg, "activates_at", info.ActivatesAt)
	a.recordKey(r, ActionKeyImport, info.KID, info)
	writeJSON(w, http.StatusCreated, info)
}
