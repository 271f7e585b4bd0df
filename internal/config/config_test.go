package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/spf13/pflag"
)

const (
	secret32   = "0123456789abcdef0123456789abcdef" // exactly the minimum
	goodSecret = secret32 + "-longer"
	adminToken = "admin-token-0123456789"
)

// flagSet is the command line as cobra hands it to Load: every setting
// registered, only the given ones set.
func flagSet(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("latchkey", pflag.ContinueOnError)
	config.RegisterCommonFlags(fs)
	config.RegisterFlags(fs, config.GroupAll)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return fs
}

// writeYAML returns the path of a config file holding body.
func writeYAML(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "latchkey.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// load runs Load with an optional YAML file given through --config.
func load(t *testing.T, yaml string, environ []string, args ...string) (*config.Config, error) {
	t.Helper()
	if yaml != "" {
		args = append([]string{"--config", writeYAML(t, yaml)}, args...)
	}
	return config.Load(flagSet(t, args...), environ)
}

// valid is a configuration that passes Validate, built the way production
// builds it, so each validation case changes exactly one thing.
func valid(t *testing.T) *config.Config {
	t.Helper()
	c, err := config.Load(nil, []string{
		"LATCHKEY_DATABASE_URL=sqlite::memory:", "LATCHKEY_SECRET=" + goodSecret, "LATCHKEY_ADMIN_TOKEN=" + adminToken,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("the base configuration is invalid: %v", err)
	}
	return c
}

// problems splits a Validate error into the problems it joins.
func problems(err error) []error {
	if err == nil {
		return nil
	}
	// Joins of joins (Load's problems joined with Validate's) flatten.
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range joined.Unwrap() {
			out = append(out, problems(e)...)
		}
		return out
	}
	return []error{err}
}

// The defaults are the contract's table; people rely on them without
// setting anything.
func TestDefaults(t *testing.T) {
	c, err := config.Load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		got, want any
	}{
		{"LATCHKEY_DATABASE_URL", c.DatabaseURL, ""},
		{"LATCHKEY_DATABASE_LISTEN_URL", c.DatabaseListenURL, ""},
		{"LATCHKEY_ISSUER", c.Issuer, "http://localhost:8080"},
		{"LATCHKEY_SECRET", c.Secret, ""},
		{"LATCHKEY_PUBLIC_ADDR", c.PublicAddr, ":8080"},
		{"LATCHKEY_ADMIN_ADDR", c.AdminAddr, "127.0.0.1:8081"},
		{"LATCHKEY_ADMIN_TOKEN", c.AdminToken, ""},
		{"LATCHKEY_ACCESS_TOKEN_TTL", c.AccessTokenTTL, 15 * time.Minute},
		{"LATCHKEY_REFRESH_TOKEN_TTL", c.RefreshTokenTTL, 720 * time.Hour},
		{"LATCHKEY_AUTH_CODE_TTL", c.AuthCodeTTL, time.Minute},
		{"LATCHKEY_DEVICE_CODE_TTL", c.DeviceCodeTTL, 10 * time.Minute},
		{"LATCHKEY_DEVICE_POLL_INTERVAL", c.DevicePollInterval, 5 * time.Second},
		{"LATCHKEY_REFRESH_GRACE_PERIOD", c.RefreshGracePeriod, 10 * time.Second},
		{"LATCHKEY_ACCESS_TOKEN_FORMAT", c.AccessTokenFormat, config.FormatJWT},
		{"LATCHKEY_SIGNING_ALG", c.SigningAlg, "ES256"},
		{"LATCHKEY_PKCE_REQUIRED", c.PKCERequired, config.PKCEPublic},
		{"Dev", c.Dev, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
}

// Defaults < file (--config) < environment < flags.
func TestLoadPrecedence(t *testing.T) {
	cases := []struct {
		name    string
		yaml    string
		environ []string
		args    []string
		get     func(*config.Config) any
		want    any
	}{
		{
			name: "default when nothing is set",
			get:  func(c *config.Config) any { return c.Issuer }, want: "http://localhost:8080",
		},
		{
			name: "file over default",
			yaml: "issuer: https://file.example\n",
			get:  func(c *config.Config) any { return c.Issuer }, want: "https://file.example",
		},
		{
			name:    "environment over file",
			yaml:    "issuer: https://file.example\n",
			environ: []string{"LATCHKEY_ISSUER=https://env.example"},
			get:     func(c *config.Config) any { return c.Issuer }, want: "https://env.example",
		},
		{
			name:    "flag over environment and file",
			yaml:    "issuer: https://file.example\n",
			environ: []string{"LATCHKEY_ISSUER=https://env.example"},
			args:    []string{"--issuer", "https://flag.example"},
			get:     func(c *config.Config) any { return c.Issuer }, want: "https://flag.example",
		},
		{
			name: "flag over file",
			yaml: "public_addr: \":9000\"\n",
			args: []string{"--public-addr", ":9100"},
			get:  func(c *config.Config) any { return c.PublicAddr }, want: ":9100",
		},
		{
			// Unset flags carry zero values; they must not blank out the
			// environment.
			name:    "flags not given leave the environment alone",
			environ: []string{"LATCHKEY_ISSUER=https://env.example", "LATCHKEY_ACCESS_TOKEN_TTL=5m"},
			args:    []string{"--public-addr", ":9100"},
			get:     func(c *config.Config) any { return []any{c.Issuer, c.AccessTokenTTL} }, want: []any{"https://env.example", 5 * time.Minute},
		},
		{
			name:    "a flag set to its zero value still wins",
			environ: []string{"LATCHKEY_PPROF=true", "LATCHKEY_REFRESH_GRACE_PERIOD=30s"},
			args:    []string{"--pprof=false", "--refresh-grace-period=0s"},
			get:     func(c *config.Config) any { return []any{c.Pprof, c.RefreshGracePeriod} }, want: []any{false, time.Duration(0)},
		},
		{
			name:    "environment bool",
			environ: []string{"LATCHKEY_PPROF=true"},
			get:     func(c *config.Config) any { return c.Pprof }, want: true,
		},
		{
			name:    "variables without the prefix are ignored",
			environ: []string{"ISSUER=https://other.example", "OTHER_LATCHKEY_SECRET=x", "DATABASE_URL=postgres://h/db"},
			get:     func(c *config.Config) any { return []any{c.Issuer, c.Secret, c.DatabaseURL} }, want: []any{"http://localhost:8080", "", ""},
		},
		{
			name:    "a value containing = and ? is kept whole",
			environ: []string{"LATCHKEY_DATABASE_URL=postgres://u:p=w@db:5432/lk?sslmode=require&x=y"},
			get:     func(c *config.Config) any { return c.DatabaseURL }, want: "postgres://u:p=w@db:5432/lk?sslmode=require&x=y",
		},
		{
			name:    "secret and admin token from the environment",
			environ: []string{"LATCHKEY_SECRET=" + goodSecret, "LATCHKEY_ADMIN_TOKEN=" + adminToken},
			get:     func(c *config.Config) any { return []any{c.Secret, c.AdminToken} }, want: []any{goodSecret, adminToken},
		},
		{
			name: "file keys are the variable names, lower-case, without the prefix",
			yaml: "database_url: \"sqlite::memory:\"\nsecret: " + goodSecret + "\nadmin_token: " + adminToken + "\nsigning_alg: EdDSA\naccess_token_format: opaque\n",
			get: func(c *config.Config) any {
				return []any{c.DatabaseURL, c.Secret, c.AdminToken, c.SigningAlg, c.AccessTokenFormat}
			},
			want: []any{"sqlite::memory:", goodSecret, adminToken, "EdDSA", config.FormatOpaque},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, tc.yaml, tc.environ, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.get(c); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// Durations are Go durations wherever they come from.
func TestLoadDurations(t *testing.T) {
	cases := []struct {
		name    string
		yaml    string
		environ []string
		args    []string
		get     func(*config.Config) time.Duration
		want    time.Duration
	}{
		{name: "default access 15m", get: func(c *config.Config) time.Duration { return c.AccessTokenTTL }, want: 15 * time.Minute},
		{name: "default refresh 720h", get: func(c *config.Config) time.Duration { return c.RefreshTokenTTL }, want: 720 * time.Hour},
		{name: "env 15m", environ: []string{"LATCHKEY_AUTH_CODE_TTL=15m"}, get: func(c *config.Config) time.Duration { return c.AuthCodeTTL }, want: 15 * time.Minute},
		{name: "env 720h", environ: []string{"LATCHKEY_SESSION_TTL=720h"}, get: func(c *config.Config) time.Duration { return c.SessionTTL }, want: 720 * time.Hour},
		{name: "env compound 1h30m", environ: []string{"LATCHKEY_ACCESS_TOKEN_TTL=1h30m"}, get: func(c *config.Config) time.Duration { return c.AccessTokenTTL }, want: 90 * time.Minute},
		{name: "env zero", environ: []string{"LATCHKEY_REFRESH_GRACE_PERIOD=0s"}, get: func(c *config.Config) time.Duration { return c.RefreshGracePeriod }, want: 0},
		{name: "file 720h", yaml: "refresh_token_ttl: 720h\n", get: func(c *config.Config) time.Duration { return c.RefreshTokenTTL }, want: 720 * time.Hour},
		{name: "file quoted 15m", yaml: "access_token_ttl: \"15m\"\n", get: func(c *config.Config) time.Duration { return c.AccessTokenTTL }, want: 15 * time.Minute},
		{name: "flag 45m", args: []string{"--access-token-ttl", "45m"}, get: func(c *config.Config) time.Duration { return c.AccessTokenTTL }, want: 45 * time.Minute},
		{name: "flag 720h", args: []string{"--key-rotation-period=720h"}, get: func(c *config.Config) time.Duration { return c.KeyRotationPeriod }, want: 720 * time.Hour},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, tc.yaml, tc.environ, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.get(c); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// What cannot be read fails Load and says which setting.
func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name    string
		args    func(t *testing.T) []string
		environ []string
		mention string
	}{
		{
			name:    "missing config file",
			args:    func(t *testing.T) []string { return []string{"--config", filepath.Join(t.TempDir(), "missing.yaml")} },
			mention: "missing.yaml",
		},
		{
			name:    "malformed YAML",
			args:    func(t *testing.T) []string { return []string{"--config", writeYAML(t, "issuer: [unclosed\n")} },
			mention: "latchkey.yaml",
		},
		{name: "duration without a unit in the environment", environ: []string{"LATCHKEY_ACCESS_TOKEN_TTL=900"}, mention: "access_token_ttl"},
		{name: "words for a duration", environ: []string{"LATCHKEY_REFRESH_TOKEN_TTL=thirty days"}, mention: "refresh_token_ttl"},
		{name: "empty duration", environ: []string{"LATCHKEY_AUTH_CODE_TTL="}, mention: "auth_code_ttl"},
		{
			// A bare number in YAML decodes as nanoseconds and would pass
			// Validate; it must be refused instead.
			name:    "duration without a unit in the file",
			args:    func(t *testing.T) []string { return []string{"--config", writeYAML(t, "auth_code_ttl: 60\n")} },
			mention: "LATCHKEY_AUTH_CODE_TTL",
		},
		{name: "not a bool", environ: []string{"LATCHKEY_PPROF=maybe"}, mention: "pprof"},
		{name: "an exporter we do not have", environ: []string{"OTEL_TRACES_EXPORTER=zipkin"}, mention: "OTEL_TRACES_EXPORTER"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			if tc.args != nil {
				args = tc.args(t)
			}
			c, err := config.Load(flagSet(t, args...), tc.environ)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.mention)) {
				t.Errorf("error %q does not mention %s", err, tc.mention)
			}
		})
	}
}

// Every setting except the two secrets can be given as a flag; those two
// have none because argv is visible to every user of the machine.
func TestRegisterFlags(t *testing.T) {
	fs := flagSet(t)
	typ := reflect.TypeFor[config.Config]()
	for i := range typ.NumField() {
		key := typ.Field(i).Tag.Get("koanf")
		if key == "-" {
			continue
		}
		name := strings.ReplaceAll(key, "_", "-")
		t.Run(name, func(t *testing.T) {
			f := fs.Lookup(name)
			switch key {
			case "secret", "admin_token", "smtp_url":
				if f != nil {
					t.Errorf("--%s exists; secrets (the SMTP URL carries a password) must not be taken from argv", name)
				}
			default:
				if f == nil {
					t.Errorf("no --%s flag for LATCHKEY_%s", name, strings.ToUpper(key))
				}
			}
		})
	}
	if fs.Lookup("config") == nil {
		t.Error("no --config flag")
	}
}

// Each bad setting is one problem that names the variable to change, and
// the settings around each boundary that are fine pass.
func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*config.Config)
		want   string // the variable named, "" when the change is fine
	}{
		{"secret of 32 bytes", func(c *config.Config) { c.Secret = secret32 }, ""},
		{"secret of 31 bytes", func(c *config.Config) { c.Secret = secret32[:31] }, "LATCHKEY_SECRET"},
		{"rotation list", func(c *config.Config) { c.Secret = goodSecret + "," + secret32 }, ""},
		{"rotation list with a short old secret", func(c *config.Config) { c.Secret = goodSecret + ",old" }, "LATCHKEY_SECRET"},
		{"blank secret", func(c *config.Config) { c.Secret = " " }, "LATCHKEY_SECRET"},
		{"secret of commas", func(c *config.Config) { c.Secret = ", ," }, "LATCHKEY_SECRET"},

		{"traces to a collector", func(c *config.Config) { c.TracesEndpoint = "http://otel-collector:4318" }, ""},
		{"traces to a host without a scheme", func(c *config.Config) { c.TracesEndpoint = "otel-collector:4318" }, "LATCHKEY_TRACES_ENDPOINT"},
		{"traces over gRPC", func(c *config.Config) { c.TracesEndpoint = "grpc://otel-collector:4317" }, "LATCHKEY_TRACES_ENDPOINT"},

		{"postgres URL", func(c *config.Config) { c.DatabaseURL = "postgres://latchkey@db:5432/latchkey?sslmode=disable" }, ""},
		{"postgresql URL", func(c *config.Config) { c.DatabaseURL = "postgresql://latchkey@db/latchkey" }, ""},
		{"sqlite file", func(c *config.Config) { c.DatabaseURL = "sqlite://./latchkey.db" }, ""},
		{"mysql URL", func(c *config.Config) { c.DatabaseURL = "mysql://root@db/latchkey" }, "LATCHKEY_DATABASE_URL"},
		{"not a URL", func(c *config.Config) { c.DatabaseURL = "latchkey.db" }, "LATCHKEY_DATABASE_URL"},
		{"postgres without host", func(c *config.Config) { c.DatabaseURL = "postgres:///latchkey" }, "LATCHKEY_DATABASE_URL"},
		{"unparsable postgres URL", func(c *config.Config) { c.DatabaseURL = "postgres://db:port/x" }, "LATCHKEY_DATABASE_URL"},
		// A primary and its standby (docs/operations.md, "High availability:
		// failover"): without read-write the driver may settle on the standby.
		{"primary and standby, read-write", func(c *config.Config) {
			c.DatabaseURL = "postgres://latchkey@db1:5432,db2:5432/latchkey?target_session_attrs=read-write"
		}, ""},
		{"primary and standby, primary", func(c *config.Config) {
			c.DatabaseURL = "postgres://latchkey@db1,db2/latchkey?target_session_attrs=primary"
		}, ""},
		{"primary and standby, any", func(c *config.Config) { c.DatabaseURL = "postgres://latchkey@db1,db2/latchkey" }, "LATCHKEY_DATABASE_URL"},
		{"primary and standby, prefer-standby", func(c *config.Config) {
			c.DatabaseURL = "postgres://latchkey@db1,db2/latchkey?target_session_attrs=prefer-standby"
		}, "LATCHKEY_DATABASE_URL"},
		{"listen URL on primary and standby, any", func(c *config.Config) {
			c.DatabaseURL = "postgres://latchkey@db1,db2/latchkey?target_session_attrs=read-write"
			c.DatabaseListenURL = "postgres://latchkey@db1,db2/latchkey"
		}, "LATCHKEY_DATABASE_LISTEN_URL"},
		{"sqlite without a path", func(c *config.Config) { c.DatabaseURL = "sqlite://" }, "LATCHKEY_DATABASE_URL"},
		{"sqlite with options", func(c *config.Config) { c.DatabaseURL = "sqlite://x.db?mode=ro" }, "LATCHKEY_DATABASE_URL"},
		{"listen URL beside a pooled postgres URL", func(c *config.Config) {
			c.DatabaseURL = "postgres://latchkey@pgbouncer:6432/latchkey?default_query_exec_mode=exec"
			c.DatabaseListenURL = "postgres://latchkey@db:5432/latchkey"
		}, ""},
		{"listen URL that is not postgres", func(c *config.Config) {
			c.DatabaseURL = "postgres://latchkey@pgbouncer:6432/latchkey"
			c.DatabaseListenURL = "sqlite://x.db"
		}, "LATCHKEY_DATABASE_LISTEN_URL"},
		{"listen URL without host", func(c *config.Config) {
			c.DatabaseURL = "postgres://latchkey@pgbouncer:6432/latchkey"
			c.DatabaseListenURL = "postgres:///latchkey"
		}, "LATCHKEY_DATABASE_LISTEN_URL"},
		{"listen URL with SQLite", func(c *config.Config) {
			c.DatabaseURL = "sqlite://x.db"
			c.DatabaseListenURL = "postgres://latchkey@db/latchkey"
		}, "LATCHKEY_DATABASE_LISTEN_URL"},

		{"https issuer with path", func(c *config.Config) { c.Issuer = "https://auth.example.com/tenant" }, ""},
		{"http localhost issuer", func(c *config.Config) { c.Issuer = "http://localhost:8080" }, ""},
		{"http 127.0.0.1 issuer", func(c *config.Config) { c.Issuer = "http://127.0.0.1:8080" }, ""},
		{"http [::1] issuer", func(c *config.Config) { c.Issuer = "http://[::1]:8080" }, ""},
		{"relative issuer", func(c *config.Config) { c.Issuer = "auth.example.com" }, "LATCHKEY_ISSUER"},
		{"path-only issuer", func(c *config.Config) { c.Issuer = "/oauth" }, "LATCHKEY_ISSUER"},
		{"issuer without host", func(c *config.Config) { c.Issuer = "https://" }, "LATCHKEY_ISSUER"},
		{"http issuer on a public host", func(c *config.Config) { c.Issuer = "http://auth.example.com" }, "LATCHKEY_ISSUER"},
		{"http issuer on a host starting with localhost", func(c *config.Config) { c.Issuer = "http://localhost.example.com" }, "LATCHKEY_ISSUER"},
		{"http issuer on a private address", func(c *config.Config) { c.Issuer = "http://10.0.0.1:8080" }, "LATCHKEY_ISSUER"},
		{"issuer with fragment", func(c *config.Config) { c.Issuer = "https://auth.example.com#x" }, "LATCHKEY_ISSUER"},
		{"issuer with query", func(c *config.Config) { c.Issuer = "https://auth.example.com?tenant=1" }, "LATCHKEY_ISSUER"},
		{"issuer with empty query", func(c *config.Config) { c.Issuer = "https://auth.example.com?" }, "LATCHKEY_ISSUER"},
		{"issuer with empty fragment", func(c *config.Config) { c.Issuer = "https://auth.example.com#" }, "LATCHKEY_ISSUER"},
		{"ftp issuer", func(c *config.Config) { c.Issuer = "ftp://auth.example.com" }, "LATCHKEY_ISSUER"},

		{"opaque tokens", func(c *config.Config) { c.AccessTokenFormat = config.FormatOpaque }, ""},
		{"unknown token format", func(c *config.Config) { c.AccessTokenFormat = "paseto" }, "LATCHKEY_ACCESS_TOKEN_FORMAT"},
		{"token format in capitals", func(c *config.Config) { c.AccessTokenFormat = "JWT" }, "LATCHKEY_ACCESS_TOKEN_FORMAT"},
		{"RS256", func(c *config.Config) { c.SigningAlg = "RS256" }, ""},
		{"EdDSA", func(c *config.Config) { c.SigningAlg = "EdDSA" }, ""},
		{"HS256", func(c *config.Config) { c.SigningAlg = "HS256" }, "LATCHKEY_SIGNING_ALG"},
		{"alg none", func(c *config.Config) { c.SigningAlg = "none" }, "LATCHKEY_SIGNING_ALG"},
		{"alg in lower case", func(c *config.Config) { c.SigningAlg = "es256" }, "LATCHKEY_SIGNING_ALG"},

		{"auth code TTL of 10m", func(c *config.Config) { c.AuthCodeTTL = 10 * time.Minute }, ""},
		{"auth code TTL over 10m", func(c *config.Config) { c.AuthCodeTTL = 10*time.Minute + time.Second }, "LATCHKEY_AUTH_CODE_TTL"},
		{"auth code TTL of an hour", func(c *config.Config) { c.AuthCodeTTL = time.Hour }, "LATCHKEY_AUTH_CODE_TTL"},
		{"auth code TTL of zero", func(c *config.Config) { c.AuthCodeTTL = 0 }, "LATCHKEY_AUTH_CODE_TTL"},
		{"auth code TTL under 1s", func(c *config.Config) { c.AuthCodeTTL = 500 * time.Millisecond }, "LATCHKEY_AUTH_CODE_TTL"},
		{"device code TTL of 1h", func(c *config.Config) { c.DeviceCodeTTL = time.Hour }, ""},
		{"device code TTL of 10s", func(c *config.Config) { c.DeviceCodeTTL = 10 * time.Second }, "LATCHKEY_DEVICE_CODE_TTL"},
		{"device code TTL of a day", func(c *config.Config) { c.DeviceCodeTTL = 24 * time.Hour }, "LATCHKEY_DEVICE_CODE_TTL"},
		{"poll interval of 1s", func(c *config.Config) { c.DevicePollInterval = time.Second }, ""},
		{"poll interval of zero", func(c *config.Config) { c.DevicePollInterval = 0 }, "LATCHKEY_DEVICE_POLL_INTERVAL"},
		{"poll interval of 1.5s", func(c *config.Config) { c.DevicePollInterval = 1500 * time.Millisecond }, "LATCHKEY_DEVICE_POLL_INTERVAL"},
		{"access TTL of zero", func(c *config.Config) { c.AccessTokenTTL = 0 }, "LATCHKEY_ACCESS_TOKEN_TTL"},
		{"access TTL longer than refresh TTL", func(c *config.Config) { c.AccessTokenTTL = 1000 * time.Hour }, "LATCHKEY_ACCESS_TOKEN_TTL"},
		{"negative grace period", func(c *config.Config) { c.RefreshGracePeriod = -time.Second }, "LATCHKEY_REFRESH_GRACE_PERIOD"},
		{"strict rotation", func(c *config.Config) { c.RefreshGracePeriod = 0 }, ""},
		{"max lifetime under refresh TTL", func(c *config.Config) { c.RefreshTokenMaxLifetime = time.Hour }, "LATCHKEY_REFRESH_TOKEN_MAX_LIFETIME"},

		{"same public and admin address", func(c *config.Config) { c.PublicAddr, c.AdminAddr = ":8080", ":8080" }, "LATCHKEY_ADMIN_ADDR"},
		{"same host and port", func(c *config.Config) { c.PublicAddr, c.AdminAddr = "127.0.0.1:9000", "127.0.0.1:9000" }, "LATCHKEY_ADMIN_ADDR"},
		{"both on port 0", func(c *config.Config) { c.PublicAddr, c.AdminAddr = "127.0.0.1:0", "127.0.0.1:0" }, ""},
		{"public address without port", func(c *config.Config) { c.PublicAddr = "8080" }, "LATCHKEY_PUBLIC_ADDR"},
		{"empty admin address", func(c *config.Config) { c.AdminAddr = "" }, "LATCHKEY_ADMIN_ADDR"},

		{"short admin token", func(c *config.Config) { c.AdminToken = "short" }, "LATCHKEY_ADMIN_TOKEN"},
		{"log level", func(c *config.Config) { c.LogLevel = "loud" }, "LATCHKEY_LOG_LEVEL"},
		{"PKCE for public clients", func(c *config.Config) { c.PKCERequired = config.PKCEPublic }, ""},
		{"PKCE for all clients", func(c *config.Config) { c.PKCERequired = config.PKCEAll }, ""},
		{"PKCE unset", func(c *config.Config) { c.PKCERequired = "" }, ""},
		{"PKCE for nobody", func(c *config.Config) { c.PKCERequired = "none" }, "LATCHKEY_PKCE_REQUIRED"},
		{"PKCE in capitals", func(c *config.Config) { c.PKCERequired = "ALL" }, "LATCHKEY_PKCE_REQUIRED"},
		{"CORS origins", func(c *config.Config) { c.CORSOrigins = "https://app.example.com, http://localhost:5173/" }, ""},
		{"CORS origin with a path", func(c *config.Config) { c.CORSOrigins = "https://app.example.com/spa" }, "LATCHKEY_CORS_ORIGINS"},
		{"trusted proxies", func(c *config.Config) { c.TrustedProxies = "10.0.0.0/8, 192.168.1.7 ,fd00::/8,::1" }, ""},
		{"trusted proxy not a CIDR", func(c *config.Config) { c.TrustedProxies = "10.0.0.0/8,proxy.internal" }, "LATCHKEY_TRUSTED_PROXIES"},
		{"trusted proxy with a bad mask", func(c *config.Config) { c.TrustedProxies = "10.0.0.0/33" }, "LATCHKEY_TRUSTED_PROXIES"},
		{"trusted proxy as mapped IPv4", func(c *config.Config) { c.TrustedProxies = "::ffff:10.0.0.0/104" }, "LATCHKEY_TRUSTED_PROXIES"},

		{"missing database URL", func(c *config.Config) { c.DatabaseURL = "" }, "LATCHKEY_DATABASE_URL"},
		{"missing secret", func(c *config.Config) { c.Secret = "" }, "LATCHKEY_SECRET"},
		{"missing admin token", func(c *config.Config) { c.AdminToken = "" }, "LATCHKEY_ADMIN_TOKEN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid(t)
			tc.mutate(c)
			errs := problems(c.Validate())
			if tc.want == "" {
				if len(errs) != 0 {
					t.Fatalf("rejected: %v", errs)
				}
				return
			}
			if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), tc.want+": ") {
				t.Fatalf("want one problem naming %s, got %q", tc.want, errs)
			}
		})
	}
}

