package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

// logLines parses the JSON log lines written since before.
func (h *harness) logLines(t *testing.T, before int) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(h.logs.String()[before:]), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out
}

// Every request gets one access line at info: method, the route pattern
// (never the raw path), status, duration, request_id, the client the
// request authenticated and, on the admin listener, the actor. An OAuth error logged while serving it carries
// the same request_id and client_id, without the handler naming them.
func TestAccessLog(t *testing.T) {
	h := newHarness(t, storetest.Backends()[0])
	c := h.serviceClient("read")

	before := len(h.logs.String())
	req, _ := http.NewRequest(http.MethodPost, h.public.URL+"/oauth2/token",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Request-Id", "trace-me-1")
	req.SetBasicAuth(c.id, c.secret)
	resp, m := h.do(req)
	wantError(t, resp, m, http.StatusBadRequest, "invalid_scope")

	var access, oauthErr map[string]any
	for _, l := range h.logLines(t, before) {
		switch l["msg"] {
		case "request":
			access = l
		case "oauth error":
			oauthErr = l
		}
	}
	if access == nil || oauthErr == nil {
		t.Fatalf("want the access line and the oauth error line, got %s", h.logs.String()[before:])
	}
	for k, want := range map[string]any{"level": "INFO", "method": "POST", "route": "POST /oauth2/token",
		"status": float64(400), "request_id": "trace-me-1", "client_id": c.id} {
		if access[k] != want {
			t.Errorf("access line %s = %v, want %v (%v)", k, access[k], want, access)
		}
	}
	if _, ok := access["duration_ms"].(float64); !ok {
		t.Errorf("access line without duration_ms: %v", access)
	}
	if oauthErr["request_id"] != "trace-me-1" || oauthErr["client_id"] != c.id {
		t.Errorf("oauth error line without the request's ids: %v", oauthErr)
	}

	// The route is the pattern: a client's id in the path is not logged
	// as a path, and an unknown path is "unmatched".
	before = len(h.logs.String())
	resp, _ = h.adminJSON(http.MethodGet, "/admin/clients/"+c.id, nil)
	resp2, _ := h.do(mustRequest(t, http.MethodGet, h.public.URL+"/no/such/"+c.id))
	if resp.StatusCode != http.StatusOK || resp2.StatusCode != http.StatusNotFound {
		t.Fatalf("get client %d, unknown path %d", resp.StatusCode, resp2.StatusCode)
	}
	var routes []any
	for _, l := range h.logLines(t, before) {
		if l["msg"] == "request" {
			routes = append(routes, l["route"])
			// The admin guard's actor reaches the access line: the
			// LATCHKEY_ADMIN_TOKEN is "bootstrap"; the public call has none.
			if want := map[bool]any{true: "bootstrap", false: nil}[l["route"] == "GET /admin/clients/{id}"]; l["actor"] != want {
				t.Errorf("access line of %v: actor %v, want %v", l["route"], l["actor"], want)
			}
		}
	}
	if len(routes) != 2 || routes[0] != "GET /admin/clients/{id}" || routes[1] != "unmatched" {
		t.Errorf("routes logged %v, want the patterns", routes)
	}
}
