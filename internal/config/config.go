// Package config loads Latchkey's configuration once at start-up: defaults,
// then a YAML file (--config), then LATCHKEY_* environment variables, then
// command-line flags, each overriding the one before. Validate reports every
// problem at once, each naming the setting, so a person can fix them in one go.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/spf13/pflag"
)

// Access token formats.
const (
	FormatJWT    = "jwt"
	FormatOpaque = "opaque"
)

// Config is every setting. The koanf keys are the environment variable names
// without the LATCHKEY_ prefix, lower-cased; flags use dashes instead of
// underscores (LATCHKEY_ACCESS_TOKEN_TTL = access_token_ttl = --access-token-ttl).
type Config struct {
	DatabaseURL string `koanf:"database_url"`
	Issuer      string `koanf:"issuer"`
	// Warnings are settings that are valid but probably not what was
	// meant; serve logs them at start-up.
	Warnings        []string      `koanf:"-"`
	Secret          string        `koanf:"secret"`
	PublicAddr      string        `koanf:"public_addr"`
	AdminAddr       string        `koanf:"admin_addr"`
	AdminToken      string        `koanf:"admin_token"`
	AccessTokenTTL  time.Duration `koanf:"access_token_ttl"`
	RefreshTokenTTL time.Duration `koanf:"refresh_token_ttl"`
	AuthCodeTTL     time.Duration `koanf:"auth_code_ttl"`
	// DeviceCodeTTL is how long a device_code and its user_code live (RFC
	// 8628 §3.2 expires_in); DevicePollInterval is the least time between
	// two polls of one device code (§3.2 interval).
	DeviceCodeTTL      time.Duration `koanf:"device_code_ttl"`
	DevicePollInterval time.Duration `koanf:"device_poll_interval"`
	RefreshGracePeriod time.Duration `koanf:"refresh_grace_period"`
	// RefreshTokenMaxLifetime caps a grant from its start: rotation renews
	// RefreshTokenTTL (the idle lifetime) but never past this.
	RefreshTokenMaxLifetime time.Duration `koanf:"refresh_token_max_lifetime"`
	AccessTokenFormat       string        `koanf:"access_token_format"`
	SigningAlg              string        `koanf:"signing_alg"`
	// KeyRotationPeriod is how long a signing key signs before the next one
	// takes over; KeyPrepublishPeriod how long a new key sits in the JWKS
	// before it signs (longer than any JWKS cache keeps the set).
	KeyRotationPeriod   time.Duration `koanf:"key_rotation_period"`
	KeyPrepublishPeriod time.Duration `koanf:"key_prepublish_period"`
	LogLevel            string        `koanf:"log_level"`
	// SessionIdleTTL and SessionTTL end a browser login session after this
	// long unused, and this long after sign-in.
	SessionIdleTTL time.Duration `koanf:"session_idle_ttl"`
	SessionTTL     time.Duration `koanf:"session_ttl"`
	// Pprof serves Go's profiler under /debug/pprof/ on the admin listener.
	Pprof bool `koanf:"pprof"`
	// DPoPNonce makes the token and resource endpoints demand a server
	// nonce in every DPoP proof (RFC 9449 §8): a proof made in advance
	// (by malware that holds the key for a while) stops working.
	DPoPNonce bool `koanf:"dpop_nonce"`
	// CORSOrigins may call the token and revocation endpoints from a
	// browser (public clients: SPAs). Comma-separated origins.
	CORSOrigins string `koanf:"cors_origins"`
	// PKCERequired is which clients must use PKCE: PKCEPublic (RFC 9700
	// §2.1.1) or PKCEAll (OAuth 2.1 §4.1.1). Empty means PKCEPublic.
	PKCERequired string `koanf:"pkce_required"`
	// RequirePAR refuses every authorization request that was not pushed
	// to /oauth2/par first (RFC 9126 §5), whatever the client registered.
	RequirePAR bool `koanf:"require_par"`
	// ThemeDir holds templates/, static/ and locales/ that override the
	// login pages' built-in files; ProductName, LogoURL and PrimaryColor
	// are the simple settings for the common case (docs/people.md).
	ThemeDir     string `koanf:"theme_dir"`
	ProductName  string `koanf:"product_name"`
	LogoURL      string `koanf:"logo_url"`
	PrimaryColor string `koanf:"primary_color"`
	// TrustedProxies are the reverse proxies (comma-separated CIDRs or
	// addresses) whose X-Forwarded-For the sign-in throttle believes.
	TrustedProxies string `koanf:"trusted_proxies"`
	// DatabaseMaxOpenConns bounds the PostgreSQL pool of one instance.
	DatabaseMaxOpenConns int `koanf:"database_max_open_conns"`
	// DatabaseListenURL is a direct PostgreSQL connection for LISTEN when
	// DatabaseURL goes through a pooler in transaction mode (PgBouncer).
	DatabaseListenURL string `koanf:"database_listen_url"`
	// AuditRetention is how long the janitor keeps the admin audit log and
	// security events (365 days by default).
	AuditRetention time.Duration `koanf:"audit_retention"`
	// The sign-in throttle (login.ThrottlePolicy): failures are remembered
	// for LoginFailureWindow; LoginUserLimit per username or LoginIPLimit
	// per client IP lock it for LoginLockout, doubling up to LoginMaxLockout.
	LoginFailureWindow time.Duration `koanf:"login_failure_window"`
	LoginUserLimit     int           `koanf:"login_user_limit"`
	LoginIPLimit       int           `koanf:"login_ip_limit"`
	LoginLockout       time.Duration `koanf:"login_lockout"`
	LoginMaxLockout    time.Duration `koanf:"login_max_lockout"`
	// SMTPURL is the relay that sends password reset and verification
	// links (smtp://USER:PASS@HOST:PORT with STARTTLS when offered, or
	// smtps://); empty turns both off. SMTPFrom is their sender, and
	// EmailLinkTTL how long a link works (smtp.go).
	SMTPURL      string        `koanf:"smtp_url"`
	SMTPFrom     string        `koanf:"smtp_from"`
	EmailLinkTTL time.Duration `koanf:"email_link_ttl"`
	// TracesEndpoint turns OpenTelemetry traces on: the OTLP/HTTP
	// collector they are sent to. Empty (the default) is off, unless the
	// standard OTEL_TRACES_EXPORTER / OTEL_EXPORTER_OTLP_*ENDPOINT
	// variables ask for them (applyOTelEnv).
	TracesEndpoint string `koanf:"traces_endpoint"`

	// Dev is `serve --dev`: SQLite by default, generated secrets, migrations
	// applied. It relaxes the required settings, nothing else.
	Dev bool `koanf:"-"`
}

