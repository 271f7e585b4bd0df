package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/language"
)

// Profile is what a user carries for OpenID Connect's standard claims
// (Core 1.0 §5.1). An empty string means the user has none; the claims
// themselves (ID token, userinfo) are built elsewhere.
type Profile struct {
	Email         string   `json:"email,omitempty"`
	EmailVerified bool     `json:"email_verified"`
	Name          string   `json:"name,omitempty"`
	GivenName     string   `json:"given_name,omitempty"`
	FamilyName    string   `json:"family_name,omitempty"`
	Picture       string   `json:"picture,omitempty"`
	Locale        string   `json:"locale,omitempty"`
	Groups        []string `json:"groups"`
}

// Bounds on profile values. They are generous for people and small enough
// that a profile stays well inside an ID token and a cookie-sized session.
const (
	maxNameLen    = 256  // name, given_name, family_name: characters
	maxEmailLen   = 254  // RFC 5321 §4.5.3.1.3, the longest usable path
	maxPictureLen = 2048 // bytes
	maxLocaleLen  = 35   // RFC 5646 §4.4.1 advises supporting 35 characters
	maxGroups     = 100
	maxGroupLen   = 128 // characters
)

// checkText refuses what no display string should hold: invalid UTF-8, a
// U+FFFD that stands for bytes lost on the way, control characters (a
// terminal escape or a newline in a name shown on a consent page or in a
// log) and more than max characters.
func checkText(field, v string, max int) error {
	if !printable(v) {
		return &InputError{field + " must be valid UTF-8 without control characters"}
	}
	if n := utf8.RuneCountInString(v); n > max {
		return &InputError{fmt.Sprintf("%s must be at most %d characters", field, max)}
	}
	return nil
}

// checkEmail accepts one bare address as net/mail parses it: no display
// name, no list, no comment. It is the address claim, not a header.
func checkEmail(v string) error {
	if err := checkText("email", v, maxEmailLen); err != nil {
		return err
	}
	a, err := mail.ParseAddress(v)
	if err != nil || a.Name != "" || a.Address != v {
		return &InputError{"email must be a single address such as alice@example.com"}
	}
	return nil
}

// checkPicture accepts an absolute https URL, or http on a loopback host
// for development: relying parties fetch it, and a plain-http URL from an
// identity provider is a tracking and tampering channel.
func checkPicture(v string) error {
	if err := checkText("picture", v, maxPictureLen); err != nil {
		return err
	}
	u, err := url.Parse(v)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" || u.User != nil {
		return &InputError{"picture must be an absolute https URL without user information"}
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopbackHost(u.Hostname()) {
			return nil
		}
	}
	return &InputError{"picture must be an https URL (http only on a loopback host)"}
}

// checkLocale parses a BCP 47 language tag (RFC 5646) and returns it in
// canonical form ("en_us" becomes "en-US"), the form the locale claim uses.
func checkLocale(v string) (string, error) {
	if err := checkText("locale", v, maxLocaleLen); err != nil {
		return "", err
	}
	tag, err := language.Parse(v)
	if err != nil {
		return "", &InputError{fmt.Sprintf("locale %q is not a BCP 47 language tag such as en-US", v)}
	}
	return tag.String(), nil
}

// checkGroups accepts up to maxGroups distinct names, each 1 to maxGroupLen
// printable characters (spaces allowed). Order is kept: it is the
// operator's.
func checkGroups(groups []string) ([]string, error) {
	if len(groups) > maxGroups {
		return nil, &InputError{fmt.Sprintf("a user may have at most %d groups", maxGroups)}
	}
	out := make([]string, 0, len(groups))
	for _, g := range groups {
		if err := checkText("group", g, maxGroupLen); err != nil {
			return nil, err
		}
		if g == "" || strings.IndexFunc(g, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			return nil, &InputError{fmt.Sprintf("group %q must be 1 to %d printable characters", g, maxGroupLen)}
		}
		if slices.Contains(out, g) {
			return nil, &InputError{fmt.Sprintf("group %q is listed twice", g)}
		}
		out = append(out, g)
	}
	return out, nil
}

