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
	"slices"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
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
	DatabaseURL        string        `koanf:"database_url"`
	Issuer             string        `koanf:"issuer"`
	Secret             string        `koanf:"secret"`
	PublicAddr         string        `koanf:"public_addr"`
	AdminAddr          string        `koanf:"admin_addr"`
	AdminToken         string        `koanf:"admin_token"`
	AccessTokenTTL     time.Duration `koanf:"access_token_ttl"`
	RefreshTokenTTL    time.Duration `koanf:"refresh_token_ttl"`
	AuthCodeTTL        time.Duration `koanf:"auth_code_ttl"`
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
	// CORSOrigins may call the token and revocation endpoints from a
	// browser (public clients: SPAs). Comma-separated origins.
	CORSOrigins string `koanf:"cors_origins"`
	// PKCERequired is which clients must use PKCE: PKCEPublic (RFC 9700
	// §2.1.1) or PKCEAll (OAuth 2.1 §4.1.1). Empty means PKCEPublic.
	PKCERequired string `koanf:"pkce_required"`
	// TrustedProxies are the reverse proxies (comma-separated CIDRs or
	// addresses) whose X-Forwarded-For the sign-in throttle believes.
	TrustedProxies string `koanf:"trusted_proxies"`

	// Dev is `serve --dev`: SQLite by default, generated secrets, migrations
	// applied. It relaxes the required settings, nothing else.
	Dev bool `koanf:"-"`
}

// Values of LATCHKEY_PKCE_REQUIRED.
const (
	PKCEPublic = "public"
	PKCEAll    = "all"
)

// Defaults are the contract's defaults.
func Defaults() map[string]any {
	return map[string]any{
		"issuer":                     "http://localhost:8080",
		"public_addr":                ":8080",
		"admin_addr":                 "127.0.0.1:8081",
		"access_token_ttl":           "15m",
		"refresh_token_ttl":          "720h",
		"auth_code_ttl":              "1m",
		"refresh_token_max_lifetime": "2160h",
		"refresh_grace_period":       "10s",
		"access_token_format":        FormatJWT,
		"signing_alg":                "ES256",
		"key_rotation_period":        "720h",
		"key_prepublish_period":      "15m",
		"log_level":                  "info",
		"session_idle_ttl":           "24h",
		"session_ttl":                "168h",
		"pkce_required":              PKCEPublic,
	}
}

// DevDatabaseURL is the database `serve --dev` uses unless told otherwise.
const DevDatabaseURL = "sqlite://./latchkey.db"

// EnvPrefix starts every environment variable Latchkey reads.
const EnvPrefix = "LATCHKEY_"

// RegisterFlags adds a flag for every setting to fs. Only flags that are set
// on the command line override the file and the environment.
func RegisterFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "YAML configuration file (keys as the LATCHKEY_* variables, lower-case, without the prefix)")
	fs.String("database-url", "", "postgres://… or sqlite://PATH or sqlite::memory: (LATCHKEY_DATABASE_URL)")
	fs.String("issuer", "", "public issuer URL (LATCHKEY_ISSUER)")
	fs.String("public-addr", "", "public listener address (LATCHKEY_PUBLIC_ADDR)")
	fs.String("admin-addr", "", "admin listener address (LATCHKEY_ADMIN_ADDR)")
	fs.Duration("access-token-ttl", 0, "access token lifetime (LATCHKEY_ACCESS_TOKEN_TTL)")
	fs.Duration("refresh-token-ttl", 0, "refresh token lifetime (LATCHKEY_REFRESH_TOKEN_TTL)")
	fs.Duration("auth-code-ttl", 0, "authorization code lifetime (LATCHKEY_AUTH_CODE_TTL)")
	fs.Duration("refresh-token-max-lifetime", 0, "absolute refresh lifetime from the start of the grant (LATCHKEY_REFRESH_TOKEN_MAX_LIFETIME)")
	fs.Duration("refresh-grace-period", 0, "refresh token reuse grace period (LATCHKEY_REFRESH_GRACE_PERIOD)")
	fs.String("access-token-format", "", "jwt or opaque (LATCHKEY_ACCESS_TOKEN_FORMAT)")
	fs.String("signing-alg", "", "ES256, RS256 or EdDSA (LATCHKEY_SIGNING_ALG)")
	fs.Duration("key-rotation-period", 0, "how long a signing key signs before the next takes over (LATCHKEY_KEY_ROTATION_PERIOD)")
	fs.Duration("key-prepublish-period", 0, "how long a new signing key is published before it signs (LATCHKEY_KEY_PREPUBLISH_PERIOD)")
	fs.Duration("session-idle-ttl", 0, "end a login session unused this long (LATCHKEY_SESSION_IDLE_TTL)")
	fs.Duration("session-ttl", 0, "end a login session this long after sign-in (LATCHKEY_SESSION_TTL)")
	fs.String("cors-origins", "", "comma-separated browser origins allowed to call the token and revocation endpoints (LATCHKEY_CORS_ORIGINS)")
	fs.String("pkce-required", "", "which clients must use PKCE: public or all (LATCHKEY_PKCE_REQUIRED)")
	fs.String("trusted-proxies", "", "comma-separated CIDRs of reverse proxies whose X-Forwarded-For names the client (LATCHKEY_TRUSTED_PROXIES)")
	fs.Bool("pprof", false, "serve /debug/pprof/ on the admin listener (LATCHKEY_PPROF)")
	fs.String("log-level", "", "debug, info, warn or error (LATCHKEY_LOG_LEVEL)")
	// The secret and the admin token have no flags on purpose: argv is
	// visible to every user of the machine.
}

