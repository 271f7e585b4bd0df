package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/actor"
	"github.com/latchkey/latchkey/internal/admin"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/spf13/cobra"
)

// cliActor is who the audit log says made a change from the shell:
// cli:$USER (cli:unknown when the environment does not say).
func (e *env) cliActor() string {
	for _, key := range []string{"USER", "LOGNAME"} {
		if v := lookupEnv(e.environ, key); v != "" {
			return "cli:" + v
		}
	}
	return "cli:unknown"
}

// lookupEnv is the last value of key in environ, as os.Getenv would see it.
func lookupEnv(environ []string, key string) string {
	for i := len(environ) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(environ[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// asActor puts the CLI's actor in the command's context, for the audit
// entries the admin service writes.
func (e *env) asActor(cmd *cobra.Command) {
	cmd.SetContext(actor.NewContext(cmd.Context(), e.cliActor()))
}

func (e *env) adminTokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin-token",
		Short: "Manage named admin API tokens (output is JSON; a token is printed once)",
		Long: `Named admin tokens work like LATCHKEY_ADMIN_TOKEN on the admin API, and each
request made with one is recorded in the audit log under its name. The server
generates them (256 bits) and keeps only their SHA-256; create and rotate print a
token this once. Revoking or rotating takes effect on the next request, on every
instance, without a restart.`,
	}
	settings := adminGroups
	config.RegisterFlags(cmd.PersistentFlags(), settings)
	var expiresIn time.Duration
	create := &cobra.Command{
		Use:     "create NAME",
		Short:   "Create a named admin token and print it (this once)",
		Example: `  latchkey admin-token create ci-deploy --expires-in 2160h`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withAdmin(cmd, settings, func(svc *admin.Service) error {
				t, err := svc.CreateAdminToken(cmd.Context(), args[0], expiresIn)
				if err != nil {
					return err
				}
				return e.printJSON(t)
			})
		},
	}
	create.Flags().DurationVar(&expiresIn, "expires-in", 0, "lifetime of the token (default: until revoked)")
	var rotateExpiresIn time.Duration
	rotate := &cobra.Command{
		Use:   "rotate NAME",
		Short: "Give a named admin token a new value and print it (this once); the old value stops working",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withAdmin(cmd, settings, func(svc *admin.Service) error {
				t, err := svc.RotateAdminToken(cmd.Context(), args[0], rotateExpiresIn)
				if err != nil {
					return fmt.Errorf("admin token %q: %w", args[0], err)
				}
				return e.printJSON(t)
			})
		},
	}
	rotate.Flags().DurationVar(&rotateExpiresIn, "expires-in", 0, "lifetime of the new value (default: the lifetime the token had, or none)")
	cmd.AddCommand(create, rotate)
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List named admin tokens (names and dates, never the tokens)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.withAdmin(cmd, settings, func(svc *admin.Service) error {
				ts, err := svc.ListAdminTokens(cmd.Context())
				if err != nil {
					return err
				}
				return e.printJSON(ts)
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a named admin token; its next request is refused",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withAdmin(cmd, settings, func(svc *admin.Service) error {
				if err := svc.RevokeAdminToken(cmd.Context(), args[0]); err != nil {
					return fmt.Errorf("admin token %q: %w", args[0], err)
				}
				return e.printJSON(map[string]string{"revoked": args[0]})
			})
		},
	})
	return cmd
}

func (e *env) auditCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read the audit log of admin changes (output is JSON)"}
	settings := adminGroups
	config.RegisterFlags(cmd.PersistentFlags(), settings)
	var (
		q     admin.AuditQuery
		since string
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List audit entries, newest first; next_cursor pages on",
		Example: `  latchkey audit list --since 24h --actor ci-deploy
  latchkey audit list --target client:my-app --limit 20 --cursor 1234`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.withAdmin(cmd, settings, func(svc *admin.Service) error {
				var err error
				if q.Since, err = admin.ParseSince(since, time.Now()); err != nil {
					return err
				}
				page, err := svc.ListAudit(cmd.Context(), q)
				if err != nil {
					return err
				}
				return e.printJSON(page)
			})
		},
	}
	list.Flags().StringVar(&since, "since", "", "only entries at or after an RFC 3339 time, or a duration ago (24h)")
	list.Flags().StringVar(&q.Actor, "actor", "", "only entries of this actor (a token name, bootstrap, cli:USER)")
	list.Flags().StringVar(&q.Target, "target", "", "only entries about TYPE or TYPE:ID (client, user, key, scope, admin_token)")
	list.Flags().IntVar(&q.Limit, "limit", admin.DefaultAuditLimit, fmt.Sprintf("entries per page (1 to %d)", admin.MaxAuditLimit))
	list.Flags().StringVar(&q.Cursor, "cursor", "", "the next_cursor of the previous page")
	cmd.AddCommand(list)
	return cmd
}