// Dev mode supplies the database, the secret and the admin token itself,
// so their absence is fine; anything actually set is still checked.
func TestValidateDev(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*config.Config)
		want   string
	}{
		{"no database URL, secret or admin token", func(c *config.Config) { c.DatabaseURL, c.Secret, c.AdminToken = "", "", "" }, ""},
		{"short secret", func(c *config.Config) { c.Secret = "short" }, "LATCHKEY_SECRET"},
		{"blank secret", func(c *config.Config) { c.Secret = "  " }, "LATCHKEY_SECRET"},
		{"short admin token", func(c *config.Config) { c.AdminToken = "short" }, "LATCHKEY_ADMIN_TOKEN"},
		{"bad database URL", func(c *config.Config) { c.DatabaseURL = "mysql://db" }, "LATCHKEY_DATABASE_URL"},
		{"http issuer on a public host", func(c *config.Config) { c.Issuer = "http://auth.example.com" }, "LATCHKEY_ISSUER"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid(t)
			c.Dev = true
			tc.mutate(c)
			errs := problems(c.Validate())
			if tc.want == "" {
				if len(errs) != 0 {
					t.Fatalf("rejected in dev mode: %v", errs)
				}
				return
			}
			if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), tc.want+": ") {
				t.Fatalf("want one problem naming %s, got %q", tc.want, errs)
			}
		})
	}
}

