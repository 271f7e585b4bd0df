package requestid_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/requestid"
)

func TestValid(t *testing.T) {
	for name, tc := range map[string]struct {
		id   string
		want bool
	}{
		"uuid":           {"0f8fad5b-d9cb-469f-a165-70867728950e", true},
		"trace header":   {"Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1", true},
		"one character":  {"x", true},
		"at the bound":   {strings.Repeat("a", requestid.MaxLen), true},
		"empty":          {"", false},
		"over the bound": {strings.Repeat("a", requestid.MaxLen+1), false},
		"space":          {"a b", false},
		"newline":        {"a\nfake log line", false},
		"control":        {"a\x1b[31m", false},
		"non-ASCII":      {"idé", false},
		"DEL":            {"a\x7f", false},
	} {
		t.Run(name, func(t *testing.T) {
			if got := requestid.Valid(tc.id); got != tc.want {
				t.Fatalf("Valid(%q) = %v, want %v", tc.id, got, tc.want)
			}
		})
	}
}

func TestFromHeader(t *testing.T) {
	if got := requestid.FromHeader("abc-123"); got != "abc-123" {
		t.Fatalf("a sane id is kept: got %q", got)
	}
	a, b := requestid.FromHeader("bad id"), requestid.FromHeader("")
	if a == "bad id" || !requestid.Valid(a) || !requestid.Valid(b) || a == b {
		t.Fatalf("refused ids are replaced by fresh valid ones: %q %q", a, b)
	}
}

// Every line logged with the request's context carries request_id, once,
// also through loggers derived with With, and a logger wrapped twice does
// not repeat it; lines without the context have none.
func TestLoggerAddsTheID(t *testing.T) {
	var buf bytes.Buffer
	log := requestid.Logger(requestid.Logger(slog.New(slog.NewJSONHandler(&buf, nil))))
	ctx := requestid.NewContext(context.Background(), "req-1")
	log.InfoContext(ctx, "one")
	log.With("client_id", "c").WarnContext(ctx, "two")
	log.Info("three")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines, got %q", buf.String())
	}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		want := "req-1"
		if i == 2 {
			want = ""
		}
		got, _ := m["request_id"].(string)
		if got != want || strings.Count(line, `"request_id"`) > 1 {
			t.Errorf("line %d: request_id %q, want %q: %s", i+1, got, want, line)
		}
	}
}

// Once a handler has recorded the client, every line logged with the
// request's context carries client_id, once: a line that names its own
// client_id, or a logger made With one, keeps it. The first client
// recorded wins; without the holder nothing is recorded.
func TestLoggerAddsClientID(t *testing.T) {
	var buf bytes.Buffer
	log := requestid.Logger(slog.New(slog.NewJSONHandler(&buf, nil)))
	ctx := requestid.WithFields(requestid.NewContext(context.Background(), "req-2"))
	log.InfoContext(ctx, "before")
	requestid.SetClientID(ctx, "client-a")
	requestid.SetClientID(ctx, "client-b")
	log.ErrorContext(ctx, "after")
	log.InfoContext(ctx, "own", "client_id", "other")
	log.With("client_id", "with").InfoContext(ctx, "with")
	requestid.SetClientID(context.Background(), "nowhere")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{"", "client-a", "other", "with"}
	if len(lines) != len(want) {
		t.Fatalf("want %d lines, got %q", len(want), buf.String())
	}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		client, _ := m["client_id"].(string)
		if client != want[i] || m["request_id"] != "req-2" || strings.Count(line, `"client_id"`) > 1 {
			t.Errorf("line %d: client_id %q, want %q: %s", i+1, client, want[i], line)
		}
	}
	if got := requestid.ClientID(ctx); got != "client-a" {
		t.Errorf("ClientID = %q", got)
	}
}
