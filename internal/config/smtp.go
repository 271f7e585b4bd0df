package config

import (
	"time"

	"github.com/latchkey/latchkey/internal/mail"
)

// validateSMTP checks the mail settings. The URL carries a password, so no
// message quotes it.
func validateSMTP(c *Config, bad func(key, format string, args ...any)) {
	if c.EmailLinkTTL < time.Minute || c.EmailLinkTTL > 24*time.Hour {
		bad("email_link_ttl", "must be between 1m and 24h, got %s", c.EmailLinkTTL)
	}
	if c.SMTPURL == "" {
		if c.SMTPFrom != "" {
			bad("smtp_from", "is set but LATCHKEY_SMTP_URL is not; set the relay too (smtp://USER:PASSWORD@HOST:587), or unset both")
		}
		return
	}
	if _, err := mail.ParseURL(c.SMTPURL); err != nil {
		bad("smtp_url", "%v", err)
	}
	if c.SMTPFrom == "" {
		bad("smtp_from", "is required with LATCHKEY_SMTP_URL: the sender of reset and verification mail, e.g. \"Example <no-reply@example.com>\"")
	} else if _, err := mail.ParseFrom(c.SMTPFrom); err != nil {
		bad("smtp_from", "%v", err)
	}
}

// Mail is the mail configuration, or false when LATCHKEY_SMTP_URL is unset.
// Call it on a validated Config.
func (c *Config) Mail() (mail.Config, bool) {
	if c.SMTPURL == "" {
		return mail.Config{}, false
	}
	mc, err := mail.ParseURL(c.SMTPURL)
	if err != nil {
		return mail.Config{}, false
	}
	mc.From = c.SMTPFrom
	return mc, true
}
