// Package requestid carries one HTTP request's id, and the client it turns
// out to act for, through its context and puts them on every log line
// written with that context. The id is the
// caller's X-Request-Id when it is a sane token, so a proxy's or a client's
// id joins their logs to ours, or a fresh random one.
package requestid

import (
	"context"
	"log/slog"
	"maps"

	"github.com/latchkey/latchkey/internal/secrets"
)

// Header is the request and response header that carries the id.
const Header = "X-Request-Id"

// LogKey is the one log key for the id. It means the HTTP request, nothing
// else: the fosite request (the grant) is logged as grant_id.
const LogKey = "request_id"

// MaxLen bounds an incoming id: long enough for a UUID, a W3C trace id or
// an AWS trace header, short enough that a client cannot bloat every log
// line of its request.
const MaxLen = 128

type ctxKey struct{}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext is the id ctx carries, or "".
func FromContext(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// Valid reports whether an incoming id may be used as is: 1 to MaxLen
// printable ASCII characters without spaces. Anything else (control
// characters, non-ASCII, a megabyte of header) is replaced, never cleaned
// up, so what is logged is exactly what the caller sent or ours.
func Valid(id string) bool {
	if id == "" || len(id) > MaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// FromHeader is the id to use for a request whose X-Request-Id header is
// incoming: the header when Valid, else a new random id.
func FromHeader(incoming string) string {
	if Valid(incoming) {
		return incoming
	}
	id, err := secrets.RandomToken(9)
	if err != nil {
		// crypto/rand does not fail on supported platforms; an id is a
		// convenience, not a security property.
		return "unavailable"
	}
	return id
}

// Logger wraps l's handler so that every record logged with a context
// carrying an id gets request_id, and client_id once the request has
// learnt it (fields.go), unless the line names its own. Wrapping twice
// adds them once.
func Logger(l *slog.Logger) *slog.Logger {
	if _, ok := l.Handler().(handler); ok {
		return l
	}
	return slog.New(handler{Handler: l.Handler()})
}

type handler struct {
	slog.Handler
	// named are the keys a With on this logger already set: a line of a
	// logger made with With("client_id", …) keeps that one.
	named map[string]bool
}

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	id, client := FromContext(ctx), ClientID(ctx)
	if id == "" && client == "" {
		return h.Handler.Handle(ctx, r)
	}
	has := map[string]bool{}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case LogKey, ClientIDKey:
			has[a.Key] = true
		}
		return true
	})
	r = r.Clone()
	for _, kv := range [][2]string{{LogKey, id}, {ClientIDKey, client}} {
		if kv[1] != "" && !has[kv[0]] && !h.named[kv[0]] {
			r.AddAttrs(slog.String(kv[0], kv[1]))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var named map[string]bool
	for _, a := range attrs {
		switch a.Key {
		case LogKey, ClientIDKey:
			if named == nil {
				named = map[string]bool{}
				maps.Copy(named, h.named)
			}
			named[a.Key] = true
		}
	}
	if named == nil {
		named = h.named
	}
	return handler{Handler: h.Handler.WithAttrs(attrs), named: named}
}

func (h handler) WithGroup(name string) slog.Handler {
	return handler{Handler: h.Handler.WithGroup(name), named: h.named}
}