// check validates every field and returns the profile as it is stored
// (locale canonical, groups never nil). Empty strings are "none" and pass.
func (p Profile) check() (Profile, error) {
	for _, f := range []struct {
		name, v string
	}{{"name", p.Name}, {"given_name", p.GivenName}, {"family_name", p.FamilyName}} {
		if err := checkText(f.name, f.v, maxNameLen); err != nil {
			return Profile{}, err
		}
	}
	if p.Email != "" {
		if err := checkEmail(p.Email); err != nil {
			return Profile{}, err
		}
	}
	if p.EmailVerified && p.Email == "" {
		return Profile{}, &InputError{"email_verified needs an email"}
	}
	if p.Picture != "" {
		if err := checkPicture(p.Picture); err != nil {
			return Profile{}, err
		}
	}
	if p.Locale != "" {
		l, err := checkLocale(p.Locale)
		if err != nil {
			return Profile{}, err
		}
		p.Locale = l
	}
	groups, err := checkGroups(p.Groups)
	if err != nil {
		return Profile{}, err
	}
	p.Groups = groups
	return p, nil
}

// Field is one member of a PATCH body: absent (Set false), null (Set and
// Null: clear it) or a value.
type Field[T any] struct {
	Set, Null bool
	Value     T
}

// UnmarshalJSON is only called for members present in the body, null
// included, which is what tells a cleared field from an untouched one.
func (f *Field[T]) UnmarshalJSON(b []byte) error {
	f.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		f.Null = true
		return nil
	}
	return json.Unmarshal(b, &f.Value)
}

// apply sets *dst to the field's value, to zero on null, and leaves it
// alone when absent.
func (f Field[T]) apply(dst *T) {
	switch {
	case !f.Set:
	case f.Null:
		var zero T
		*dst = zero
	default:
		*dst = f.Value
	}
}

// UserPatch is a partial update of a user (PATCH /admin/users/{id}): only
// the members present change; null clears an optional one. The password
// has its own call (SetPassword), which also signs the user out.
type UserPatch struct {
	Username      Field[string]   `json:"username"`
	Email         Field[string]   `json:"email"`
	EmailVerified Field[bool]     `json:"email_verified"`
	Name          Field[string]   `json:"name"`
	GivenName     Field[string]   `json:"given_name"`
	FamilyName    Field[string]   `json:"family_name"`
	Picture       Field[string]   `json:"picture"`
	Locale        Field[string]   `json:"locale"`
	Groups        Field[[]string] `json:"groups"`
	// Password is here to be refused with a pointer to the right call,
	// rather than as an unknown field.
	Password Field[string] `json:"password"`
}

// applyTo changes p and username as the patch says.
func (pt *UserPatch) applyTo(username *string, p *Profile) error {
	if pt.Password.Set {
		return &InputError{"a password is not changed by PATCH: use PUT /admin/users/{id}/password (latchkey user set-password), which also signs the user out"}
	}
	if pt.Username.Set {
		if pt.Username.Null {
			return &InputError{"username cannot be removed"}
		}
		name, err := checkUsername(pt.Username.Value)
		if err != nil {
			return err
		}
		*username = name
	}
	old := p.Email
	pt.Email.apply(&p.Email)
	pt.EmailVerified.apply(&p.EmailVerified)
	// A changed address has not been verified unless the patch says so.
	if p.Email != old && !pt.EmailVerified.Set {
		p.EmailVerified = false
	}
	pt.Name.apply(&p.Name)
	pt.GivenName.apply(&p.GivenName)
	pt.FamilyName.apply(&p.FamilyName)
	pt.Picture.apply(&p.Picture)
	pt.Locale.apply(&p.Locale)
	pt.Groups.apply(&p.Groups)
	return nil
}
