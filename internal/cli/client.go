package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/latchkey/latchkey/internal/admin"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/spf13/cobra"
)

// adminGroups are what the admin service needs: the database, and the access
// token lifetime for how long revocations are remembered. Commands that make
// a secret add GroupSecret.
const adminGroups = config.GroupDatabase | config.GroupLifetimes

// withAdmin opens the store and runs fn with the admin service, the same one
// the admin API uses.
func (e *env) withAdmin(cmd *cobra.Command, groups config.Group, fn func(svc *admin.Service) error) error {
	return e.withStore(cmd, groups, func(cfg *config.Config, st *store.Store, _ *slog.Logger) error {
		// Only commands that make secrets need (and have validated) the
		// system secret; list, get and delete must not trip over a bad one.
		var hasher *secrets.ClientSecretHasher
		if groups&config.GroupSecret != 0 {
			var err error
			if hasher, err = secrets.NewClientSecretHasher(cfg.SystemSecrets()); err != nil {
				return err
			}
		}
		svc := admin.NewService(st, hasher, admin.Policy{RevokeFor: cfg.RevocationWindow()})
		e.asActor(cmd)
		return fn(svc)
	})
}

// withStore loads the settings a command needs, opens the database, checks
// that its schema is current, and runs fn.
func (e *env) withStore(cmd *cobra.Command, groups config.Group, fn func(cfg *config.Config, st *store.Store, log *slog.Logger) error) error {
	cfg, err := e.loadConfig(cmd, groups)
	if err != nil {
		return err
	}
	log := e.logger(cfg.LogLevel)
	st, err := e.openStore(cmd.Context(), cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := requireMigrated(cmd, st); err != nil {
		return err
	}
	return fn(cfg, st, log)
}

func (e *env) clientCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "client", Short: "Manage OAuth 2.0 clients (output is JSON)"}
	config.RegisterFlags(cmd.PersistentFlags(), adminGroups)

	var (
		md       admin.ClientMetadata
		fromJSON string
	)
	create := &cobra.Command{
		Use:   "create",
		Short: "Register a client; a confidential client's secret is printed this once",
		Example: `  latchkey client create --name billing --grant-type client_credentials --scope "invoices:read"
  latchkey client create --name spa --auth-method none --grant-type authorization_code \
      --grant-type refresh_token --redirect-uri https://app.example.com/callback --scope "openid offline_access"
  latchkey client create --name portal --grant-type authorization_code --redirect-uri https://portal.example.com/cb \
      --id-token-alg ES256 --backchannel-logout-uri https://portal.example.com/bcl --post-logout-redirect-uri https://portal.example.com/
  latchkey client create --from-json client.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if fromJSON != "" {
				var err error
				if md, err = e.readMetadata(fromJSON); err != nil {
					return err
				}
			}
			return e.withAdmin(cmd, adminGroups|config.GroupSecret, func(svc *admin.Service) error {
				out, err := svc.CreateClient(cmd.Context(), &md)
				if err != nil {
					return err
				}
				return e.printJSON(out)
			})
		},
	}
	f := create.Flags()
	f.StringVar(&md.ClientID, "id", "", "client_id (generated when empty)")
	f.StringVar(&md.ClientName, "name", "", "client_name")
	f.StringArrayVar(&md.GrantTypes, "grant-type", nil, "grant type, repeatable: authorization_code, client_credentials, password, refresh_token, urn:ietf:params:oauth:grant-type:token-exchange, urn:ietf:params:oauth:grant-type:device_code")
	f.StringArrayVar(&md.RedirectURIs, "redirect-uri", nil, "redirect URI, repeatable")
	f.StringVar(&md.Scope, "scope", "", "space-separated scopes the client may request")
	f.StringArrayVar(&md.Audience, "audience", nil, "audience the client may request, repeatable")
	f.StringVar(&md.TokenEndpointAuthMethod, "auth-method", "", "client_secret_basic (default), client_secret_post, private_key_jwt or none")
	f.BoolVar(&md.Trusted, "trusted", false, "first-party client: skips consent; may use the password grant when confidential")
	f.StringVar(&md.ApplicationType, "application-type", "", "web or native (default: native when every redirect URI is a loopback IP or a private-use scheme)")
	f.StringArrayVar(&md.PostLogoutRedirectURIs, "post-logout-redirect-uri", nil, "where logout may send the browser back to, repeatable")
	f.StringVar(&md.IDTokenSignedResponseAlg, "id-token-alg", "", "id_token_signed_response_alg: RS256 (default), ES256 or EdDSA")
	f.StringVar(&md.BackchannelLogoutURI, "backchannel-logout-uri", "", "https URL (http on loopback only) that receives OpenID Connect back-channel logout tokens")
	f.BoolVar(&md.BackchannelLogoutSessionRequired, "backchannel-logout-session-required", false, "logout tokens must carry sid (needs --backchannel-logout-uri)")
	f.BoolVar(&md.RequirePushedAuthorizationRequests, "require-par", false, "refuse authorization requests not pushed to /oauth2/par first (RFC 9126 require_pushed_authorization_requests)")
	f.BoolVar(&md.RequireMFA, "require-mfa", false, "require a sign-in with a second factor (require_mfa): sessions without one are asked for it")
	f.BoolVar(&md.DPoPBoundAccessTokens, "dpop-bound-access-tokens", false, "refuse this client any token without a DPoP proof (RFC 9449)")
	f.StringVar(&fromJSON, "from-json", "", "read RFC 7591 metadata from this file (- for stdin) instead of flags")
	cmd.AddCommand(create)

	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List clients",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.withAdmin(cmd, adminGroups, func(svc *admin.Service) error {
				out, err := svc.ListClients(cmd.Context())
				if err != nil {
					return err
				}
				return e.printJSON(out)
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "get CLIENT_ID",
		Short: "Show one client",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withAdmin(cmd, adminGroups, func(svc *admin.Service) error {
				out, err := svc.GetClient(cmd.Context(), args[0])
				if err != nil {
					return fmt.Errorf("client %q: %w", args[0], err)
				}
				return e.printJSON(out)
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "delete CLIENT_ID",
		Short: "Delete a client and every token issued to it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withAdmin(cmd, adminGroups, func(svc *admin.Service) error {
				if err := svc.DeleteClient(cmd.Context(), args[0]); err != nil {
					return fmt.Errorf("client %q: %w", args[0], err)
				}
				return e.printJSON(map[string]string{"deleted": args[0]})
			})
		},
	})
	return cmd
}

func (e *env) readMetadata(path string) (admin.ClientMetadata, error) {
	var md admin.ClientMetadata
	var r io.Reader = e.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return md, err
		}
		defer f.Close()
		r = f
	}
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	// As on the admin API: a misspelt field must not vanish in silence.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&md); err != nil {
		return md, fmt.Errorf("read client metadata from %s: %w", path, err)
	}
	return md, nil
}
