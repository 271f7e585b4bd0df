package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/migrations"
	"github.com/spf13/cobra"
)

func (e *env) migrateCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "migrate", Short: "Apply or list the database migrations"}
	config.RegisterFlags(cmd.PersistentFlags(), config.GroupDatabase)
	cmd.AddCommand(&cobra.Command{
		Use:   "up",
		Short: "Apply every pending migration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := e.loadConfig(cmd, config.GroupDatabase)
			if err != nil {
				return err
			}
			st, err := e.openStore(cmd.Context(), cfg, e.logger(cfg.LogLevel))
			if err != nil {
				return err
			}
			defer st.Close()
			applied, err := st.Migrate(cmd.Context())
			if err != nil {
				return err
			}
			if len(applied) == 0 {
				fmt.Fprintln(e.stdout, "schema is up to date")
			}
			for _, m := range applied {
				fmt.Fprintf(e.stdout, "applied %05d %s\n", m.Version, m.Name)
			}
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "List migrations and whether each is applied",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := e.loadConfig(cmd, config.GroupDatabase)
			if err != nil {
				return err
			}
			st, err := e.openStore(cmd.Context(), cfg, e.logger(cfg.LogLevel))
			if err != nil {
				return err
			}
			defer st.Close()
			status, err := st.Status(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tNAME\tSTATE\tAPPLIED AT")
			for _, m := range status {
				state, at := "pending", ""
				if m.Applied {
					state, at = "applied", m.AppliedAt.Format("2006-01-02 15:04:05Z")
				}
				fmt.Fprintf(tw, "%05d\t%s\t%s\t%s\n", m.Version, m.Name, state, at)
			}
			return tw.Flush()
		},
	})
	cmd.AddCommand(e.migrateDownCommand())
	return cmd
}

func (e *env) migrateDownCommand() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Roll back the most recently applied migration (with --yes)",
		Long: `Roll back the most recently applied migration by running its Down section.

Without --yes it only prints the migration, its SQL and the tables and columns
whose data the rollback deletes. Stop every instance of the release that
needs the migration first, and take a backup.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, err := e.loadConfig(cmd, config.GroupDatabase)
			if err != nil {
				return err
			}
			st, err := e.openStore(ctx, cfg, e.logger(cfg.LogLevel))
			if err != nil {
				return err
			}
			defer st.Close()
			last, err := st.LastApplied(ctx)
			if errors.Is(err, store.ErrNothingToRollBack) {
				fmt.Fprintln(e.stdout, "no migration is applied: nothing to roll back")
				return nil
			}
			if err != nil {
				return err
			}
			down, err := migrations.Down(st.Dialect(), last.Version)
			if err != nil {
				return err
			}
			losses := "nothing (no table or column is dropped)"
			if l := migrations.Losses(down); len(l) > 0 {
				losses = "the data in " + strings.Join(l, ", ")
			}
			if !yes {
				fmt.Fprintf(e.stdout, "would roll back %05d %s, running:\n\n%s\n\nthis deletes %s.\nRun `latchkey migrate down --yes` to do it.\n", last.Version, last.Name, down, losses)
				return nil
			}
			done, err := st.MigrateDown(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "rolled back %05d %s; deleted %s\n", done.Version, done.Name, losses)
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "roll back; without it, print what would be done")
	return cmd
}