// Values of LATCHKEY_PKCE_REQUIRED.
const (
	PKCEPublic = "public"
	PKCEAll    = "all"
)

// Group is a set of settings that belong together. A command registers the
// flags of, and validates, only the groups it uses: `latchkey user list`
// neither offers --pprof nor trips over a bad LATCHKEY_ISSUER.
type Group uint16

// The groups. Every setting is in exactly one.
const (
	// GroupDatabase: where the database is and how many connections to it.
	GroupDatabase Group = 1 << iota
	// GroupSecret: LATCHKEY_SECRET, for commands that make or open secrets.
	GroupSecret
	// GroupLifetimes: token and code lifetimes.
	GroupLifetimes
	// GroupSessions: browser login session lifetimes.
	GroupSessions
	// GroupKeys: signing keys.
	GroupKeys
	// GroupRetention: how long the janitor keeps what it may delete.
	GroupRetention
	// GroupLogin: the sign-in throttle.
	GroupLogin
	// GroupServer: the listeners and what only a running server uses.
	GroupServer

	// GroupAll is every group: what `latchkey serve` needs.
	GroupAll = GroupDatabase | GroupSecret | GroupLifetimes | GroupSessions | GroupKeys | GroupRetention | GroupLogin | GroupServer
)

// setting is one configuration setting: its key (the environment variable
// without LATCHKEY_, lower-case), its group, its typed default (nil for
// none), its flag's help, and the field it fills. This table is the one
// place a setting is declared: Defaults, the flags, Load and the unknown-key
// check all read it.
type setting struct {
	key   string
	group Group
	def   any
	usage string
	// noFlag: the secret and the admin token are never taken from argv,
	// which every user of the machine can read.
	noFlag bool
	field  func(*Config) any
}