// Load reads defaults < file < environment < flags. environ is os.Environ()
// in production; tests pass their own.
func Load(fs *pflag.FlagSet, environ []string) (*Config, error) {
	k := koanf.New(".")
	if err := k.Load(confmap.Provider(Defaults(), "."), nil); err != nil {
		return nil, fmt.Errorf("load defaults: %w", err)
	}
	if fs != nil {
		if path, _ := fs.GetString("config"); path != "" {
			if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
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
			if !f.Changed || f.Name == "config" {
				return "", nil
			}
			return strings.ReplaceAll(f.Name, "-", "_"), posflag.FlagVal(fs, f)
		}), nil); err != nil {
			return nil, fmt.Errorf("load flags: %w", err)
		}
	}
	if err := rejectUnitlessDurations(k); err != nil {
		return nil, err
	}
	var c Config
	if err := k.UnmarshalWithConf("", &c, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
		return nil, fmt.Errorf("decode configuration: %w", err)
	}
	c.Issuer = NormalizeIssuer(c.Issuer)
	return &c, nil
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

// rejectUnitlessDurations refuses a bare number for a duration. The decoder
// would take a YAML "auth_code_ttl: 60" as 60 nanoseconds, which passes
// every check and expires each code at once. Flags arrive as time.Duration
// and the environment as strings, which must carry a unit anyway.
func rejectUnitlessDurations(k *koanf.Koanf) error {
	var errs []error
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type != reflect.TypeFor[time.Duration]() {
			continue
		}
		key := f.Tag.Get("koanf")
		switch v := k.Get(key).(type) {
		case nil, string, time.Duration:
		default:
			errs = append(errs, fmt.Errorf("%s%s: %v has no unit; write a duration such as 90s, 15m or 720h", EnvPrefix, strings.ToUpper(key), v))
		}
	}
	return errors.Join(errs...)
}

// Environ is os.Environ, named so that callers read as intent.
func Environ() []string { return os.Environ() }

// Validate checks every setting and returns all problems joined, each
// naming the environment variable to change.
func (c *Config) Validate() error {
	return c.ValidateSettings()
}

