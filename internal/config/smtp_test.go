package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/config"
)

// The mail settings are checked at start-up, each problem naming its
// variable and saying what to write; the relay's password is never quoted.
func TestSMTPSettings(t *testing.T) {
	for _, tc := range []struct {
		name, url, from string
		ttl             time.Duration
		want            []string
	}{
		{name: "off", ttl: 30 * time.Minute},
		{name: "on", url: "smtp://u:secret-pw@mail.example:587", from: "Example <no-reply@example.com>", ttl: 30 * time.Minute},
		{name: "no from", url: "smtps://mail.example", ttl: 30 * time.Minute, want: []string{"LATCHKEY_SMTP_FROM: is required"}},
		{name: "bad scheme", url: "http://u:secret-pw@mail.example", from: "a@example.com", ttl: 30 * time.Minute, want: []string{"LATCHKEY_SMTP_URL:", "smtp://"}},
		{name: "bad from", url: "smtp://mail.example", from: "not an address", ttl: 30 * time.Minute, want: []string{"LATCHKEY_SMTP_FROM:"}},
		{name: "from without url", from: "a@example.com", ttl: 30 * time.Minute, want: []string{"LATCHKEY_SMTP_FROM: is set but LATCHKEY_SMTP_URL is not"}},
		{name: "ttl", ttl: 10 * time.Second, want: []string{"LATCHKEY_EMAIL_LINK_TTL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := config.Default()
			c.Dev = true
			c.SMTPURL, c.SMTPFrom, c.EmailLinkTTL = tc.url, tc.from, tc.ttl
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret-pw") {
				t.Errorf("the error quotes the relay password: %v", err)
			}
		})
	}
	if config.Default().EmailLinkTTL != 30*time.Minute {
		t.Error("LATCHKEY_EMAIL_LINK_TTL defaults to 30m")
	}
}