func settings() []setting {
	return []setting{
		{"database_url", GroupDatabase, nil, "postgres://… or sqlite://PATH or sqlite::memory:", false, func(c *Config) any { return &c.DatabaseURL }},
		{"database_listen_url", GroupDatabase, nil, "postgres://… straight to the server, for LISTEN/NOTIFY when the database URL goes through PgBouncer in transaction mode", false, func(c *Config) any { return &c.DatabaseListenURL }},
		{"database_max_open_conns", GroupDatabase, 20, "most PostgreSQL connections per instance (SQLite always uses one)", false, func(c *Config) any { return &c.DatabaseMaxOpenConns }},
		{"secret", GroupSecret, nil, "", true, func(c *Config) any { return &c.Secret }},
		{"access_token_ttl", GroupLifetimes, 15 * time.Minute, "access token lifetime", false, func(c *Config) any { return &c.AccessTokenTTL }},
		{"refresh_token_ttl", GroupLifetimes, 720 * time.Hour, "refresh token idle lifetime", false, func(c *Config) any { return &c.RefreshTokenTTL }},
		{"refresh_token_max_lifetime", GroupLifetimes, 2160 * time.Hour, "absolute refresh lifetime from the start of the grant", false, func(c *Config) any { return &c.RefreshTokenMaxLifetime }},
		{"auth_code_ttl", GroupLifetimes, time.Minute, "authorization code lifetime", false, func(c *Config) any { return &c.AuthCodeTTL }},
		{"device_code_ttl", GroupLifetimes, 10 * time.Minute, "device code and user code lifetime (RFC 8628)", false, func(c *Config) any { return &c.DeviceCodeTTL }},
		{"device_poll_interval", GroupLifetimes, 5 * time.Second, "least time between two polls of one device code (RFC 8628 interval)", false, func(c *Config) any { return &c.DevicePollInterval }},
		{"refresh_grace_period", GroupLifetimes, 10 * time.Second, "refresh token reuse grace period", false, func(c *Config) any { return &c.RefreshGracePeriod }},
		{"session_idle_ttl", GroupSessions, 24 * time.Hour, "end a login session unused this long", false, func(c *Config) any { return &c.SessionIdleTTL }},
		{"session_ttl", GroupSessions, 168 * time.Hour, "end a login session this long after sign-in", false, func(c *Config) any { return &c.SessionTTL }},
		{"signing_alg", GroupKeys, "ES256", "ES256, RS256 or EdDSA", false, func(c *Config) any { return &c.SigningAlg }},
		{"key_rotation_period", GroupKeys, 720 * time.Hour, "how long a signing key signs before the next takes over", false, func(c *Config) any { return &c.KeyRotationPeriod }},
		{"key_prepublish_period", GroupKeys, 15 * time.Minute, "how long a new signing key is published before it signs", false, func(c *Config) any { return &c.KeyPrepublishPeriod }},
		{"audit_retention", GroupRetention, 8760 * time.Hour, "how long audit rows (the admin audit log and security events) are kept", false, func(c *Config) any { return &c.AuditRetention }},
		{"login_failure_window", GroupLogin, 15 * time.Minute, "how long failed sign-ins are remembered", false, func(c *Config) any { return &c.LoginFailureWindow }},
		{"login_user_limit", GroupLogin, 5, "failed sign-ins per username within the window before it is locked", false, func(c *Config) any { return &c.LoginUserLimit }},
		{"login_ip_limit", GroupLogin, 20, "failed sign-ins per client IP within the window before it is locked", false, func(c *Config) any { return &c.LoginIPLimit }},
		{"login_lockout", GroupLogin, time.Minute, "first lockout; each further failure doubles it", false, func(c *Config) any { return &c.LoginLockout }},
		{"login_max_lockout", GroupLogin, 15 * time.Minute, "longest lockout", false, func(c *Config) any { return &c.LoginMaxLockout }},
		{"issuer", GroupServer, "http://localhost:8080", "public issuer URL", false, func(c *Config) any { return &c.Issuer }},
		{"public_addr", GroupServer, ":8080", "public listener address", false, func(c *Config) any { return &c.PublicAddr }},
		{"admin_addr", GroupServer, "127.0.0.1:8081", "admin listener address", false, func(c *Config) any { return &c.AdminAddr }},
		{"admin_token", GroupServer, nil, "", true, func(c *Config) any { return &c.AdminToken }},
		{"access_token_format", GroupServer, FormatJWT, "jwt or opaque", false, func(c *Config) any { return &c.AccessTokenFormat }},
		{"cors_origins", GroupServer, "", "comma-separated browser origins allowed to call the token and revocation endpoints", false, func(c *Config) any { return &c.CORSOrigins }},
		{"pkce_required", GroupServer, PKCEPublic, "which clients must use PKCE: public or all", false, func(c *Config) any { return &c.PKCERequired }},
		{"require_par", GroupServer, false, "refuse authorization requests not pushed to /oauth2/par first (RFC 9126)", false, func(c *Config) any { return &c.RequirePAR }},
		{"theme_dir", GroupServer, "", "directory of templates/, static/ and locales/ overriding the login pages' own (docs/people.md)", false, func(c *Config) any { return &c.ThemeDir }},
		{"product_name", GroupServer, "", "the name the login pages show instead of Latchkey", false, func(c *Config) any { return &c.ProductName }},
		{"logo_url", GroupServer, "", "logo above the login pages: https URL or a path under /static/", false, func(c *Config) any { return &c.LogoURL }},
		{"primary_color", GroupServer, "", "the login pages' button and link colour, #rgb or #rrggbb", false, func(c *Config) any { return &c.PrimaryColor }},
		{"trusted_proxies", GroupServer, "", "comma-separated CIDRs of reverse proxies whose X-Forwarded-For names the client", false, func(c *Config) any { return &c.TrustedProxies }},
		{"pprof", GroupServer, false, "serve /debug/pprof/ on the admin listener", false, func(c *Config) any { return &c.Pprof }},
		{"smtp_url", GroupServer, nil, "", true, func(c *Config) any { return &c.SMTPURL }},
		{"smtp_from", GroupServer, "", "sender of password reset and verification mail, e.g. \"Example <no-reply@example.com>\"", false, func(c *Config) any { return &c.SMTPFrom }},
		{"email_link_ttl", GroupServer, 30 * time.Minute, "how long a password reset or verification link works", false, func(c *Config) any { return &c.EmailLinkTTL }},
		{"traces_endpoint", GroupServer, "", "OTLP/HTTP collector to send OpenTelemetry traces to, e.g. http://otel-collector:4318 (empty: off)", false, func(c *Config) any { return &c.TracesEndpoint }},
		{"dpop_nonce", GroupServer, false, "demand a server nonce in every DPoP proof (RFC 9449 §8)", false, func(c *Config) any { return &c.DPoPNonce }},
	}
}

// logLevel is every command's: it is declared apart from the groups.
var logLevel = setting{"log_level", 0, "info", "debug, info, warn or error", false, func(c *Config) any { return &c.LogLevel }}

func allSettings() []setting { return append(settings(), logLevel) }

// Defaults are the settings that have a default, by key: the contract's
// defaults, from the one table.
func Defaults() map[string]any {
	out := map[string]any{}
	for _, s := range allSettings() {
		if s.def != nil {
			out[s.key] = s.def
		}
	}
	return out
}

