package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

// An incoming X-Request-Id that is a sane token is kept: the response
// echoes it and every log line of the request carries it as request_id (the
// handler's own line and the access log line). Anything else is replaced by
// a fresh id, which is echoed and logged the same way.
func TestRequestID(t *testing.T) {
	// One backend is enough: this tests HTTP handling, not storage.
	h := newHarness(t, storetest.Backends()[0])
	for name, tc := range map[string]struct {
		incoming string
		kept     bool
	}{
		"sane token kept":     {"lb-7f3a.42", true},
		"none: a fresh one":   {"", false},
		"space: replaced":     {"two words", false},
		"too long: replaced":  {strings.Repeat("x", 129), false},
		"non-ASCII: replaced": {"id-\u00e9", false},
	} {
		t.Run(name, func(t *testing.T) {
			before := len(h.logs.String())
			body, _ := json.Marshal(map[string]any{"grant_types": []string{"client_credentials"}})
			req, _ := http.NewRequest(http.MethodPost, h.admin.URL+"/admin/clients", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+testAdminToken)
			req.Header.Set("Content-Type", "application/json")
			if tc.incoming != "" {
				req.Header.Set("X-Request-Id", tc.incoming)
			}
			resp, _ := h.do(req)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("create client: %d", resp.StatusCode)
			}
			id := resp.Header.Get("X-Request-Id")
			switch {
			case tc.kept && id != tc.incoming:
				t.Fatalf("echoed %q, want the incoming %q", id, tc.incoming)
			case !tc.kept && (id == "" || id == tc.incoming):
				t.Fatalf("echoed %q: want a fresh id", id)
			}
			seen := map[string]bool{}
			for _, line := range strings.Split(strings.TrimSpace(h.logs.String()[before:]), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("log line is not JSON: %q", line)
				}
				if m["request_id"] != id {
					t.Errorf("log line without the request's id %q: %s", id, line)
				}
				seen[m["msg"].(string)] = true
			}
			if !seen["client created"] || !seen["request"] {
				t.Fatalf("want the handler's line and the access line, got %v", seen)
			}
		})
	}
}
