package cli

import (
	"log/slog"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/server"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/spf13/cobra"
)

// keysGroups: the key manager decrypts the keys, so it needs the same
// LATCHKEY_SECRET as the server, and the access token lifetime says how long
// a retired key must still verify.
const keysGroups = config.GroupDatabase | config.GroupSecret | config.GroupKeys | config.GroupLifetimes

// withKeys opens the store and the key manager, which decrypts the keys and
// so needs the same LATCHKEY_SECRET as the server.
func (e *env) withKeys(cmd *cobra.Command, fn func(m *keys.Manager) error) error {
	return e.withStore(cmd, keysGroups, func(cfg *config.Config, st *store.Store, log *slog.Logger) error {
		m, err := keys.New(cmd.Context(), st, cfg.SystemSecrets(), server.KeyOptions(cfg, log))
		if err != nil {
			return err
		}
		return fn(m)
	})
}

func (e *env) keysCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage JWT signing keys (output is JSON)"}
	config.RegisterFlags(cmd.PersistentFlags(), keysGroups)
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List signing keys, chain by chain per algorithm, and their state (pending, active, retired)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.withKeys(cmd, func(m *keys.Manager) error { return e.printJSON(m.List()) })
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "rotate",
		Short: "Publish a new signing key of every algorithm now; each signs after LATCHKEY_KEY_PREPUBLISH_PERIOD",
		Long: `Publish a new signing key of every algorithm (ES256, RS256, EdDSA) now. Running
servers pick them up within seconds and serve them in the JWKS at once; they start
signing after LATCHKEY_KEY_PREPUBLISH_PERIOD, so resource servers' cached key sets
hold them before any token needs them. The previous keys keep verifying their
tokens until they expire. The output is the new key of LATCHKEY_SIGNING_ALG, the
one that will sign access tokens; "keys list" shows all of them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.withKeys(cmd, func(m *keys.Manager) error {
				info, err := m.Rotate(cmd.Context())
				if err != nil {
					return err
				}
				return e.printJSON(info)
			})
		},
	})
	return cmd
}
