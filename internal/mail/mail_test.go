package mail_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/mail"
	"github.com/latchkey/latchkey/internal/mail/mailtest"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		raw      string
		wantErr  string
		host     string
		port     string
		implicit bool
		user     string
	}{
		{raw: "smtp://u:p@mail.example:2525", host: "mail.example", port: "2525", user: "u"},
		{raw: "smtp://mail.example", host: "mail.example", port: "587"},
		{raw: "smtps://u:p%40ss@mail.example", host: "mail.example", port: "465", implicit: true, user: "u"},
		{raw: "http://mail.example", wantErr: "not smtp or smtps"},
		{raw: "smtp://", wantErr: "no host"},
		{raw: "smtp://mail.example/path", wantErr: "no path"},
		{raw: "mail.example:25", wantErr: "smtp://"},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			c, err := mail.ParseURL(tc.raw)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "p@ss") || strings.Contains(err.Error(), ":p@") {
					t.Errorf("the error quotes the password: %v", err)
				}
				return
			}
			if err != nil || c.Host != tc.host || c.Port != tc.port || c.ImplicitTLS != tc.implicit || c.Username != tc.user {
				t.Fatalf("got %+v %v", c, err)
			}
		})
	}
}

// A message goes through a real SMTP exchange, authenticated; header
// injection through the subject is neutralised.
func TestSend(t *testing.T) {
	srv := mailtest.Start(t, "relay-user", "relay-pass")
	host, port, _ := net.SplitHostPort(srv.Addr)
	s, err := mail.New(mail.Config{Host: host, Port: port, Username: "relay-user", Password: "relay-pass", From: "Latchkey <no-reply@example.com>"})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(context.Background(), mail.Message{To: "ann@example.com", Subject: "Reset\r\nBcc: evil@example.com",
		Body: "line one\n.\nhttps://id.example/reset-password?token=abc\n"})
	if err != nil {
		t.Fatal(err)
	}
	m := srv.Next(t, 10*time.Second)
	if m.User != "relay-user" || m.From != "no-reply@example.com" || len(m.To) != 1 || m.To[0] != "ann@example.com" {
		t.Fatalf("envelope %+v", m)
	}
	if strings.Contains(m.Data, "\r\nBcc:") {
		t.Errorf("header injected:\n%s", m.Data)
	}
	if !strings.Contains(m.Data, "\r\n.\r\n") && !strings.Contains(m.Data, "\n.\n") {
		t.Errorf("a line with a single dot was lost:\n%s", m.Data)
	}
	if got := mailtest.Link(t, m, "https://id.example/reset-password?token="); got != "https://id.example/reset-password?token=abc" {
		t.Errorf("link = %q", got)
	}

	bad, _ := mail.New(mail.Config{Host: host, Port: port, Username: "relay-user", Password: "wrong", From: "no-reply@example.com"})
	if err := bad.Send(context.Background(), mail.Message{To: "ann@example.com", Subject: "x", Body: "x"}); err == nil {
		t.Error("wrong relay credentials: no error")
	}
}