// One run reports every problem, so a person fixes them all in one go.
func TestValidateReportsEverythingAtOnce(t *testing.T) {
	t.Run("nothing set", func(t *testing.T) {
		c, err := config.Load(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		assertNames(t, c.Validate(), "LATCHKEY_DATABASE_URL", "LATCHKEY_SECRET", "LATCHKEY_ADMIN_TOKEN")
	})
	t.Run("several bad settings", func(t *testing.T) {
		c := valid(t)
		c.Secret, c.Issuer, c.SigningAlg, c.AuthCodeTTL, c.AdminAddr = "short", "http://auth.example.com", "none", time.Hour, c.PublicAddr
		assertNames(t, c.Validate(), "LATCHKEY_SECRET", "LATCHKEY_ISSUER", "LATCHKEY_SIGNING_ALG", "LATCHKEY_AUTH_CODE_TTL", "LATCHKEY_ADMIN_ADDR")
	})
}

// Commands other than serve check only the groups they use: `migrate up`
// must work without an admin token or a secret.
func TestValidateGroups(t *testing.T) {
	broken := func(t *testing.T) *config.Config {
		c := valid(t)
		c.Secret, c.AdminToken, c.Issuer, c.SigningAlg = "", "", "nope", "none"
		return c
	}
	t.Run("ignores other groups", func(t *testing.T) {
		if err := broken(t).ValidateGroups(config.GroupDatabase); err != nil {
			t.Fatalf("looked beyond the database: %v", err)
		}
	})
	t.Run("still checks its own", func(t *testing.T) {
		c := broken(t)
		c.DatabaseURL = "mysql://db"
		assertNames(t, c.ValidateGroups(config.GroupDatabase), "LATCHKEY_DATABASE_URL")
	})
	t.Run("several groups", func(t *testing.T) {
		assertNames(t, broken(t).ValidateGroups(config.GroupDatabase|config.GroupSecret|config.GroupKeys), "LATCHKEY_SECRET", "LATCHKEY_SIGNING_ALG")
	})
	t.Run("the log level always", func(t *testing.T) {
		c := valid(t)
		c.LogLevel = "loud"
		assertNames(t, c.ValidateGroups(config.GroupDatabase), "LATCHKEY_LOG_LEVEL")
	})
	t.Run("all groups", func(t *testing.T) {
		assertNames(t, broken(t).ValidateGroups(config.GroupAll), "LATCHKEY_SECRET", "LATCHKEY_ADMIN_TOKEN", "LATCHKEY_ISSUER", "LATCHKEY_SIGNING_ALG")
	})
}

// assertNames checks that err holds exactly one problem per variable named,
// in any order.
func assertNames(t *testing.T, err error, names ...string) {
	t.Helper()
	var got []string
	for _, e := range problems(err) {
		name, _, _ := strings.Cut(e.Error(), ":")
		got = append(got, name)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(names))
	if !slices.Equal(got, want) {
		t.Fatalf("want problems naming %v, got %v: %v", want, got, err)
	}
}

func TestHelpers(t *testing.T) {
	c := &config.Config{Issuer: "https://auth.example.com/tenant/", Secret: " new-secret , old-secret ,", CORSOrigins: " https://a.example/ ,, http://localhost:5173"}
	cases := []struct {
		name      string
		got, want any
	}{
		{"IssuerURL keeps the prefix, not the trailing slash", c.IssuerURL("/oauth2/token"), "https://auth.example.com/tenant/oauth2/token"},
		{"SecureCookies on https", c.SecureCookies(), true},
		{"SecureCookies on http", (&config.Config{Issuer: "http://localhost:8080"}).SecureCookies(), false},
		{"SecureCookies on HTTPS in capitals", (&config.Config{Issuer: "HTTPS://Auth.Example.com"}).SecureCookies(), true},
		{"SystemSecrets splits and trims", len(c.SystemSecrets()), 2},
		{"SystemSecrets current first", string(c.SystemSecrets()[0]), "new-secret"},
		{"AllowedOrigins", c.AllowedOrigins(), []string{"https://a.example", "http://localhost:5173"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Errorf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
}

// Issue 11 item 12: an https issuer written in capitals dropped Secure and
// __Host- from every cookie, because the check compared strings. Load
// normalises the scheme and host once; the path keeps its case.
func TestLoadNormalizesIssuer(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"scheme and host in capitals", "HTTPS://Auth.Example.COM", "https://auth.example.com"},
		{"path keeps its case", "HTTPS://AUTH.example.com/Tenant/", "https://auth.example.com/Tenant/"},
		{"port kept", "Http://LOCALHOST:8080", "http://localhost:8080"},
		{"already normal", "https://auth.example.com", "https://auth.example.com"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, "", []string{"LATCHKEY_ISSUER=" + tc.in})
			if err != nil {
				t.Fatal(err)
			}
			if c.Issuer != tc.want {
				t.Errorf("Issuer = %q, want %q", c.Issuer, tc.want)
			}
			if want := strings.HasPrefix(tc.want, "https://"); c.SecureCookies() != want {
				t.Errorf("SecureCookies = %v, want %v", c.SecureCookies(), want)
			}
		})
	}
}

