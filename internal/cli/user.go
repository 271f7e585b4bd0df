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
	"github.com/spf13/pflag"
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
	cmd.AddCommand(e.userCreateCommand(settings))
	cmd.AddCommand(e.userUpdateCommand(settings))
	cmd.AddCommand(e.userFactorsCommand(settings))
	cmd.AddCommand(&cobra.Command{
		Use:   "get USER_ID",
		Short: "Show a user and their profile",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withAdmin(cmd, settings, func(svc *admin.Service) error {
				u, err := svc.GetUser(cmd.Context(), args[0])
				if err != nil {
					return fmt.Errorf("user %q: %w", args[0], err)
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

// userCreateCommand is `user create`: the username from argv, the password
// from stdin, the profile (OpenID Connect standard claims) from flags.
func (e *env) userCreateCommand(settings config.Group) *cobra.Command {
	var p admin.Profile
	cmd := &cobra.Command{
		Use:   "create USERNAME",
		Short: "Create a user; the password is the first line of stdin",
		Example: `  printf '%s\n' "$PASSWORD" | latchkey user create alice --email alice@example.com --email-verified \
      --name "Alice Liddell" --given-name Alice --family-name Liddell --locale en-GB --group admins --group ops`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			password, err := e.readPassword()
			if err != nil {
				return err
			}
			return e.withAdmin(cmd, settings, func(svc *admin.Service) error {
				u, err := svc.CreateUserWithProfile(cmd.Context(), args[0], password, p)
				if err != nil {
					return err
				}
				return e.printJSON(u)
			})
		},
	}
	profileFlags(cmd.Flags(), &p)
	return cmd
}

// profileFlags binds the profile's flags, the same for create and update.
func profileFlags(f *pflag.FlagSet, p *admin.Profile) {
	f.StringVar(&p.Email, "email", "", "email address (the email claim; a changed address is unverified unless --email-verified is given)")
	f.BoolVar(&p.EmailVerified, "email-verified", false, "the email address has been verified")
	f.StringVar(&p.Name, "name", "", "full name")
	f.StringVar(&p.GivenName, "given-name", "", "given (first) name")
	f.StringVar(&p.FamilyName, "family-name", "", "family (last) name")
	f.StringVar(&p.Picture, "picture", "", "URL of a profile picture (https)")
	f.StringVar(&p.Locale, "locale", "", "BCP 47 language tag, e.g. en-US")
	f.StringArrayVar(&p.Groups, "group", nil, "a group the user belongs to (repeat for several; on update, replaces the list)")
}

// userUpdateCommand is `user update`: PATCH /admin/users/{id} from the
// shell. Only the flags given change; an empty value clears a field.
func (e *env) userUpdateCommand(settings config.Group) *cobra.Command {
	var (
		p        admin.Profile
		username string
		noGroups bool
	)
	cmd := &cobra.Command{
		Use:   "update USER_ID",
		Short: "Change a user's username or profile; only the flags given change, an empty value clears",
		Example: `  latchkey user update 4f0c… --email alice@example.org --email-verified --group admins --group ops
  latchkey user update 4f0c… --picture "" --no-groups`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			var patch admin.UserPatch
			str := func(flag string, dst *admin.Field[string], v string) {
				if f.Changed(flag) {
					*dst = admin.Field[string]{Set: true, Value: v}
				}
			}
			str("username", &patch.Username, username)
			str("email", &patch.Email, p.Email)
			str("name", &patch.Name, p.Name)
			str("given-name", &patch.GivenName, p.GivenName)
			str("family-name", &patch.FamilyName, p.FamilyName)
			str("picture", &patch.Picture, p.Picture)
			str("locale", &patch.Locale, p.Locale)
			if f.Changed("email-verified") {
				patch.EmailVerified = admin.Field[bool]{Set: true, Value: p.EmailVerified}
			}
			switch {
			case noGroups && f.Changed("group"):
				return errors.New("--no-groups and --group contradict each other")
			case noGroups:
				patch.Groups = admin.Field[[]string]{Set: true, Value: []string{}}
			case f.Changed("group"):
				patch.Groups = admin.Field[[]string]{Set: true, Value: p.Groups}
			}
			return e.withAdmin(cmd, settings, func(svc *admin.Service) error {
				u, err := svc.UpdateUser(cmd.Context(), args[0], &patch)
				if err != nil {
					return fmt.Errorf("user %q: %w", args[0], err)
				}
				return e.printJSON(u)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&username, "username", "", "a new username")
	profileFlags(f, &p)
	f.BoolVar(&noGroups, "no-groups", false, "remove the user from every group")
	return cmd
}
