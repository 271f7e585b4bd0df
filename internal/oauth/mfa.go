package oauth

import (
	"slices"
	"strings"

	"github.com/latchkey/latchkey/internal/login"
)

// Authentication context classes (OpenID Connect Core §2 acr, §3.1.2.1
// acr_values). Latchkey has two levels: a password, and a password with a
// second factor. A client asks for the second with acr_values (or is
// registered with require_mfa); the ID token and introspection say which
// level the sign-in reached.
const (
	ACRPassword = "urn:latchkey:acr:pwd"
	ACRMFA      = "urn:latchkey:acr:mfa"
)

// ACRValuesSupported is discovery's acr_values_supported.
var ACRValuesSupported = []string{ACRPassword, ACRMFA}

// acrFor is the acr of a sign-in by amr.
func acrFor(amr []string) string {
	if slices.Contains(amr, login.AMRMFA) {
		return ACRMFA
	}
	return ACRPassword
}

// wantsMFA reads acr_values: a second factor is needed when the request
// names ACRMFA and no lower class it would also accept. acr_values is a
// voluntary request (Core §5.5.1.1), so unknown values are ignored, never
// an error; a client that must have the second factor registers
// require_mfa, which does not depend on the request.
func wantsMFA(acrValues string) bool {
	vs := strings.Fields(acrValues)
	return slices.Contains(vs, ACRMFA) && !slices.Contains(vs, ACRPassword)
}

// signInAMR is the amr a grant records for a sign-in: the login session's
// methods, or a password when it recorded none.
func signInAMR(si *login.SignIn) []string {
	if len(si.AMR) == 0 {
		return []string{login.AMRPassword}
	}
	return slices.Clone(si.AMR)
}
