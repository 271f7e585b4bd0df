package oauth

import (
	"slices"

	"github.com/latchkey/latchkey/internal/store"
)

// userClaims are the OpenID Connect standard claims (Core §5.1) of u that
// scopes allow (Core §5.4; groups as Kubernetes and oauth2-proxy read it):
// profile gives name given_name family_name preferred_username picture
// locale updated_at, email gives email email_verified, groups gives the
// groups list. Empty values are left out (Core §5.3.2: a claim with no
// value is omitted, not null). sub is the caller's to add. UserInfo and
// the ID token read the same map, so both say the same of a person.
func userClaims(u *store.User, scopes []string) map[string]any {
	c := map[string]any{}
	set := func(k, v string) {
		if v != "" {
			c[k] = v
		}
	}
	if slices.Contains(scopes, "profile") {
		set("name", u.Name)
		set("given_name", u.GivenName)
		set("family_name", u.FamilyName)
		set("preferred_username", u.Username)
		set("picture", u.Picture)
		set("locale", u.Locale)
		if !u.UpdatedAt.IsZero() {
			c["updated_at"] = u.UpdatedAt.Unix()
		}
	}
	if slices.Contains(scopes, "email") && u.Email != "" {
		c["email"] = u.Email
		c["email_verified"] = u.EmailVerified
	}
	if slices.Contains(scopes, "groups") && len(u.Groups) > 0 {
		c["groups"] = slices.Clone(u.Groups)
	}
	return c
}