// Default is a configuration holding every default and nothing else: what
// Load gives with no file, environment or flags. Tests start from it.
func Default() *Config {
	var c Config
	for _, s := range allSettings() {
		_ = s.set(&c, nil)
	}
	return &c
}

// DevDatabaseURL is the database `serve --dev` uses unless told otherwise.
const DevDatabaseURL = "sqlite://./latchkey.db"

// EnvPrefix starts every environment variable Latchkey reads.
const EnvPrefix = "LATCHKEY_"

// FlagConfig names the configuration file.
const FlagConfig = "config"

// envName is a key's environment variable.
func envName(key string) string { return EnvPrefix + strings.ToUpper(key) }

func flagName(key string) string { return strings.ReplaceAll(key, "_", "-") }

// RegisterCommonFlags adds what every command takes: --config and
// --log-level.
func RegisterCommonFlags(fs *pflag.FlagSet) {
	fs.String(FlagConfig, "", "YAML configuration file (keys as the LATCHKEY_* variables, lower-case, without the prefix)")
	registerFlag(fs, logLevel)
}

// RegisterFlags adds a flag for every setting of groups, with its default
// shown in --help. Only flags set on the command line override the file and
// the environment.
func RegisterFlags(fs *pflag.FlagSet, groups Group) {
	for _, s := range settings() {
		if s.group&groups != 0 && !s.noFlag {
			registerFlag(fs, s)
		}
	}
}

func registerFlag(fs *pflag.FlagSet, s setting) {
	name, usage := flagName(s.key), s.usage+" ("+envName(s.key)+")"
	if fs.Lookup(name) != nil {
		return
	}
	switch d := s.def.(type) {
	case nil:
		fs.String(name, "", usage)
	case string:
		fs.String(name, d, usage)
	case time.Duration:
		fs.Duration(name, d, usage)
	case int:
		fs.Int(name, d, usage)
	case bool:
		fs.Bool(name, d, usage)
	default:
		panic(fmt.Sprintf("config: setting %s has a default of unsupported type %T", s.key, d))
	}
}

// Load reads defaults < file < environment < flags. environ is os.Environ()
// in production; tests pass their own.
//
// A file that cannot be read is an error and no configuration. A value that
// cannot be read (a duration without a unit, a word for a number) or a key
// the file should not have is a problem: Load reports every one, joined and
// each naming its variable, and still returns the configuration, with the
// default in place of each bad value, so that the caller can report them
// together with what Validate finds.
func Load(fs *pflag.FlagSet, environ []string) (*Config, error) {
	k := koanf.New(".")
	var problems []error
	if fs != nil {
		if f := fs.Lookup(FlagConfig); f != nil && f.Value.String() != "" {
			path := f.Value.String()
			fk := koanf.New(".")
			if err := fk.Load(file.Provider(path), yaml.Parser()); err != nil {
				return nil, fmt.Errorf("read config file %s: %w", path, err)
			}
			if err := unknownKeys(fk.Keys()); err != nil {
				problems = append(problems, fmt.Errorf("config file %s: %w", path, err))
			}
			if err := k.Merge(fk); err != nil {
				return nil, fmt.Errorf("read config file %s: %w", path, err)
			}
		}
	}
	envProvider := env.Provider(".", env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, value string) (string, any) {
			return strings.ToLower(strings.TrimPrefix(name, EnvPrefix)), value
		},
	})
	if err := k.Load(envProvider, nil); err != nil {
		return nil, fmt.Errorf("load environment: %w", err)
	}
	if fs != nil {
		if err := k.Load(posflag.ProviderWithFlag(fs, ".", k, func(f *pflag.Flag) (string, any) {
			if !f.Changed || f.Name == FlagConfig {
				return "", nil
			}
			return strings.ReplaceAll(f.Name, "-", "_"), posflag.FlagVal(fs, f)
		}), nil); err != nil {
			return nil, fmt.Errorf("load flags: %w", err)
		}
	}
	var c Config
	for _, s := range allSettings() {
		if err := s.set(&c, k.Get(s.key)); err != nil {
			// The value may have come from any source: name them all.
			problems = append(problems, fmt.Errorf("%s: %w (the variable, %s in the file, or --%s)", envName(s.key), err, s.key, flagName(s.key)))
		}
	}
	c.Issuer = NormalizeIssuer(c.Issuer)
	if err := c.applyOTelEnv(environ); err != nil {
		problems = append(problems, err)
	}
	if k.Exists("public_addr") && !k.Exists("issuer") {
		c.Warnings = append(c.Warnings, fmt.Sprintf("%s is set but %s is not: tokens name the default issuer %s, "+
			"which is not where this listener answers unless a proxy says so; set %s to the public URL",
			envName("public_addr"), envName("issuer"), c.Issuer, envName("issuer")))
	}
	return &c, errors.Join(problems...)
}

