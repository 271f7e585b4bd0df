package cli

import (
	"log/slog"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/janitor"
	"github.com/latchkey/latchkey/internal/server"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/spf13/cobra"
)

func (e *env) janitorCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "janitor",
		Short: "Delete expired tokens, codes, sessions and deny-list entries once (for cron)",
		Long: `Delete expired rows in small batches, then exit. Running servers already do this
every five minutes; exactly one instance at a time holds the janitor lease, and
so does this command (it waits for nobody: if another holder is busy it exits).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.withStore(cmd, janitorGroups,
				func(cfg *config.Config, st *store.Store, log *slog.Logger) error {
					n, held, err := janitor.New(st, server.Retention(cfg), log).Pass(cmd.Context())
					if err != nil {
						return err
					}
					return e.printJSON(map[string]any{"deleted": n, "ran": held})
				})
		},
	}
	config.RegisterFlags(cmd.Flags(), janitorGroups)
	return cmd
}

// janitorGroups are the settings server.Retention reads.
const janitorGroups = config.GroupDatabase | config.GroupLifetimes | config.GroupSessions | config.GroupRetention | config.GroupLogin
