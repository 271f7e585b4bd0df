// Package mail sends the few messages Latchkey sends (password reset and
// address verification links) through an SMTP relay, with net/smtp.
package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"net/url"
	"strings"
	"time"
)

// Config is where and how to send: LATCHKEY_SMTP_URL, parsed by ParseURL,
// and LATCHKEY_SMTP_FROM.
type Config struct {
	// Host and Port of the relay.
	Host, Port string
	// ImplicitTLS is smtps:// (TLS from the first byte, usually port 465);
	// smtp:// upgrades with STARTTLS whenever the relay offers it.
	ImplicitTLS bool
	// Username and Password, when set, authenticate with PLAIN, which
	// net/smtp sends only over TLS (or to localhost).
	Username, Password string
	// From is the sender address.
	From string
	// TLS is the TLS configuration for both kinds; nil verifies the
	// relay's certificate against the system roots for Host.
	TLS *tls.Config
	// Timeout bounds one whole send; zero is 30 seconds.
	Timeout time.Duration
}

// ParseURL reads smtp://user:pass@host:port or smtps://…; the port defaults
// to 587 and 465. The error says what to write instead.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, errors.New("is not a URL; write smtp://USER:PASSWORD@HOST:587 or smtps://USER:PASSWORD@HOST:465")
	}
	var c Config
	switch u.Scheme {
	case "smtp":
		c.Port = "587"
	case "smtps":
		c.Port, c.ImplicitTLS = "465", true
	default:
		return Config{}, fmt.Errorf("scheme %q is not smtp or smtps; write smtp://USER:PASSWORD@HOST:587 (STARTTLS) or smtps://USER:PASSWORD@HOST:465", u.Scheme)
	}
	c.Host = u.Hostname()
	if c.Host == "" {
		return Config{}, errors.New("names no host; write smtp://USER:PASSWORD@HOST:587")
	}
	if p := u.Port(); p != "" {
		c.Port = p
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return Config{}, errors.New("must have no path or query; write smtp://USER:PASSWORD@HOST:PORT")
	}
	if u.User != nil {
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	return c, nil
}

// ParseFrom checks a sender address (LATCHKEY_SMTP_FROM): "Name <a@b>" or
// "a@b".
func ParseFrom(raw string) (*mail.Address, error) {
	a, err := mail.ParseAddress(raw)
	if err != nil {
		return nil, fmt.Errorf("%q is not an e-mail address such as \"Example <no-reply@example.com>\"", raw)
	}
	return a, nil
}

// Message is one plain-text mail.
type Message struct {
	To, Subject, Body string
}

// Sender sends mail through one relay.
type Sender struct {
	cfg  Config
	from *mail.Address
}

// New checks cfg and returns its Sender.
func New(cfg Config) (*Sender, error) {
	from, err := ParseFrom(cfg.From)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	return &Sender{cfg: cfg, from: from}, nil
}

// Send delivers m: connect (TLS at once for smtps), STARTTLS when the relay
// offers it, authenticate when credentials are set, then one message.
func (s *Sender) Send(ctx context.Context, m Message) error {
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return fmt.Errorf("send mail: recipient: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	tlsCfg := s.cfg.TLS
	if tlsCfg == nil {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tlsCfg = tlsCfg.Clone()
	if tlsCfg.ServerName == "" {
		tlsCfg.ServerName = s.cfg.Host
	}
	addr := net.JoinHostPort(s.cfg.Host, s.cfg.Port)
	var conn net.Conn
	if s.cfg.ImplicitTLS {
		conn, err = (&tls.Dialer{Config: tlsCfg}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("send mail: connect to %s: %w", addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, s.cfg.Host)
	if err != nil {
		return fmt.Errorf("send mail: greeting: %w", err)
	}
	defer c.Close()
	if !s.cfg.ImplicitTLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(tlsCfg); err != nil {
				return fmt.Errorf("send mail: STARTTLS: %w", err)
			}
		}
	}
	if s.cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.cfg.Username, s.cfg.Password, s.cfg.Host)); err != nil {
			return fmt.Errorf("send mail: authenticate: %w", err)
		}
	}
	if err := c.Mail(s.from.Address); err != nil {
		return fmt.Errorf("send mail: MAIL FROM: %w", err)
	}
	if err := c.Rcpt(to.Address); err != nil {
		return fmt.Errorf("send mail: RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("send mail: DATA: %w", err)
	}
	if _, err := w.Write(compose(s.from, to, m, time.Now())); err != nil {
		return fmt.Errorf("send mail: write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("send mail: end of data: %w", err)
	}
	return c.Quit()
}

// compose writes the message: headers (the subject encoded when it is not
// ASCII; CR and LF never reach a header) and a plain-text body with CRLF
// line ends.
func compose(from, to *mail.Address, m Message, now time.Time) []byte {
	var b strings.Builder
	header := func(k, v string) {
		v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
		b.WriteString(k + ": " + v + "\r\n")
	}
	header("From", from.String())
	header("To", to.String())
	header("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	header("Date", now.Format(time.RFC1123Z))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "8bit")
	header("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	body := strings.ReplaceAll(strings.ReplaceAll(m.Body, "\r\n", "\n"), "\n", "\r\n")
	b.WriteString(body)
	if !strings.HasSuffix(body, "\r\n") {
		b.WriteString("\r\n")
	}
	return []byte(b.String())
}