// unknownKeys names the keys of a configuration file that are no setting:
// a misspelt key would otherwise be ignored and its default used in silence.
func unknownKeys(keys []string) error {
	known := map[string]bool{}
	for _, s := range allSettings() {
		known[s.key] = true
	}
	var unknown []string
	for _, key := range keys {
		if !known[key] {
			unknown = append(unknown, key)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return fmt.Errorf("unknown keys %s (settings are the LATCHKEY_* variables, lower-case, without the prefix)", strings.Join(unknown, ", "))
}

// set stores raw, as the file, environment or a flag gave it, in the
// setting's field, or the default when raw is nil or cannot be read.
func (s setting) set(c *Config, raw any) error {
	value, err := s.parse(raw)
	if raw == nil || err != nil {
		value = s.def
	}
	if value != nil {
		reflect.ValueOf(s.field(c)).Elem().Set(reflect.ValueOf(value))
	}
	return err
}

// parse reads raw as the type of the setting's field.
func (s setting) parse(raw any) (any, error) {
	if raw == nil {
		return nil, nil
	}
	switch s.field(&Config{}).(type) {
	case *string:
		switch v := raw.(type) {
		case string:
			return v, nil
		case int, int64, float64, bool:
			// YAML reads `issuer: 123` as a number; a string setting takes it as written.
			return fmt.Sprint(v), nil
		}
	case *time.Duration:
		switch v := raw.(type) {
		case time.Duration:
			return v, nil
		case string:
			d, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil {
				return nil, fmt.Errorf("%q is not a duration such as 90s, 15m or 720h", v)
			}
			return d, nil
		case int, int64, float64:
			// Decoded as nanoseconds, a YAML "auth_code_ttl: 60" would pass
			// every check and expire each code at once.
			return nil, fmt.Errorf("%v has no unit; write a duration such as 90s, 15m or 720h", v)
		}
	case *int:
		switch v := raw.(type) {
		case int:
			return v, nil
		case int64:
			return int(v), nil
		case float64:
			if v == float64(int(v)) {
				return int(v), nil
			}
		case string:
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return nil, fmt.Errorf("%q is not a whole number", v)
			}
			return n, nil
		}
	case *bool:
		switch v := raw.(type) {
		case bool:
			return v, nil
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return nil, fmt.Errorf("%q is not true or false", v)
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("%v is not a %s", raw, s.kind())
}

func (s setting) kind() string {
	switch s.field(&Config{}).(type) {
	case *time.Duration:
		return "duration"
	case *int:
		return "whole number"
	case *bool:
		return "boolean"
	}
	return "string"
}

// NormalizeIssuer lower-cases the issuer's scheme and host, once, at
// start-up. Both are case-insensitive (RFC 3986 §6.2.2.1), but everything
// downstream compares strings: "HTTPS://…" would otherwise turn off Secure
// and __Host- cookies, and put an issuer in tokens that no client library
// matches against the metadata. The path is case-sensitive and kept as is.
// A value that does not parse is returned unchanged for Validate to report.
func NormalizeIssuer(issuer string) string {
	u, err := url.Parse(issuer)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return issuer
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	return u.String()
}

// Environ is os.Environ, named so that callers read as intent.
func Environ() []string { return os.Environ() }

// Validate checks every setting and returns all problems joined, each
// naming the environment variable to change.
func (c *Config) Validate() error {
	return c.ValidateGroups(GroupAll)
}

// ValidateGroups checks the settings of groups (and the log level, which
// every command uses) and returns all problems joined. Commands other than
// serve need only some: `migrate` has no use for an admin token.
func (c *Config) ValidateGroups(groups Group) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", envName(key), fmt.Sprintf(format, args...)))
	}
	for _, check := range []struct {
		group Group
		check func(c *Config, bad func(key, format string, args ...any))
	}{
		{GroupDatabase, validateDatabase},
		{GroupSecret, validateSecret},
		{GroupLifetimes, validateLifetimes},
		{GroupSessions, validateSessions},
		{GroupKeys, validateKeys},
		{GroupRetention, validateRetention},
		{GroupLogin, validateLogin},
		{GroupServer, validateServer},
	} {
		if groups&check.group != 0 {
			check.check(c, bad)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	return errors.Join(errs...)
}

func validateDatabase(c *Config, bad func(key, format string, args ...any)) {
	if c.DatabaseURL == "" {
		if !c.Dev {
			bad("database_url", "is required (postgres://USER@HOST:PORT/DB, sqlite://PATH, or sqlite::memory:); `latchkey serve --dev` uses %s", DevDatabaseURL)
		}
	} else if _, _, err := ParseDatabaseURL(c.DatabaseURL); err != nil {
		bad("database_url", "%v", err)
	}
	if c.DatabaseListenURL != "" {
		// LISTEN needs a session: the URL must reach PostgreSQL itself, as
		// the database URL does when no pooler is in between.
		dialect, _, err := ParseDatabaseURL(c.DatabaseListenURL)
		switch {
		case err != nil:
			bad("database_listen_url", "%v", err)
		case dialect != DialectPostgres:
			bad("database_listen_url", "must be a postgres:// URL straight to the PostgreSQL server (it carries LISTEN/NOTIFY); SQLite needs none")
		case c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres"):
			bad("database_listen_url", "is only for a PostgreSQL LATCHKEY_DATABASE_URL; unset it with SQLite")
		}
	}
	if c.DatabaseMaxOpenConns < 1 || c.DatabaseMaxOpenConns > 1000 {
		bad("database_max_open_conns", "must be between 1 and 1000, got %d", c.DatabaseMaxOpenConns)
	}
}

func validateSecret(c *Config, bad func(key, format string, args ...any)) {
	switch {
	case c.Secret == "" && !c.Dev:
		bad("secret", "is required: at least %d random bytes, e.g. `openssl rand -base64 48`", secrets.MinSystemSecretLen)
	case c.Secret != "" && len(c.SystemSecrets()) == 0:
		// " " or "," would otherwise pass here and fail later as "no system secret".
		bad("secret", "holds no secret (only spaces or commas); set at least %d random bytes", secrets.MinSystemSecretLen)
	case c.Secret != "":
		for i, s := range c.SystemSecrets() {
			if len(s) < secrets.MinSystemSecretLen {
				bad("secret", "secret %d of the list is %d bytes long; each must be at least %d", i+1, len(s), secrets.MinSystemSecretLen)
			}
		}
	}
}

func validateLifetimes(c *Config, bad func(key, format string, args ...any)) {
	if c.AccessTokenTTL <= 0 {
		bad("access_token_ttl", "must be positive, got %s", c.AccessTokenTTL)
	}
	if c.RefreshTokenTTL <= 0 {
		bad("refresh_token_ttl", "must be positive, got %s", c.RefreshTokenTTL)
	} else if c.AccessTokenTTL > c.RefreshTokenTTL {
		bad("access_token_ttl", "(%s) must not exceed LATCHKEY_REFRESH_TOKEN_TTL (%s)", c.AccessTokenTTL, c.RefreshTokenTTL)
	}
	if c.RefreshTokenMaxLifetime < c.RefreshTokenTTL {
		bad("refresh_token_max_lifetime", "(%s) must be at least LATCHKEY_REFRESH_TOKEN_TTL (%s)", c.RefreshTokenMaxLifetime, c.RefreshTokenTTL)
	}
	// RFC 6749 §4.1.2: a maximum authorization code lifetime of 10 minutes is RECOMMENDED.
	if c.AuthCodeTTL < time.Second || c.AuthCodeTTL > 10*time.Minute {
		bad("auth_code_ttl", "must be between 1s and 10m (RFC 6749 §4.1.2), got %s", c.AuthCodeTTL)
	}
	// A person needs time to find the page and type the code; a code
	// living for hours is a phishing lure that keeps working (RFC 8628
	// §5.4 expects a short lifetime).
	if c.DeviceCodeTTL < time.Minute || c.DeviceCodeTTL > time.Hour {
		bad("device_code_ttl", "must be between 1m and 1h, got %s", c.DeviceCodeTTL)
	}
	if c.DevicePollInterval < time.Second || c.DevicePollInterval > time.Minute || c.DevicePollInterval%time.Second != 0 {
		bad("device_poll_interval", "must be whole seconds between 1s and 1m (RFC 8628 interval), got %s", c.DevicePollInterval)
	}
	if c.RefreshGracePeriod < 0 || c.RefreshGracePeriod > time.Minute {
		bad("refresh_grace_period", "must be between 0 (strict rotation) and 1m, got %s", c.RefreshGracePeriod)
	}
}

func validateSessions(c *Config, bad func(key, format string, args ...any)) {
	if c.SessionTTL <= 0 {
		bad("session_ttl", "must be positive, got %s", c.SessionTTL)
	}
	if c.SessionIdleTTL <= 0 || c.SessionIdleTTL > c.SessionTTL {
		bad("session_idle_ttl", "must be positive and at most LATCHKEY_SESSION_TTL (%s), got %s", c.SessionTTL, c.SessionIdleTTL)
	}
}

func validateKeys(c *Config, bad func(key, format string, args ...any)) {
	switch c.SigningAlg {
	case "ES256", "RS256", "EdDSA":
	default:
		bad("signing_alg", "must be ES256, RS256 or EdDSA, got %q", c.SigningAlg)
	}
	if c.KeyRotationPeriod < time.Minute {
		bad("key_rotation_period", "must be at least 1m, got %s", c.KeyRotationPeriod)
	}
	if c.KeyPrepublishPeriod < 0 || c.KeyPrepublishPeriod >= c.KeyRotationPeriod {
		bad("key_prepublish_period", "must be at least 0 and shorter than LATCHKEY_KEY_ROTATION_PERIOD (%s), got %s", c.KeyRotationPeriod, c.KeyPrepublishPeriod)
	}
}

func validateRetention(c *Config, bad func(key, format string, args ...any)) {
	if c.AuditRetention < time.Hour {
		bad("audit_retention", "must be at least 1h, got %s", c.AuditRetention)
	}
}

func validateLogin(c *Config, bad func(key, format string, args ...any)) {
	if c.LoginFailureWindow < time.Second {
		bad("login_failure_window", "must be at least 1s, got %s", c.LoginFailureWindow)
	}
	if c.LoginUserLimit < 1 {
		bad("login_user_limit", "must be at least 1, got %d", c.LoginUserLimit)
	}
	if c.LoginIPLimit < 1 {
		bad("login_ip_limit", "must be at least 1, got %d", c.LoginIPLimit)
	}
	if c.LoginLockout <= 0 {
		bad("login_lockout", "must be positive, got %s", c.LoginLockout)
	}
	if c.LoginMaxLockout < c.LoginLockout {
		bad("login_max_lockout", "(%s) must be at least LATCHKEY_LOGIN_LOCKOUT (%s)", c.LoginMaxLockout, c.LoginLockout)
	}
}

// applyOTelEnv reads OpenTelemetry's own variables, so that a deployment
// that sets them for every service turns Latchkey's traces on too.
// LATCHKEY_TRACES_ENDPOINT wins over them. OTEL_TRACES_EXPORTER=none keeps
// traces off; otlp (the only exporter here, over HTTP) without an endpoint
// sends to the collector's default, http://localhost:4318.
func (c *Config) applyOTelEnv(environ []string) error {
	vars := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "OTEL_") {
			vars[k] = v
		}
	}
	exporter := vars["OTEL_TRACES_EXPORTER"]
	switch exporter {
	case "", "otlp", "none":
	default:
		return fmt.Errorf("OTEL_TRACES_EXPORTER: only otlp (OTLP over HTTP) or none are supported, got %q", exporter)
	}
	if c.TracesEndpoint != "" || exporter == "none" {
		return nil
	}
	switch {
	case vars["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] != "":
		c.TracesEndpoint = vars["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
	case vars["OTEL_EXPORTER_OTLP_ENDPOINT"] != "":
		c.TracesEndpoint = vars["OTEL_EXPORTER_OTLP_ENDPOINT"]
	case exporter == "otlp":
		c.TracesEndpoint = "http://localhost:4318"
	}
	return nil
}

// TracesURL is where spans are POSTed: TracesEndpoint as is when its path
// already names OTLP's traces resource, else with /v1/traces added (as
// OTEL_EXPORTER_OTLP_ENDPOINT is read). "" when traces are off.
func (c *Config) TracesURL() string {
	if c.TracesEndpoint == "" {
		return ""
	}
	if strings.HasSuffix(c.TracesEndpoint, "/v1/traces") {
		return c.TracesEndpoint
	}
	return strings.TrimSuffix(c.TracesEndpoint, "/") + "/v1/traces"
}

func validateServer(c *Config, bad func(key, format string, args ...any)) {
	if c.TracesEndpoint != "" {
		if u, err := url.Parse(c.TracesEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("traces_endpoint", "%q is not an http(s) URL of an OTLP/HTTP collector, such as http://otel-collector:4318 "+
				"(or set by OTEL_EXPORTER_OTLP_ENDPOINT)", c.TracesEndpoint)
		}
	}
	if err := validateIssuer(c.Issuer); err != nil {
		bad("issuer", "%v", err)
	}
	switch {
	case c.AdminToken == "" && !c.Dev:
		bad("admin_token", "is required: the bearer token the admin API demands, e.g. `openssl rand -base64 32`")
	case c.AdminToken != "" && len(c.AdminToken) < 16:
		bad("admin_token", "is %d characters long; it must be at least 16", len(c.AdminToken))
	}
	if err := validateAddr(c.PublicAddr); err != nil {
		bad("public_addr", "%v", err)
	}
	validateTheme(c, bad)
	if err := validateAddr(c.AdminAddr); err != nil {
		bad("admin_addr", "%v", err)
	}
	if c.PublicAddr != "" && c.PublicAddr == c.AdminAddr && !strings.HasSuffix(c.AdminAddr, ":0") {
		bad("admin_addr", "is the same as LATCHKEY_PUBLIC_ADDR (%s); the admin API needs its own listener", c.AdminAddr)
	}
	switch c.AccessTokenFormat {
	case FormatJWT, FormatOpaque:
	default:
		bad("access_token_format", "must be %q or %q, got %q", FormatJWT, FormatOpaque, c.AccessTokenFormat)
	}
	for _, o := range c.AllowedOrigins() {
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" || u.RawQuery != "" {
			bad("cors_origins", "%q is not an origin such as https://app.example.com", o)
		}
	}
	switch c.PKCERequired {
	case "", PKCEPublic, PKCEAll:
	default:
		bad("pkce_required", "must be %q (public clients, RFC 9700 §2.1.1) or %q (every client, OAuth 2.1), got %q", PKCEPublic, PKCEAll, c.PKCERequired)
	}
	if _, err := c.TrustedProxyPrefixes(); err != nil {
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			bad("trusted_proxies", "%v", e)
		}
	}
	validateSMTP(c, bad)
}

func validateIssuer(issuer string) error {
	u, err := url.Parse(issuer)
	if err != nil {
		return fmt.Errorf("is not a URL: %w", err)
	}
	if !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("must be an absolute URL such as https://auth.example.com, got %q", issuer)
	}
	if u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(issuer, "?") || strings.HasSuffix(issuer, "#") {
		return fmt.Errorf("must not have a query or fragment (RFC 8414 §2), got %q", issuer)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return fmt.Errorf("must use https unless it is a loopback address (RFC 8414 §2), got %q", issuer)
		}
	default:
		return fmt.Errorf("must use https, got %q", issuer)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validateAddr(addr string) error {
	if addr == "" {
		return errors.New("is empty; use HOST:PORT, e.g. :8080")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("is not HOST:PORT: %w", err)
	}
	return nil
}

// Database dialects, as ParseDatabaseURL names them.
const (
	DialectPostgres = "postgres"
	DialectSQLite   = "sqlite"
)

// SQLiteMemory is the source of an in-memory SQLite database.
const SQLiteMemory = ":memory:"

// ParseDatabaseURL reads a LATCHKEY_DATABASE_URL: the dialect, and the
// source the store opens, the PostgreSQL URL as given or the SQLite file
// (SQLiteMemory for sqlite::memory:). Validate reports its error under the
// variable's name; the store adds its own driver options.
func ParseDatabaseURL(databaseURL string) (dialect, source string, err error) {
	switch {
	case databaseURL == "":
		return "", "", errors.New("is empty")
	case databaseURL == "sqlite::memory:":
		return DialectSQLite, SQLiteMemory, nil
	case strings.HasPrefix(databaseURL, "sqlite://"):
		path := strings.TrimPrefix(databaseURL, "sqlite://")
		if path == "" {
			return "", "", errors.New(`names no file: use sqlite://PATH (for example sqlite://./latchkey.db) or sqlite::memory:`)
		}
		if strings.ContainsAny(path, "?#") {
			return "", "", errors.New("must not carry a query or fragment: Latchkey sets the SQLite options itself")
		}
		return DialectSQLite, path, nil
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		u, err := url.Parse(databaseURL)
		if err != nil {
			return "", "", fmt.Errorf("is not a valid URL: %w", err)
		}
		if u.Host == "" {
			return "", "", errors.New("names no host: use postgres://USER@HOST:PORT/DATABASE")
		}
		// Several hosts are a primary and its standbys: the driver takes
		// the first that answers unless told to want a writable one, and
		// a standby refuses every write Latchkey makes.
		if tsa := u.Query().Get("target_session_attrs"); strings.Contains(u.Host, ",") && tsa != "read-write" && tsa != "primary" {
			return "", "", errors.New("names several hosts but not target_session_attrs=read-write: add it, so that Latchkey connects to whichever host is the primary " +
				"and never to a standby (docs/operations.md, High availability: failover)")
		}
		return DialectPostgres, databaseURL, nil
	default:
		return "", "", errors.New(`must start with postgres://, sqlite:// or be sqlite::memory:`)
	}
}

// RevocationWindow is how long a revocation is remembered (revoked grants,
// subjects and login sessions): an access token issued just before it may
// live AccessTokenTTL, and a minute covers clock skew between instances.
// Every revocation uses this one definition, so none can expire early.
func (c *Config) RevocationWindow() time.Duration { return c.AccessTokenTTL + time.Minute }

// SystemSecrets is LATCHKEY_SECRET as a list: "new,old" rotates the secret,
// the first signing and sealing, the others still accepted.
func (c *Config) SystemSecrets() secrets.SystemSecrets { return secrets.ParseSystemSecrets(c.Secret) }

// AllowedOrigins is LATCHKEY_CORS_ORIGINS as a list.
func (c *Config) AllowedOrigins() []string {
	var out []string
	for _, o := range strings.Split(c.CORSOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, strings.TrimSuffix(o, "/"))
		}
	}
	return out
}

