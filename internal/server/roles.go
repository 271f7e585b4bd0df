package server

import (
	"github.com/latchkey/latchkey/internal/admin"
	"github.com/latchkey/latchkey/internal/backchannel"
	"github.com/latchkey/latchkey/internal/dpop"
	"github.com/latchkey/latchkey/internal/janitor"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/oauth"
	"github.com/latchkey/latchkey/internal/store"
)

// Each package declares the small interface it needs of persistence next to
// its code; *store.Store is the one implementation. The assertions live here
// because this package imports every consumer and the store, and no import
// cycle arises.
var (
	_ admin.Store        = (*store.Store)(nil)
	_ admin.ClientStore  = (*store.Store)(nil)
	_ admin.UserStore    = (*store.Store)(nil)
	_ backchannel.Store  = (*store.Store)(nil)
	_ dpop.Replay        = (*store.Store)(nil)
	_ janitor.Store      = (*store.Store)(nil)
	_ keys.Store         = (*store.Store)(nil)
	_ login.Store        = (*store.Store)(nil)
	_ login.AttemptStore = (*store.Store)(nil)
	_ login.UserStore    = (*store.Store)(nil)
	_ login.SessionStore = (*store.Store)(nil)
	_ oauth.Store        = (*store.Store)(nil)
	_ oauth.ConsentStore = (*store.Store)(nil)
	_ oauth.RefreshStore = (*store.Store)(nil)
	_ oauth.JWTStore     = (*store.Store)(nil)
)
