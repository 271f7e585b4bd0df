// Package cli is the latchkey command line, built on cobra. Main is what
// cmd/latchkey calls and what tests call with their own arguments,
// environment and streams.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/requestid"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/spf13/cobra"
)

// Set with -ldflags "-X github.com/latchkey/latchkey/internal/cli.version=…".
var (
	version = "dev"
	commit  = ""
)

// env is what one invocation sees of the outside world.
type env struct {
	environ []string
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	// devDir is where `--dev` keeps its generated secrets file.
	devDir string
}

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args, environ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{environ: environ, stdin: stdin, stdout: stdout, stderr: stderr, devDir: "."}
	root := e.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "latchkey:", err)
		return 1
	}
	return 0
}

func (e *env) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "latchkey",
		Short:         "Latchkey, an OAuth 2.0 authorization server",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// Every command reads --config and --log-level; each command adds the
	// flags of the settings it uses (serve: all of them).
	config.RegisterCommonFlags(root.PersistentFlags())
	root.PersistentFlags().Bool("dev", false, "zero-setup mode: SQLite at "+config.DevDatabaseURL+" and generated secrets kept in "+devFileName)
	root.AddCommand(e.serveCommand(), e.migrateCommand(), e.clientCommand(), e.userCommand(), e.scopeCommand(), e.keysCommand(), e.janitorCommand(),
		e.adminTokenCommand(), e.auditCommand(), e.healthCommand(), e.doctorCommand(), e.versionCommand())
	return root
}

// loadConfig reads the configuration and, with --dev, fills what dev mode
// generates. It validates only the groups of settings the command uses, and
// reports what could not be read (a bad duration, an unknown key in the
// file) together with what is invalid.
func (e *env) loadConfig(cmd *cobra.Command, groups config.Group) (*config.Config, error) {
	cfg, unreadable := config.Load(cmd.Flags(), e.environ)
	if cfg == nil {
		return nil, unreadable
	}
	if dev, _ := cmd.Flags().GetBool("dev"); dev {
		// serve and migrate make the dev database; every other command
		// needs the one serve --dev made here.
		creates := cmd.Name() == "serve" || strings.Contains(cmd.CommandPath(), " migrate")
		if err := e.applyDev(cfg, creates); err != nil {
			return nil, err
		}
	}
	if err := errors.Join(unreadable, cfg.ValidateGroups(groups)); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

func (e *env) logger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	// The store logs with the request's context too: its lines carry the
	// request_id as well.
	return requestid.Logger(slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: l})))
}

func (e *env) openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (*store.Store, error) {
	dialect, source, err := config.ParseDatabaseURL(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("%sDATABASE_URL %w", config.EnvPrefix, err)
	}
	return store.Open(ctx, dialect, source, storeOptions(cfg, log))
}

// storeOptions are the store settings of the configuration.
func storeOptions(cfg *config.Config, log *slog.Logger) store.Options {
	return store.Options{Logger: log, MaxOpenConns: cfg.DatabaseMaxOpenConns, ListenURL: cfg.DatabaseListenURL, Traced: cfg.TracesURL() != ""}
}

func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (e *env) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(e.stdout, "latchkey %s\ncommit %s\n%s %s/%s\n", version, buildCommit(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}

// buildCommit is the commit set with -ldflags, else the one the Go
// toolchain stamped, else "unknown"; latchkey version and
// latchkey_build_info say the same.
func buildCommit() string {
	if commit != "" {
		return commit
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}