// PKCEForAll reports whether confidential clients must use PKCE too.
func (c *Config) PKCEForAll() bool { return c.PKCERequired == PKCEAll }

// TrustedProxyPrefixes is LATCHKEY_TRUSTED_PROXIES as a list. A bare
// address is a prefix of one address.
func (c *Config) TrustedProxyPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for _, s := range strings.Split(c.TrustedProxies, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !strings.Contains(s, "/") {
			if ip, err := netip.ParseAddr(s); err == nil && ip.Zone() == "" {
				out = append(out, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
				continue
			}
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8 or an IP address", s))
			continue
		}
		if p.Addr().Is4In6() {
			// ::ffff:10.0.0.0/104 would never match: client IPs are unmapped.
			errs = append(errs, fmt.Errorf("%q is IPv4 written as IPv6; write it as IPv4", s))
			continue
		}
		out = append(out, p.Masked())
	}
	return out, errors.Join(errs...)
}

// SecureCookies is true when the issuer is https: cookies then carry Secure
// and the __Host- prefix.
func (c *Config) SecureCookies() bool {
	u, err := url.Parse(c.Issuer)
	return err == nil && strings.EqualFold(u.Scheme, "https")
}

// IssuerURL joins a path to the issuer, keeping any path prefix the issuer has.
func (c *Config) IssuerURL(path string) string {
	return strings.TrimSuffix(c.Issuer, "/") + path
}

