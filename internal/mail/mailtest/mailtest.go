// Package mailtest runs an SMTP server inside a test (github.com/emersion/go-smtp
// on 127.0.0.1:0) and hands the test every message it receives.
package mailtest

import (
	"errors"
	"io"
	"net"
	"regexp"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	smtp "github.com/emersion/go-smtp"
)

// Mail is one received message.
type Mail struct {
	From string
	To   []string
	Data string
	// User is who authenticated, if anyone did.
	User string
}

// Server is a running test SMTP server.
type Server struct {
	Addr string
	// Mails receives every message, in order.
	Mails chan Mail
	// Username and Password, when set, are the only accepted credentials.
	Username, Password string
}

// Start starts a server on 127.0.0.1:0, closed when the test ends. It
// offers AUTH PLAIN without TLS: net/smtp allows that to localhost only.
func Start(t testing.TB, username, password string) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: ln.Addr().String(), Mails: make(chan Mail, 100), Username: username, Password: password}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &session{srv: s}, nil }))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

// Next waits up to d for the next message; the test fails without one.
// (A bounded wait for an event, not a sleep.)
func (s *Server) Next(t testing.TB, d time.Duration) Mail {
	t.Helper()
	select {
	case m := <-s.Mails:
		return m
	case <-time.After(d):
		t.Fatal("no mail received")
		return Mail{}
	}
}

// Link returns the first URL in the message that starts with prefix.
func Link(t testing.TB, m Mail, prefix string) string {
	t.Helper()
	re := regexp.MustCompile(regexp.QuoteMeta(prefix) + `[^\s]*`)
	l := re.FindString(m.Data)
	if l == "" {
		t.Fatalf("no link %s… in mail:\n%s", prefix, m.Data)
	}
	return l
}

type session struct {
	srv  *Server
	cur  Mail
	user string
}

func (s *session) AuthMechanisms() []string {
	if s.srv.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != s.srv.Username || password != s.srv.Password {
			return errors.New("invalid credentials")
		}
		s.user = username
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.srv.Username != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.cur = Mail{From: from, User: s.user}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.To = append(s.cur.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.Data = string(b)
	s.srv.Mails <- s.cur
	return nil
}

func (s *session) Reset()        { s.cur = Mail{} }
func (s *session) Logout() error { return nil }
