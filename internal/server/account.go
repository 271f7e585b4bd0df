package server

import (
	"fmt"

	"github.com/latchkey/latchkey/internal/admin"
	"github.com/latchkey/latchkey/internal/backchannel"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/mail"
	"github.com/latchkey/latchkey/internal/oauth"
	"github.com/latchkey/latchkey/internal/store"
)

var _ login.AccountStore = (*store.Store)(nil)

// WithAccount lets f adjust the account pages' configuration (a mailer
// that counts, a cheaper password hash, a way to wait for the background
// mail work) before they are built.
func WithAccount(f func(*login.AccountConfig)) Option {
	return func(o *options) { o.account = append(o.account, f) }
}

// newAccount builds /account and, when LATCHKEY_SMTP_URL is set, the
// password reset and e-mail verification pages.
func newAccount(cfg *config.Config, st *store.Store, pages *login.Handler, bc *backchannel.Deliverer, tune []func(*login.AccountConfig)) (*login.Account, error) {
	ac := login.AccountConfig{
		Issuer:          cfg.Issuer,
		LinkTTL:         cfg.EmailLinkTTL,
		CheckPassword:   admin.CheckPassword,
		Backchannel:     bc,
		BackchannelWait: oauth.DefaultLogoutWait,
	}
	if mc, ok := cfg.Mail(); ok {
		sender, err := mail.New(mc)
		if err != nil {
			return nil, fmt.Errorf("LATCHKEY_SMTP_FROM: %w", err)
		}
		ac.Mailer = sender
	}
	for _, f := range tune {
		f(&ac)
	}
	return login.NewAccount(pages, st, ac)
}