var hexColour = regexp.MustCompile(`^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// validateTheme checks the login pages' dressing; the templates of
// theme_dir are parsed (and their errors named) when the server starts.
func validateTheme(c *Config, bad func(key, format string, args ...any)) {
	if c.PrimaryColor != "" && !hexColour.MatchString(c.PrimaryColor) {
		bad("primary_color", "must be a hex colour like #2f5bd8, got %q", c.PrimaryColor)
	}
	if c.ThemeDir != "" {
		if st, err := os.Stat(c.ThemeDir); err != nil || !st.IsDir() {
			bad("theme_dir", "%q is not a readable directory", c.ThemeDir)
		}
	}
	if strings.ContainsAny(c.ProductName, "\r\n") || len(c.ProductName) > 100 {
		bad("product_name", "must be one line of at most 100 bytes")
	}
	if c.LogoURL == "" || (strings.HasPrefix(c.LogoURL, "/static/") && !strings.Contains(c.LogoURL, "..")) {
		return
	}
	u, err := url.Parse(c.LogoURL)
	switch {
	case err != nil || u.Host == "" || u.User != nil:
		bad("logo_url", "must be an absolute https URL or a path under /static/, got %q", c.LogoURL)
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		bad("logo_url", "must use https (http only for loopback addresses), got %q", c.LogoURL)
	}
}
