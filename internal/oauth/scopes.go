package oauth

import "slices"

// unservedScopes are standard OpenID Connect scopes Latchkey does not serve (Core §5.4): a request for them is not refused, they are just not granted.
var unservedScopes = []string{"address", "phone"}

// dropUnservedScopes returns scopes without the unservedScopes, so that a
// client which never registered them is not refused for asking
// (libraries ask for "openid profile email address phone" by default).
func dropUnservedScopes(scopes []string) []string {
	return slices.DeleteFunc(slices.Clone(scopes), func(s string) bool { return slices.Contains(unservedScopes, s) })
}
