package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/latchkey/latchkey/internal/admin"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/spf13/cobra"
)

// readPassword takes the first line of stdin. Passwords never come from
// argv, which every user of the machine can read.
func (e *env) readPassword() (string, error) {
	line, err := bufio.NewReader(io.LimitReader(e.stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on stdin: pipe it in, e.g. `printf '%s\\n' \"$PASSWORD\" | latchkey user create alice`")
	}
	return line, nil
}

func (e *env) userCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage users (passwords are read from stdin; output is JSON)"}
	settings := adminGroups
	config.RegisterFlags(cmd.PersistentFlags(), settings)
	cmd.AddCommand(&cobra.Command{
		Use:   "create USERNAME",
		Short: "Create a user; the password is the first line of stdin",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			password, err := e.readPassword()
			if err != nil {
				return err
			}
			return e.withAdmin(cmd, settings, func(svc *admin.Service) error {
				u, err := svc.CreateUser(cmd.Context(), args[0], password)
				if err != nil {
					return err
				}
				return e.printJSON(u)
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.withAdmin(cmd, settings, func(svc *admin.Service) error {
				us, err := svc.ListUsers(cmd.Context())
				if err != nil {
					return err
				}
				return e.printJSON(us)
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "delete USER_ID",
		Short: "Delete a user and revoke everything they hold",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withAdmin(cmd, settings, func(svc *admin.Service) error {
				if err := svc.DeleteUser(cmd.Context(), args[0]); err != nil {
					return fmt.Errorf("user %q: %w", args[0], err)
				}
				return e.printJSON(map[string]string{"deleted": args[0]})
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "set-password USER_ID",
		Short: "Set a user's password (first line of stdin); signs them out everywhere",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			password, err := e.readPassword()
			if err != nil {
				return err
			}
			return e.withAdmin(cmd, settings, func(svc *admin.Service) error {
				if err := svc.SetPassword(cmd.Context(), args[0], password); err != nil {
					return fmt.Errorf("user %q: %w", args[0], err)
				}
				return e.printJSON(map[string]string{"updated": args[0]})
			})
		},
	})
	return cmd
}
