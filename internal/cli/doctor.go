package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/doctor"
	"github.com/spf13/cobra"
)

var errDoctorFailed = errors.New("doctor: a check failed")

func (e *env) doctorCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check configuration, database, schema, clock, signing keys and issuer; exit 1 if any check fails",
		Long: `Check, without changing anything, what latchkey serve needs: the configuration
(the validation serve does, and its warnings), that the database answers, that its
schema is neither behind nor ahead of this binary, this machine's clock against the
database's (warns over 2s), that every algorithm has a signing key that
LATCHKEY_SECRET opens and that rotation is not overdue, and that
ISSUER/.well-known/openid-configuration answers with the configured issuer (a
warning only: the public URL may not be reachable from inside).

Each check prints ok, warn, fail or skip, with what to do. The exit code is 0 when
nothing failed, 1 otherwise; --json prints the report as JSON.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, loadErr := config.Load(cmd.Flags(), e.environ)
			if cfg != nil {
				if dev, _ := cmd.Flags().GetBool("dev"); dev {
					if err := e.applyDev(cfg, false); err != nil {
						return err
					}
				}
			}
			report := doctor.Run(cmd.Context(), cfg, loadErr, doctor.Options{})
			if asJSON {
				if err := e.printJSON(report); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
				for _, c := range report.Checks {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Status, c.Name, c.Message)
					if c.Fix != "" {
						fmt.Fprintf(tw, "\t\t→ %s\n", c.Fix)
					}
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if !report.OK {
				return errDoctorFailed
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	config.RegisterFlags(cmd.Flags(), config.GroupAll)
	return cmd
}
