package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/spf13/pflag"
)

func flags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	config.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

const goodSecret = "0123456789abcdef0123456789abcdef-x"

func valid() *config.Config {
	c, _ := config.Load(nil, []string{
		"LATCHKEY_DATABASE_URL=sqlite::memory:", "LATCHKEY_SECRET=" + goodSecret, "LATCHKEY_ADMIN_TOKEN=admin-token-0123456789",
	})
	return c
}

// Defaults < file < environment < flags.
func TestLoadPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "latchkey.yaml")
	if err := os.WriteFile(file, []byte("issuer: https://file.example\naccess_token_ttl: 5m\nrefresh_token_ttl: 48h\npublic_addr: \":9000\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(flags(t, "--config", file, "--access-token-ttl", "2m"), []string{
		"LATCHKEY_ACCESS_TOKEN_TTL=3m", "LATCHKEY_REFRESH_TOKEN_TTL=24h", "OTHER=ignored",
	})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"default", c.AuthCodeTTL, time.Minute},
		{"file", c.Issuer, "https://file.example"},
		{"file", c.PublicAddr, ":9000"},
		{"env over file", c.RefreshTokenTTL, 24 * time.Hour},
		{"flag over env", c.AccessTokenTTL, 2 * time.Minute},
		{"default format", c.AccessTokenFormat, config.FormatJWT},
		{"default grace", c.RefreshGracePeriod, 10 * time.Second},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s: got %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if _, err := config.Load(flags(t, "--config", filepath.Join(t.TempDir(), "missing.yaml")), nil); err == nil {
		t.Error("a missing config file was accepted")
	}
}

// Each bad setting is reported naming the variable to change.
func TestValidate(t *testing.T) {
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	cases := []struct {
		name    string
		mutate  func(*config.Config)
		setting string
	}{
		{"short secret", func(c *config.Config) { c.Secret = "short" }, "LATCHKEY_SECRET"},
		{"missing secret", func(c *config.Config) { c.Secret = "" }, "LATCHKEY_SECRET"},
		{"missing admin token", func(c *config.Config) { c.AdminToken = "" }, "LATCHKEY_ADMIN_TOKEN"},
		{"missing database", func(c *config.Config) { c.DatabaseURL = "" }, "LATCHKEY_DATABASE_URL"},
		{"mysql database", func(c *config.Config) { c.DatabaseURL = "mysql://x" }, "LATCHKEY_DATABASE_URL"},
		{"postgres without host", func(c *config.Config) { c.DatabaseURL = "postgres:///db" }, "LATCHKEY_DATABASE_URL"},
		{"sqlite without path", func(c *config.Config) { c.DatabaseURL = "sqlite://" }, "LATCHKEY_DATABASE_URL"},
		{"relative issuer", func(c *config.Config) { c.Issuer = "auth.example.com" }, "LATCHKEY_ISSUER"},
		{"http issuer", func(c *config.Config) { c.Issuer = "http://auth.example.com" }, "LATCHKEY_ISSUER"},
		{"issuer with fragment", func(c *config.Config) { c.Issuer = "https://auth.example.com#x" }, "LATCHKEY_ISSUER"},
		{"issuer with query", func(c *config.Config) { c.Issuer = "https://auth.example.com?x=1" }, "LATCHKEY_ISSUER"},
		{"format", func(c *config.Config) { c.AccessTokenFormat = "paseto" }, "LATCHKEY_ACCESS_TOKEN_FORMAT"},
		{"alg", func(c *config.Config) { c.SigningAlg = "HS256" }, "LATCHKEY_SIGNING_ALG"},
		{"long code ttl", func(c *config.Config) { c.AuthCodeTTL = time.Hour }, "LATCHKEY_AUTH_CODE_TTL"},
		{"negative grace", func(c *config.Config) { c.RefreshGracePeriod = -time.Second }, "LATCHKEY_REFRESH_GRACE_PERIOD"},
		{"access longer than refresh", func(c *config.Config) { c.AccessTokenTTL = 1000 * time.Hour }, "LATCHKEY_ACCESS_TOKEN_TTL"},
		{"same listeners", func(c *config.Config) { c.AdminAddr = c.PublicAddr }, "LATCHKEY_ADMIN_ADDR"},
		{"bad address", func(c *config.Config) { c.PublicAddr = "8080" }, "LATCHKEY_PUBLIC_ADDR"},
		{"log level", func(c *config.Config) { c.LogLevel = "loud" }, "LATCHKEY_LOG_LEVEL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.setting+":") {
				t.Fatalf("error %v does not name %s", err, tc.setting)
			}
		})
	}
}

func TestValidateReportsEverythingAtOnce(t *testing.T) {
	c := valid()
	c.Secret, c.Issuer, c.SigningAlg = "short", "nope", "none"
	err := c.Validate()
	for _, s := range []string{"LATCHKEY_SECRET", "LATCHKEY_ISSUER", "LATCHKEY_SIGNING_ALG"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("%s missing from %v", s, err)
		}
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 3 {
		t.Errorf("want three problems, got %v", err)
	}
	if err := c.ValidateSettings("DATABASE_URL"); err != nil {
		t.Errorf("ValidateSettings(DATABASE_URL) looked at other settings: %v", err)
	}
}

// --dev relaxes what it generates, nothing else.
func TestValidateDev(t *testing.T) {
	c := valid()
	c.Dev, c.Secret, c.AdminToken, c.DatabaseURL = true, "", "", ""
	if err := c.Validate(); err != nil {
		t.Fatalf("dev mode: %v", err)
	}
	c.Secret = "short"
	if err := c.Validate(); err == nil {
		t.Fatal("dev mode accepted a short secret")
	}
}
