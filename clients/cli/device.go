package cli

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/oauth2"
)

// deviceLogin is the device authorization grant (RFC 8628) through
// x/oauth2: ask for a device code, show the person where to approve it
// (on any device with a browser), then poll the token endpoint at the
// server's interval, slowing down when told to (§3.5).
func (a *App) deviceLogin(ctx context.Context, m *metadata, conf *oauth2.Config) (*oauth2.Token, error) {
	if m.DeviceAuthorizationEndpoint == "" {
		return nil, fmt.Errorf("%s offers no device_authorization_endpoint: sign in without --device", m.Issuer)
	}
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		return nil, deviceError("ask for a device code", m.Issuer, err)
	}
	w := a.stderr()
	fmt.Fprintf(w, "To sign in, open\n\n  %s\n\nand enter the code\n\n  %s\n\n", da.VerificationURI, da.UserCode)
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(w, "or open this URL, which carries the code:\n\n  %s\n\n", da.VerificationURIComplete)
	}
	fmt.Fprintln(w, "Waiting for the approval…")
	tok, err := conf.DeviceAccessToken(ctx, da)
	if err != nil {
		return nil, deviceError("wait for the approval", m.Issuer, err)
	}
	return tok, nil
}

func deviceError(what, issuer string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		switch re.ErrorCode {
		case "access_denied":
			return errors.New("the sign-in was denied on the verification page")
		case "expired_token":
			return errors.New("the code expired before it was approved: run lkcli login --device again")
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: the code expired or the wait timed out: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, unreachable(issuer, err))
}
