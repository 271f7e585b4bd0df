package oauth

import (
	"net/url"
	"slices"
	"strings"
)

// The scopes Latchkey gives a meaning to (OpenID Connect Core 1.0 §5.4,
// plus groups and offline_access). A client still gets only those it
// registered: fosite checks every requested scope against the client's.
const (
	ScopeOpenID        = "openid"
	ScopeProfile       = "profile"
	ScopeEmail         = "email"
	ScopeGroups        = "groups"
	ScopeOfflineAccess = "offline_access"
)

// BuiltinScopes are published as scopes_supported.
var BuiltinScopes = []string{ScopeOpenID, ScopeProfile, ScopeEmail, ScopeGroups, ScopeOfflineAccess}

// unservedScopes are standard OpenID Connect scopes (Core §5.4) for claims
// Latchkey does not hold. Libraries add them by default; refusing them
// would fail the whole sign-in over claims the client can live without,
// and Core §5.4 lets the OP return fewer claims than asked. They are
// removed from the request before fosite checks scopes, so they are never
// granted, even to a client that registered them.
var unservedScopes = []string{"address", "phone"}

// dropUnservedScopes removes the unserved standard scopes from the scope
// parameter of form (a request's parsed form, before fosite reads it). The
// order of the others is kept; a scope parameter left empty is removed.
// The token endpoint calls it for the grants that take a scope (password,
// client credentials); the authorization endpoint for its request.
func dropUnservedScopes(form url.Values) {
	raw, ok := form["scope"]
	if !ok || len(raw) == 0 {
		return
	}
	scopes := strings.Fields(raw[0])
	kept := slices.DeleteFunc(slices.Clone(scopes), func(s string) bool { return slices.Contains(unservedScopes, s) })
	if len(kept) == len(scopes) {
		return
	}
	if len(kept) == 0 {
		delete(form, "scope")
		return
	}
	form["scope"] = []string{strings.Join(kept, " ")}
}
