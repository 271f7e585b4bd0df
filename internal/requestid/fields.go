package requestid

import (
	"context"
	"sync"
)

// ClientIDKey is the log key of the client a request acts for; every line
// logged with the request's context carries it once known. (Who called
// the admin API is internal/actor's.)
const ClientIDKey = "client_id"

// fields is filled in by handlers deep in the request (the client
// authentication) and read by the middleware that made it, after they
// return. A pointer in the context, so every context derived from the
// request's shares it.
type fields struct {
	mu       sync.Mutex
	clientID string
}

type fieldsKey struct{}

// WithFields returns ctx with an empty holder for the caller's client_id.
// Without one, SetClientID does nothing.
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
