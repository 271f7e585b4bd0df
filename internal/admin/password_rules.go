package admin

// CheckPassword applies the rules a new password must meet, the same
// wherever it is set: the admin API, the CLI, and the account and
// password-reset pages (internal/login). The error is an *InputError whose
// message names the rule ("password must be 8 to 1024 bytes").
func CheckPassword(password string) error { return checkPassword(password) }
