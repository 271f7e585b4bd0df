package requestid

import (
	"context"
	"sync"
)

// Keys of what a request learns about its caller while it is served; every
// line logged with the request's context carries them once known.
const (
	ClientIDKey = "client_id"
	// ActorKey names who called the admin API: the admin authentication
	// sets it (SetActor), the access log line and every line after it
	// carry it.
	ActorKey = "actor"
)

// fields is filled in by handlers deep in the request (the client
// authentication, the admin guard) and read by the middleware that made
// it, after they return. A pointer in the context, so every context
// derived from the request's shares it.
type fields struct {
	mu       sync.Mutex
	clientID string
	actor    string
}

type fieldsKey struct{}

// WithFields returns ctx with an empty holder for the caller's client_id
// and actor. Without one, the setters do nothing.
func WithFields(ctx context.Context) context.Context {
	return context.WithValue(ctx, fieldsKey{}, &fields{})
}

func holder(ctx context.Context) *fields {
	f, _ := ctx.Value(fieldsKey{}).(*fields)
	return f
}

// SetClientID records the client the request authenticated or named. The
// first one wins: the token and introspection endpoints look up other
// clients (the token's) after the caller's.
func SetClientID(ctx context.Context, id string) {
	if f := holder(ctx); f != nil && id != "" {
		f.mu.Lock()
		if f.clientID == "" {
			f.clientID = id
		}
		f.mu.Unlock()
	}
}

// ClientID is the client SetClientID recorded, or "".
func ClientID(ctx context.Context) string {
	if f := holder(ctx); f != nil {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.clientID
	}
	return ""
}

// SetActor records who called the admin API (the name of the admin token
// it presented). The admin authentication is the one caller.
func SetActor(ctx context.Context, actor string) {
	if f := holder(ctx); f != nil && actor != "" {
		f.mu.Lock()
		f.actor = actor
		f.mu.Unlock()
	}
}

// Actor is the admin caller SetActor recorded, or "".
func Actor(ctx context.Context) string {
	if f := holder(ctx); f != nil {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.actor
	}
	return ""
}
