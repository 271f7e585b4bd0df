package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// logout revokes the session's refresh token (RFC 7009), which ends its
// whole grant at Latchkey, then forgets the session. The tokens stay in
// the file when the revocation fails, so that running logout again can
// still revoke them: deleting them first would leave a live refresh token
// nobody can revoke from here.
func (a *App) logout(ctx context.Context, t target) error {
	st := a.store()
	unlock, err := st.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	sess, err := st.Get(t.issuer, t.clientID)
	if errors.Is(err, ErrNotLoggedIn) {
		return fmt.Errorf("%w to %s as %s: nothing to log out of", ErrNotLoggedIn, t.issuer, t.clientID)
	}
	if err != nil {
		return err
	}
	m, err := a.discover(ctx, t.issuer)
	if err != nil {
		return fmt.Errorf("%w; the tokens are kept, run lkcli logout again", err)
	}
	if m.RevocationEndpoint == "" {
		return fmt.Errorf("%s offers no revocation_endpoint; the tokens are kept", t.issuer)
	}
	token, hint := sess.RefreshToken, "refresh_token"
	if token == "" {
		token, hint = sess.AccessToken, "access_token"
	}
	if err := a.revoke(ctx, m.RevocationEndpoint, t, token, hint); err != nil {
		return fmt.Errorf("%w; the tokens are kept, run lkcli logout again", err)
	}
	if err := st.Delete(t.issuer, t.clientID); err != nil {
		return err
	}
	fmt.Fprintf(a.stderr(), "Logged out of %s.\n", t.issuer)
	return nil
}

// revoke is RFC 7009 §2.1 for a public client: client_id in the body.
// x/oauth2 has no revocation call.
func (a *App) revoke(ctx context.Context, endpoint string, t target, token, hint string) error {
	form := url.Values{"token": {token}, "token_type_hint": {hint}, "client_id": {t.clientID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := a.httpClient().Do(req)
	if err != nil {
		return unreachable(t.issuer, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	// §2.2: 200 also for a token that was already invalid, so a second
	// logout after a lost answer succeeds.
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revocation refused: %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}