// ValidateSettings checks only the named settings (environment variable
// names without the prefix, e.g. "DATABASE_URL"), or all when none are
// named. Commands other than serve need only some: `migrate` has no use for
// an admin token.
func (c *Config) ValidateSettings(names ...string) error {
	var errs []error
	bad := func(name, format string, args ...any) {
		if len(names) > 0 && !slices.Contains(names, name) {
			return
		}
		errs = append(errs, fmt.Errorf("%s%s: %s", EnvPrefix, name, fmt.Sprintf(format, args...)))
	}

	if c.DatabaseURL == "" {
		if !c.Dev {
			bad("DATABASE_URL", "is required (postgres://USER@HOST:PORT/DB, sqlite://PATH, or sqlite::memory:); `latchkey serve --dev` uses %s", DevDatabaseURL)
		}
	} else if _, _, err := store.ParseURL(c.DatabaseURL); err != nil {
		bad("DATABASE_URL", "%v", err)
	}

	if err := validateIssuer(c.Issuer); err != nil {
		bad("ISSUER", "%v", err)
	}

	switch {
	case c.Secret == "" && !c.Dev:
		bad("SECRET", "is required: at least %d random bytes, e.g. `openssl rand -base64 48`", secrets.MinSystemSecretLen)
	case c.Secret != "" && len(c.SystemSecrets()) == 0:
		// " " or "," would otherwise pass here and fail later as "no system secret".
		bad("SECRET", "holds no secret (only spaces or commas); set at least %d random bytes", secrets.MinSystemSecretLen)
	case c.Secret != "":
		for i, s := range c.SystemSecrets() {
			if len(s) < secrets.MinSystemSecretLen {
				bad("SECRET", "secret %d of the list is %d bytes long; each must be at least %d", i+1, len(s), secrets.MinSystemSecretLen)
			}
		}
	}

	switch {
	case c.AdminToken == "" && !c.Dev:
		bad("ADMIN_TOKEN", "is required: the bearer token the admin API demands, e.g. `openssl rand -base64 32`")
	case c.AdminToken != "" && len(c.AdminToken) < 16:
		bad("ADMIN_TOKEN", "is %d characters long; it must be at least 16", len(c.AdminToken))
	}

	if err := validateAddr(c.PublicAddr); err != nil {
		bad("PUBLIC_ADDR", "%v", err)
	}
	if err := validateAddr(c.AdminAddr); err != nil {
		bad("ADMIN_ADDR", "%v", err)
	}
	if c.PublicAddr != "" && c.PublicAddr == c.AdminAddr && !strings.HasSuffix(c.AdminAddr, ":0") {
		bad("ADMIN_ADDR", "is the same as LATCHKEY_PUBLIC_ADDR (%s); the admin API needs its own listener", c.AdminAddr)
	}

	if c.AccessTokenTTL <= 0 {
		bad("ACCESS_TOKEN_TTL", "must be positive, got %s", c.AccessTokenTTL)
	}
	if c.RefreshTokenTTL <= 0 {
		bad("REFRESH_TOKEN_TTL", "must be positive, got %s", c.RefreshTokenTTL)
	} else if c.AccessTokenTTL > c.RefreshTokenTTL {
		bad("ACCESS_TOKEN_TTL", "(%s) must not exceed LATCHKEY_REFRESH_TOKEN_TTL (%s)", c.AccessTokenTTL, c.RefreshTokenTTL)
	}
	if c.RefreshTokenMaxLifetime < c.RefreshTokenTTL {
		bad("REFRESH_TOKEN_MAX_LIFETIME", "(%s) must be at least LATCHKEY_REFRESH_TOKEN_TTL (%s)", c.RefreshTokenMaxLifetime, c.RefreshTokenTTL)
	}
	// RFC 6749 §4.1.2: a maximum authorization code lifetime of 10 minutes is RECOMMENDED.
	if c.AuthCodeTTL < time.Second || c.AuthCodeTTL > 10*time.Minute {
		bad("AUTH_CODE_TTL", "must be between 1s and 10m (RFC 6749 §4.1.2), got %s", c.AuthCodeTTL)
	}
	if c.RefreshGracePeriod < 0 || c.RefreshGracePeriod > time.Minute {
		bad("REFRESH_GRACE_PERIOD", "must be between 0 (strict rotation) and 1m, got %s", c.RefreshGracePeriod)
	}

	switch c.AccessTokenFormat {
	case FormatJWT, FormatOpaque:
	default:
		bad("ACCESS_TOKEN_FORMAT", "must be %q or %q, got %q", FormatJWT, FormatOpaque, c.AccessTokenFormat)
	}
	switch c.SigningAlg {
	case "ES256", "RS256", "EdDSA":
	default:
		bad("SIGNING_ALG", "must be ES256, RS256 or EdDSA, got %q", c.SigningAlg)
	}
	if c.SessionTTL <= 0 {
		bad("SESSION_TTL", "must be positive, got %s", c.SessionTTL)
	}
	if c.SessionIdleTTL <= 0 || c.SessionIdleTTL > c.SessionTTL {
		bad("SESSION_IDLE_TTL", "must be positive and at most LATCHKEY_SESSION_TTL (%s), got %s", c.SessionTTL, c.SessionIdleTTL)
	}
	if c.KeyRotationPeriod < time.Minute {
		bad("KEY_ROTATION_PERIOD", "must be at least 1m, got %s", c.KeyRotationPeriod)
	}
	if c.KeyPrepublishPeriod < 0 || c.KeyPrepublishPeriod >= c.KeyRotationPeriod {
		bad("KEY_PREPUBLISH_PERIOD", "must be at least 0 and shorter than LATCHKEY_KEY_ROTATION_PERIOD (%s), got %s", c.KeyRotationPeriod, c.KeyPrepublishPeriod)
	}
	for _, o := range c.AllowedOrigins() {
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" || u.RawQuery != "" {
			bad("CORS_ORIGINS", "%q is not an origin such as https://app.example.com", o)
		}
	}
	switch c.PKCERequired {
	case "", PKCEPublic, PKCEAll:
	default:
		bad("PKCE_REQUIRED", "must be %q (public clients, RFC 9700 §2.1.1) or %q (every client, OAuth 2.1), got %q", PKCEPublic, PKCEAll, c.PKCERequired)
	}
	if _, err := c.TrustedProxyPrefixes(); err != nil {
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			bad("TRUSTED_PROXIES", "%v", e)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("LOG_LEVEL", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	return errors.Join(errs...)
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
