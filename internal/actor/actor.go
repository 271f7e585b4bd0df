// Package actor carries who is making an admin change through its
// context: the admin token's name ("bootstrap" for LATCHKEY_ADMIN_TOKEN) on
// the admin API, "cli:$USER" from the command line. The audit log records
// it, and log lines written with that context carry it as "actor". It is
// small and imports nothing of Latchkey so that any layer (the access log
// middleware too) can read it.
package actor

import (
	"context"
	"log/slog"
	"sync"
)

// LogKey is the one log key for the actor.
const LogKey = "actor"

// Bootstrap is the actor of LATCHKEY_ADMIN_TOKEN.
const Bootstrap = "bootstrap"

type ctxKey struct{}

type slotKey struct{}

// slot carries an actor back up to a layer that wrapped the request before
// the admin guard ran: the guard derives a new context, which the outer
// middleware (the access log) never sees.
type slot struct {
	mu   sync.Mutex
	name string
}

// WithSlot returns ctx with room for the actor that a later NewContext on
// a context derived from it sets; FromContext on ctx then reads it. The
// access log middleware calls it before the handler runs.
func WithSlot(ctx context.Context) context.Context {
	return context.WithValue(ctx, slotKey{}, &slot{})
}

// NewContext returns ctx carrying name, and fills the slot of an outer
// WithSlot, if any.
func NewContext(ctx context.Context, name string) context.Context {
	if s, ok := ctx.Value(slotKey{}).(*slot); ok {
		s.mu.Lock()
		s.name = name
		s.mu.Unlock()
	}
	return context.WithValue(ctx, ctxKey{}, name)
}

// FromContext is the actor ctx carries (or its slot holds), or "".
func FromContext(ctx context.Context) string {
	if name, ok := ctx.Value(ctxKey{}).(string); ok {
		return name
	}
	if s, ok := ctx.Value(slotKey{}).(*slot); ok {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.name
	}
	return ""
}

// Logger wraps l's handler so that every record logged with a context
// carrying an actor gets actor. Wrapping twice adds it once.
func Logger(l *slog.Logger) *slog.Logger {
	if _, ok := l.Handler().(handler); ok {
		return l
	}
	return slog.New(handler{l.Handler()})
}

type handler struct{ slog.Handler }

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	if name := FromContext(ctx); name != "" {
		r = r.Clone()
		r.AddAttrs(slog.String(LogKey, name))
	}
	return h.Handler.Handle(ctx, r)
}

func (h handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return handler{h.Handler.WithAttrs(attrs)}
}

func (h handler) WithGroup(name string) slog.Handler {
	return handler{h.Handler.WithGroup(name)}
}
