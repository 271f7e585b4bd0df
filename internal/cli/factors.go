package cli

import (
	"fmt"

	"github.com/latchkey/latchkey/internal/admin"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/spf13/cobra"
)

// userFactorsCommand is `latchkey user factors list|reset`, the admin
// API's /admin/users/{id}/factors from the shell.
func (e *env) userFactorsCommand(settings config.Group) *cobra.Command {
	cmd := &cobra.Command{Use: "factors", Short: "List or reset a user's second factors"}
	cmd.AddCommand(&cobra.Command{
		Use:   "list USER_ID",
		Short: "List a user's second factors (kinds, created, last used; never secrets)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withAdmin(cmd, settings, func(svc *admin.Service) error {
				fs, err := svc.ListFactors(cmd.Context(), args[0])
				if err != nil {
					return fmt.Errorf("user %q: %w", args[0], err)
				}
				return e.printJSON(fs)
			})
		},
	})
	var factor string
	reset := &cobra.Command{
		Use:   "reset USER_ID",
		Short: "Remove every second factor and recovery code of a user, or one factor with --factor",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withAdmin(cmd, settings, func(svc *admin.Service) error {
				if err := svc.ResetFactors(cmd.Context(), args[0], factor); err != nil {
					return fmt.Errorf("user %q: %w", args[0], err)
				}
				return e.printJSON(map[string]string{"reset": args[0], "factor": factor})
			})
		},
	}
	reset.Flags().StringVar(&factor, "factor", "", "remove only this factor (an id from `factors list`)")
	cmd.AddCommand(reset)
	return cmd
}
