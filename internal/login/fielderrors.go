package login

import "slices"

// fieldErrors names the form fields that each error message is about. The
// pages mark those fields aria-invalid and point their aria-describedby at
// the message (the layout's #error), so that a screen reader on the field
// hears what is wrong with it (WCAG 3.3.1, 1.3.1). Errors that are about
// no field (an expired form, a lock-out) mark none.
var fieldErrors = map[string][]string{
	"login.error.missing":           {"username", "password"},
	"login.error.invalid":           {"username", "password"},
	"mfa.error.wrong":               {"code"},
	"mfa.error.wrong_enrol":         {"code"},
	"device.error.wrong":            {"user_code"},
	"account.error.current_missing": {"current_password"},
	"account.error.wrong_current":   {"current_password"},
	"account.error.mismatch":        {"new_password", "confirm_password"},
	"reset.error.missing":           {"username"},
}

// invalid reports whether the error errKey, or the fields named beside a
// message that is no key (a password rule's words), concern field.
func invalid(errKey string, fields []string, field string) bool {
	return errKey != "" && (slices.Contains(fieldErrors[errKey], field) || slices.Contains(fields, field))
}

// Invalid reports whether the page's error is about the form field named
// field; templates say {{if .Invalid "username"}}.
func (p page) Invalid(field string) bool { return invalid(p.Error, p.ErrorFields, field) }

// Invalid is page's, for the account pages' own Error.
func (v accountView) Invalid(field string) bool { return invalid(v.Error, v.ErrorFields, field) }
