package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/server"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/tracing"
	"github.com/spf13/cobra"
)

func (e *env) serveCommand() *cobra.Command {
	var migrate bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the public and admin listeners",
		Long: `Run the public (OAuth 2.0) and admin listeners until SIGINT or SIGTERM.

serve refuses to start on a database schema that is behind this binary,
unless --migrate (or --dev) is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, err := e.loadConfig(cmd, config.GroupAll)
			if err != nil {
				return err
			}
			log := e.logger(cfg.LogLevel)
			for _, w := range cfg.Warnings {
				log.Warn("configuration: " + w)
			}
			st, err := e.openStore(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer st.Close()
			if migrate || cfg.Dev {
				applied, err := st.Migrate(ctx)
				if err != nil {
					return err
				}
				for _, m := range applied {
					log.Info("migration applied", "version", m.Version, "name", m.Name)
				}
			} else if err := requireMigrated(cmd, st); err != nil {
				return err
			}
			if cfg.Dev {
				if err := e.seedDev(ctx, cfg, st); err != nil {
					return err
				}
			}
			opts := []server.Option{server.WithBuildInfo(version, buildCommit())}
			if url := cfg.TracesURL(); url != "" {
				tp, shutdown, err := tracing.New(ctx, url, version)
				if err != nil {
					return err
				}
				// The last spans are sent before the process ends.
				defer func() {
					flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
					defer cancel()
					if err := shutdown(flushCtx); err != nil {
						log.Warn("sending the last traces failed", "error", err)
					}
				}()
				opts = append(opts, server.WithTracerProvider(tp))
				log.Info("traces on", "endpoint", url)
			}
			srv, err := server.New(ctx, cfg, st, log, opts...)
			if err != nil {
				return err
			}
			return srv.Run(ctx, nil)
		},
	}
	cmd.Flags().BoolVar(&migrate, "migrate", false, "apply pending migrations before serving")
	config.RegisterFlags(cmd.Flags(), config.GroupAll)
	return cmd
}

var errSchemaBehind = errors.New("the database schema is behind this binary")

func requireMigrated(cmd *cobra.Command, st *store.Store) error {
	pending, err := st.Pending(cmd.Context())
	if err != nil {
		return err
	}
	if pending {
		return fmt.Errorf("%w: run `latchkey migrate up`, or start with `latchkey serve --migrate`", errSchemaBehind)
	}
	return nil
}
