package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/server"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"github.com/latchkey/latchkey/internal/tracing"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// With traces on, a token request is one trace: the HTTP span named by its
// route, the grant's span and fosite's own spans under it, and SQL spans under
// those, each carrying the request id; a caller's W3C traceparent makes it
// part of the caller's trace. SQL text carries placeholders, never values.
func TestTokenRequestTrace(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		exp := tracetest.NewInMemoryExporter()
		tp := tracing.NewProvider(sdktrace.WithSyncer(exp))
		h := newHarnessWith(t, b, store.Options{Traced: true}, []server.Option{server.WithTracerProvider(tp)})
		c := h.serviceClient("read")
		exp.Reset()

		const caller = "4bf92f3577b34da6a3ce929d0e0e4736"
		req, _ := http.NewRequest(http.MethodPost, h.public.URL+"/oauth2/token",
			strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Request-Id", "trace-req-1")
		req.Header.Set("traceparent", "00-"+caller+"-00f067aa0ba902b7-01")
		req.SetBasicAuth(c.id, c.secret)
		if resp, m := h.do(req); resp.StatusCode != http.StatusOK {
			t.Fatalf("token: %d %v", resp.StatusCode, m)
		}

		spans := exp.GetSpans()
		byID := map[string]tracetest.SpanStub{}
		var httpSpan *tracetest.SpanStub
		for i, s := range spans {
			byID[s.SpanContext.SpanID().String()] = s
			if s.Name == "POST /oauth2/token" {
				httpSpan = &spans[i]
			}
		}
		if httpSpan == nil {
			t.Fatalf("no span named by the route; spans: %v", names(spans))
		}
		if got := httpSpan.SpanContext.TraceID().String(); got != caller {
			t.Errorf("trace id %s, want the caller's %s", got, caller)
		}
		under := func(s tracetest.SpanStub, ancestor string) bool {
			for p := s.Parent.SpanID().String(); ; {
				if p == ancestor {
					return true
				}
				parent, ok := byID[p]
				if !ok {
					return false
				}
				p = parent.Parent.SpanID().String()
			}
		}
		httpID := httpSpan.SpanContext.SpanID().String()
		seen := map[string]bool{}
		for _, s := range spans {
			if s.SpanContext.TraceID() != httpSpan.SpanContext.TraceID() {
				continue
			}
			if s.Name != httpSpan.Name && !under(s, httpID) {
				t.Errorf("span %q is not under the HTTP span", s.Name)
			}
			if attr(s, string(tracing.RequestIDKey)) != "trace-req-1" {
				t.Errorf("span %q without the request id: %v", s.Name, s.Attributes)
			}
			if stmt := attr(s, "db.statement"); stmt != "" {
				seen["sql"] = true
				if strings.Contains(stmt, c.id) {
					t.Errorf("SQL span carries a value: %s", stmt)
				}
			}
			seen[s.Name] = true
		}
		for _, want := range []string{"oauth2.token", "Fosite.NewAccessRequest", "Fosite.NewAccessResponse", "sql"} {
			if !seen[want] {
				t.Errorf("no %s span in the request's trace; spans: %v", want, names(spans))
			}
		}
	})
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}