// A key in the file that is no setting (a typo, a setting of another
// program) is refused, naming each such key, instead of being dropped while
// the default applies in silence.
func TestUnknownFileKeys(t *testing.T) {
	cases := []struct {
		name    string
		yaml    string
		unknown []string
	}{
		{"typo", "acess_token_ttl: 15m\n", []string{"acess_token_ttl"}},
		{"several, with good ones", "issuer: https://auth.example.com\nemail: a@example.com\nlogo_uri: x\n", []string{"email", "logo_uri"}},
		{"nested", "database:\n  url: postgres://db/x\n", []string{"database.url"}},
		{"env name instead of key", "LATCHKEY_ISSUER: https://auth.example.com\n", []string{"LATCHKEY_ISSUER"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.yaml, nil)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, k := range tc.unknown {
				if !strings.Contains(err.Error(), k) {
					t.Errorf("error %q does not name %s", err, k)
				}
			}
		})
	}
	t.Run("known keys only", func(t *testing.T) {
		if _, err := load(t, "issuer: https://auth.example.com\naudit_retention: 720h\nlogin_user_limit: 3\n", nil); err != nil {
			t.Fatal(err)
		}
	})
}

// Values that cannot be read are all reported, not just the first, and the
// configuration still comes back (with defaults in their place) so that
// Validate's problems join them in one message.
func TestUnreadableValuesReportedTogether(t *testing.T) {
	c, err := load(t, "session_ttl: 60\nbogus: 1\n", []string{
		"LATCHKEY_ACCESS_TOKEN_TTL=soon", "LATCHKEY_LOGIN_USER_LIMIT=five", "LATCHKEY_SECRET=short",
	})
	if c == nil {
		t.Fatalf("no configuration: %v", err)
	}
	var got []string
	for _, e := range problems(errors.Join(err, c.Validate())) {
		name, _, _ := strings.Cut(e.Error(), ":")
		if strings.HasPrefix(name, "config file ") {
			name = "config file" // its path is the test's temporary file
		}
		got = append(got, name)
	}
	slices.Sort(got)
	want := []string{"LATCHKEY_ACCESS_TOKEN_TTL", "LATCHKEY_ADMIN_TOKEN", "LATCHKEY_DATABASE_URL", "LATCHKEY_LOGIN_USER_LIMIT",
		"LATCHKEY_SECRET", "LATCHKEY_SESSION_TTL", "config file"}
	if !slices.Equal(got, want) {
		t.Fatalf("want problems naming %v, got %v:\n%v", want, got, errors.Join(err, c.Validate()))
	}
	if c.AccessTokenTTL != 15*time.Minute || c.SessionTTL != 168*time.Hour {
		t.Errorf("an unreadable value must leave the default, got %s and %s", c.AccessTokenTTL, c.SessionTTL)
	}
}

