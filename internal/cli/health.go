package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/spf13/cobra"
)

// healthTimeout is longer than /readyz's own 2 s database ping, so that a
// slow database is reported as the server says it, not as a timeout here.
const healthTimeout = 3 * time.Second

// healthCommand is the container health check: a distroless image has no
// shell, curl or wget, so the binary asks its own listener.
func (e *env) healthCommand() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Exit 0 when the local server's /readyz answers ready",
		Long: `Ask the public listener's GET /readyz whether this server is ready (its
database answers). Exit 0 when it is; otherwise exit 1 with a one-line reason.

The address is --public-addr, else LATCHKEY_PUBLIC_ADDR (or public_addr in
--config), else :8080; a listener on every interface is asked on loopback.
Meant as a container health check: it needs no shell or curl in the image.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, unreadable := config.Load(cmd.Flags(), e.environ)
			if cfg == nil {
				return unreadable
			}
			target, err := readyzURL(cfg.PublicAddr)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			if err := checkReady(ctx, target); err != nil {
				return err
			}
			_, err = fmt.Fprintf(e.stdout, "ready: %s\n", target)
			return err
		},
	}
	// The same flag name as serve's, so that Load reads it as public_addr.
	cmd.Flags().String("public-addr", "", "the listener to ask, HOST:PORT (LATCHKEY_PUBLIC_ADDR)")
	cmd.Flags().DurationVar(&timeout, "timeout", healthTimeout, "give up after this long")
	return cmd
}

// readyzURL is where a listener on addr answers from this host: an empty or
// unspecified host (":8080", "0.0.0.0:8080", "[::]:8080") listens on
// loopback too, and loopback is what a health check inside the container
// can always reach.
func readyzURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%sPUBLIC_ADDR %q is not HOST:PORT: %w", config.EnvPrefix, addr, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return (&url.URL{Scheme: "http", Host: net.JoinHostPort(host, port), Path: "/readyz"}).String(), nil
}

// checkReady answers nil when target says 200, or the reason in one line.
func checkReady(ctx context.Context, target string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	client := &http.Client{
		// A redirect would mean something else answers on that port.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("not ready: %s did not answer within the timeout", target)
		}
		return fmt.Errorf("not ready: %s: %w", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	reason := strings.TrimSpace(string(body))
	var status struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(body, &status) == nil && status.Status != "" {
		reason = status.Status
	}
	// One line, whatever the other end sent.
	reason = strings.Join(strings.Fields(reason), " ")
	if len(reason) > 200 {
		reason = reason[:200] + "…"
	}
	if reason == "" {
		return fmt.Errorf("not ready: %s answered %s", target, resp.Status)
	}
	return fmt.Errorf("not ready: %s answered %s: %s", target, resp.Status, reason)
}
