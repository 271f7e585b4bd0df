package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/latchkey/latchkey/internal/config"
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
	return cmd
}