// Each default is declared once, typed: the flags show it in --help, Load
// gives it when nothing is set, and Default holds the same.
func TestDefaultsDeclaredOnce(t *testing.T) {
	fs := flagSet(t)
	for key, def := range config.Defaults() {
		t.Run(key, func(t *testing.T) {
			f := fs.Lookup(strings.ReplaceAll(key, "_", "-"))
			if f == nil {
				t.Fatal("no flag")
			}
			if want := fmt.Sprint(def); f.DefValue != want {
				t.Errorf("--%s shows default %q, want %q", f.Name, f.DefValue, want)
			}
		})
	}
	loaded, err := config.Load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(loaded, config.Default()) {
		t.Errorf("Load with nothing set = %+v, Default = %+v", loaded, config.Default())
	}
}

// New settings of issue 13: the throttle, the pool and audit retention, each
// from the environment, a flag and the file.
func TestOperationalSettings(t *testing.T) {
	c, err := load(t, "audit_retention: 720h\n", []string{"LATCHKEY_LOGIN_USER_LIMIT=3", "LATCHKEY_LOGIN_LOCKOUT=30s"},
		"--database-max-open-conns", "50", "--login-max-lockout", "1h")
	if err != nil {
		t.Fatal(err)
	}
	if c.AuditRetention != 720*time.Hour || c.LoginUserLimit != 3 || c.LoginLockout != 30*time.Second ||
		c.DatabaseMaxOpenConns != 50 || c.LoginMaxLockout != time.Hour || c.LoginIPLimit != 20 {
		t.Fatalf("got %+v", c)
	}
	for name, tc := range map[string]struct {
		mutate func(*config.Config)
		want   string
	}{
		"pool of none":                {func(c *config.Config) { c.DatabaseMaxOpenConns = 0 }, "LATCHKEY_DATABASE_MAX_OPEN_CONNS"},
		"audit kept a minute":         {func(c *config.Config) { c.AuditRetention = time.Minute }, "LATCHKEY_AUDIT_RETENTION"},
		"no failures allowed":         {func(c *config.Config) { c.LoginUserLimit = 0 }, "LATCHKEY_LOGIN_USER_LIMIT"},
		"IP limit of none":            {func(c *config.Config) { c.LoginIPLimit = 0 }, "LATCHKEY_LOGIN_IP_LIMIT"},
		"zero window":                 {func(c *config.Config) { c.LoginFailureWindow = 0 }, "LATCHKEY_LOGIN_FAILURE_WINDOW"},
		"lockout cap under the first": {func(c *config.Config) { c.LoginMaxLockout = time.Second }, "LATCHKEY_LOGIN_MAX_LOCKOUT"},
	} {
		t.Run(name, func(t *testing.T) {
			c := valid(t)
			tc.mutate(c)
			assertNames(t, c.Validate(), tc.want)
		})
	}
}

