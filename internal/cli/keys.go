package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/latchkey/latchkey/internal/admin"
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
// so needs the same LATCHKEY_SECRET as the server. audit records a change
// made with m in the audit log.
func (e *env) withKeys(cmd *cobra.Command, fn func(m *keys.Manager, audit keyAudit) error) error {
	return e.withStore(cmd, keysGroups, func(cfg *config.Config, st *store.Store, log *slog.Logger) error {
		m, err := keys.New(cmd.Context(), st, cfg.SystemSecrets(), server.KeyOptions(cfg, log))
		if err != nil {
			return err
		}
		e.asActor(cmd)
		svc := admin.NewService(st, nil, admin.Policy{})
		return fn(m, func(action, kid string, after any) {
			// The change is made (admin.Service.RecordKeyChange says why
			// the entry follows it); say so rather than fail.
			if err := svc.RecordKeyChange(cmd.Context(), action, kid, nil, after); err != nil {
				fmt.Fprintf(e.stderr, "latchkey: the key change is made, but its audit entry was not written: %v\n", err)
			}
		})
	})
}

// keyAudit records a signing key change.
type keyAudit func(action, kid string, after any)

func (e *env) keysCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage JWT signing keys (output is JSON)"}
	config.RegisterFlags(cmd.PersistentFlags(), keysGroups)
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List signing keys, chain by chain per algorithm, and their state (pending, active, retired)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.withKeys(cmd, func(m *keys.Manager, _ keyAudit) error { return e.printJSON(m.List()) })
		},
	})
	var rotateNow bool
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Publish a new signing key of every algorithm now; each signs after LATCHKEY_KEY_PREPUBLISH_PERIOD",
		Long: `Publish a new signing key of every algorithm (ES256, RS256, EdDSA) now. Running
servers pick them up within seconds and serve them in the JWKS at once; they start
signing after LATCHKEY_KEY_PREPUBLISH_PERIOD, so resource servers' cached key sets
hold them before any token needs them. The previous keys keep verifying their
tokens until they expire. The output is the new key of LATCHKEY_SIGNING_ALG, the
one that will sign access tokens; "keys list" shows all of them.

With --now (an emergency) the new keys sign at once on every instance, without
pre-publication; the previous keys stay published, verify-only, until the tokens
they signed expire. A verifier holding a cached JWKS sees an unknown kid until it
fetches the set again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.withKeys(cmd, func(m *keys.Manager, audit keyAudit) error {
				rotate := m.Rotate
				if rotateNow {
					rotate = m.RotateNow
				}
				info, err := rotate(cmd.Context())
				if err != nil {
					return err
				}
				audit(admin.ActionKeyRotate, info.KID, info)
				return e.printJSON(info)
			})
		},
	}
	rotate.Flags().BoolVar(&rotateNow, "now", false, "emergency: the new keys sign at once, without pre-publication")
	cmd.AddCommand(rotate, e.keysRevokeCommand(), e.keysImportCommand())
	return cmd
}

func (e *env) keysRevokeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "revoke [--] KID",
		Short: "Remove a compromised signing key at once: unpublished, and the tokens it signed stop verifying",
		Long: `Remove a compromised signing key. It leaves the JWKS and every JWT it signed stops
verifying (introspection answers inactive, userinfo 401) on every instance: at once
on PostgreSQL, within seconds on SQLite. When it was the signing key of its
algorithm a new key signs from now on. Refresh tokens and opaque access tokens
are not signed with it and keep working; clients refresh to get tokens signed by
another key. ID tokens it signed no longer verify against the JWKS.

A kid is a base64url thumbprint and one in 64 starts with "-"; put "--" before
it so that it is not read as a flag: latchkey keys revoke -- KID.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withKeys(cmd, func(m *keys.Manager, audit keyAudit) error {
				rev, err := m.Revoke(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				audit(admin.ActionKeyRevoke, rev.Revoked.KID, rev)
				return e.printJSON(rev)
			})
		},
	}
	// The person revoking a key is in an emergency and pasted the kid from
	// keys list; "unknown shorthand flag" would not tell them what to do.
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		if kid := dashedKID(err); kid != "" {
			return fmt.Errorf("%w: a kid that starts with \"-\" goes after \"--\": latchkey keys revoke -- %s", err, kid)
		}
		return err
	})
	return cmd
}

func (e *env) keysImportCommand() *cobra.Command {
	var opts keys.ImportOptions
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Import a private signing key (PEM or JWK; - reads stdin)",
		Long: `Import a private signing key an operator brings, for example an HSM export: a PEM
block (PKCS #8 "PRIVATE KEY", PKCS #1 "RSA PRIVATE KEY", SEC 1 "EC PRIVATE KEY") or
a JWK. RS256 needs RSA of at least 2048 bits, ES256 a P-256 key, EdDSA an Ed25519
key; the algorithm is inferred unless --alg names it. The key is sealed under
LATCHKEY_SECRET like a generated one and named by --kid or its RFC 7638
thumbprint. It is published now and signs after LATCHKEY_KEY_PREPUBLISH_PERIOD,
or at once with --now. The private key is never printed or logged.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var (
				material []byte
				err      error
			)
			if args[0] == "-" {
				material, err = io.ReadAll(cmd.InOrStdin())
			} else {
				material, err = os.ReadFile(args[0])
			}
			if err != nil {
				return fmt.Errorf("read the key: %w", err)
			}
			return e.withKeys(cmd, func(m *keys.Manager, audit keyAudit) error {
				info, err := m.Import(cmd.Context(), material, opts)
				if err != nil {
					return err
				}
				audit(admin.ActionKeyImport, info.KID, info)
				return e.printJSON(info)
			})
		},
	}
	cmd.Flags().StringVar(&opts.Alg, "alg", "", "the key's algorithm: ES256, RS256 or EdDSA (default: inferred from the key)")
	cmd.Flags().StringVar(&opts.KID, "kid", "", "the key's kid (default: its RFC 7638 thumbprint)")
	cmd.Flags().BoolVar(&opts.Now, "now", false, "sign with it at once instead of after the pre-publication period")
	return cmd
}

// dashedKID is the kid pflag took for a cluster of shorthand flags, as in
// "unknown shorthand flag: 'B' in -BCQT…", or "" for any other flag error.
func dashedKID(err error) string {
	_, token, ok := strings.Cut(err.Error(), "unknown shorthand flag: ")
	if !ok {
		return ""
	}
	_, token, ok = strings.Cut(token, " in ")
	if !ok || len(token) < 2 {
		return ""
	}
	return token
}
