package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/latchkey/latchkey/internal/actor"
	"github.com/latchkey/latchkey/internal/metrics"
)

// The admin guard names its caller with actor.NewContext on a context of
// its own; the access line, written after the handler returns, still
// carries it as actor (the slot observe gives every request).
func TestAccessLogActor(t *testing.T) {
	var buf bytes.Buffer
	s := &Server{metrics: metrics.New(), log: serverLogger(slog.New(slog.NewJSONHandler(&buf, nil)))}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /admin/things", func(w http.ResponseWriter, r *http.Request) {
		_ = actor.NewContext(r.Context(), "ops-robot")
		w.WriteHeader(http.StatusCreated)
	})
	s.middleware(mux).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/admin/things", nil))
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if m["msg"] != "request" || m["actor"] != "ops-robot" || m["status"] != float64(201) || m["route"] != "POST /admin/things" {
		t.Fatalf("access line %v", m)
	}
}

// With traces off the handlers are not wrapped at all: no span, no
// allocation, nothing on the request path.
func TestTracesOffWrapNothing(t *testing.T) {
	h := &struct{ http.Handler }{http.NotFoundHandler()}
	if got := (&Server{}).traced(h); got != http.Handler(h) {
		t.Fatalf("traced wrapped the handler with traces off: %T", got)
	}
}