// Moving the public listener without saying where the issuer now is gets
// a warning: tokens would still name http://localhost:8080.
func TestPublicAddrWithoutIssuerWarns(t *testing.T) {
	cases := []struct {
		name    string
		environ []string
		warns   bool
	}{
		{"neither", nil, false},
		{"public address alone", []string{"LATCHKEY_PUBLIC_ADDR=:9000"}, true},
		{"both", []string{"LATCHKEY_PUBLIC_ADDR=:9000", "LATCHKEY_ISSUER=https://auth.example.com"}, false},
		{"issuer alone", []string{"LATCHKEY_ISSUER=https://auth.example.com"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, "", tc.environ)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(c.Warnings) > 0; got != tc.warns {
				t.Fatalf("warnings %q, want some: %v", c.Warnings, tc.warns)
			}
			if tc.warns && !strings.Contains(c.Warnings[0], "LATCHKEY_ISSUER") {
				t.Errorf("warning %q does not name LATCHKEY_ISSUER", c.Warnings[0])
			}
		})
	}
}

// Traces are off by default and turned on by LATCHKEY_TRACES_ENDPOINT or
// OpenTelemetry's own variables; ours wins, and OTEL_TRACES_EXPORTER=none
// keeps them off.
func TestTracesEndpoint(t *testing.T) {
	for name, tc := range map[string]struct {
		environ []string
		want    string
	}{
		"off by default":      {nil, ""},
		"ours":                {[]string{"LATCHKEY_TRACES_ENDPOINT=http://c:4318"}, "http://c:4318/v1/traces"},
		"ours wins":           {[]string{"LATCHKEY_TRACES_ENDPOINT=http://ours:4318", "OTEL_EXPORTER_OTLP_ENDPOINT=http://theirs:4318"}, "http://ours:4318/v1/traces"},
		"OTLP endpoint":       {[]string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318/"}, "http://c:4318/v1/traces"},
		"traces endpoint":     {[]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=https://c/v1/traces", "OTEL_EXPORTER_OTLP_ENDPOINT=http://x"}, "https://c/v1/traces"},
		"exporter otlp alone": {[]string{"OTEL_TRACES_EXPORTER=otlp"}, "http://localhost:4318/v1/traces"},
		"exporter none":       {[]string{"OTEL_TRACES_EXPORTER=none", "OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318"}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := config.Load(flagSet(t), tc.environ)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.TracesURL(); got != tc.want {
				t.Errorf("TracesURL() = %q, want %q", got, tc.want)
			}
		})
	}
}

// The admin audit log and security events are kept 365 days unless
// LATCHKEY_AUDIT_RETENTION says otherwise (issue 18).
func TestAuditRetentionDefault(t *testing.T) {
	c, err := load(t, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.AuditRetention != 365*24*time.Hour {
		t.Errorf("default audit retention %s, want 8760h", c.AuditRetention)
	}
	c, err = load(t, "", []string{"LATCHKEY_AUDIT_RETENTION=48h"})
	if err != nil || c.AuditRetention != 48*time.Hour {
		t.Errorf("from the environment: %v %v", c.AuditRetention, err)
	}
}
