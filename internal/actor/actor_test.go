package actor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/latchkey/latchkey/internal/actor"
)

// TestLoggerAddsActor: a line logged with a context carrying an actor has
// it once, however often the logger was wrapped; one without has none.
func TestLoggerAddsActor(t *testing.T) {
	var buf bytes.Buffer
	log := actor.Logger(actor.Logger(slog.New(slog.NewJSONHandler(&buf, nil))))
	log.InfoContext(actor.NewContext(context.Background(), "ci-deploy"), "client created")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	if line["actor"] != "ci-deploy" {
		t.Errorf("line %s: want actor ci-deploy", buf.String())
	}
	if n := bytes.Count(buf.Bytes(), []byte(`"actor"`)); n != 1 {
		t.Errorf("actor appears %d times", n)
	}
	buf.Reset()
	log.InfoContext(context.Background(), "no actor")
	if bytes.Contains(buf.Bytes(), []byte(`"actor"`)) {
		t.Errorf("line without actor: %s", buf.String())
	}
	if actor.FromContext(context.Background()) != "" {
		t.Error("empty context has an actor")
	}
}

// TestSlotSeesInnerActor: an outer layer that made a slot reads the actor
// set on a context derived from it, as the access log reads what the admin
// guard set.
func TestSlotSeesInnerActor(t *testing.T) {
	outer := actor.WithSlot(context.Background())
	if got := actor.FromContext(outer); got != "" {
		t.Fatalf("before the guard: %q", got)
	}
	inner := actor.NewContext(context.WithValue(outer, struct{}{}, 1), "ops")
	if actor.FromContext(inner) != "ops" || actor.FromContext(outer) != "ops" {
		t.Errorf("inner %q outer %q, want ops", actor.FromContext(inner), actor.FromContext(outer))
	}
}
