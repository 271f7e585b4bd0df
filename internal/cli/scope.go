package cli

import (
	"fmt"

	"github.com/latchkey/latchkey/internal/admin"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/spf13/cobra"
)

// scopeCommand is the CLI of /admin/scopes: descriptions of custom scopes
// for the consent page.
func (e *env) scopeCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "scope", Short: "Describe custom scopes for the consent page (output is JSON)"}
	settings := adminGroups
	config.RegisterFlags(cmd.PersistentFlags(), settings)
	cmd.AddCommand(&cobra.Command{
		Use:   "set NAME DESCRIPTION",
		Short: "Register or replace a custom scope's description",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withAdmin(cmd, settings, func(svc *admin.Service) error {
				sc, _, err := svc.PutScope(cmd.Context(), args[0], args[1])
				if err != nil {
					return fmt.Errorf("scope %q: %w", args[0], err)
				}
				return e.printJSON(sc)
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "get NAME",
		Short: "Show a custom scope's description",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withAdmin(cmd, settings, func(svc *admin.Service) error {
				sc, err := svc.GetScope(cmd.Context(), args[0])
				if err != nil {
					return fmt.Errorf("scope %q: %w", args[0], err)
				}
				return e.printJSON(sc)
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List custom scopes' descriptions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.withAdmin(cmd, settings, func(svc *admin.Service) error {
				scs, err := svc.ListScopes(cmd.Context())
				if err != nil {
					return err
				}
				return e.printJSON(scs)
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "delete NAME",
		Short: "Forget a custom scope's description (consent then shows its id)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withAdmin(cmd, settings, func(svc *admin.Service) error {
				if err := svc.DeleteScope(cmd.Context(), args[0]); err != nil {
					return fmt.Errorf("scope %q: %w", args[0], err)
				}
				return e.printJSON(map[string]string{"deleted": args[0]})
			})
		},
	})
	return cmd
}
