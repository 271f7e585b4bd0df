package cli_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/latchkey/latchkey/clients/cli"
)

// The tokens file holds bearer credentials: 0600 in a 0700 directory,
// even when the directory or an older file were wider, and never left
// half-written (a temporary file renamed over it).
func TestStoreKeepsTokensPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lkcli")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tokens.json")
	if err := os.WriteFile(path, []byte(`{"sessions":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	st := cli.Store{Path: path}
	if err := st.Put(cli.Session{Issuer: "https://a.example", ClientID: "c", AccessToken: "at", Expiry: time.Now()}); err != nil {
		t.Fatal(err)
	}
	checkModes(t, path)
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("the directory holds %v, want tokens.json alone (a temporary file left behind?)", entries)
	}
}

// One file keeps a session per issuer and client; replacing or deleting
// one leaves the others alone.
func TestStoreSessionsPerIssuerAndClient(t *testing.T) {
	st := cli.Store{Path: filepath.Join(t.TempDir(), "lkcli", "tokens.json")}
	if _, err := st.Get("https://a.example", "c"); !errors.Is(err, cli.ErrNotLoggedIn) {
		t.Fatalf("empty store: %v", err)
	}
	for _, s := range []cli.Session{
		{Issuer: "https://a.example", ClientID: "c", AccessToken: "a-c"},
		{Issuer: "https://a.example", ClientID: "d", AccessToken: "a-d"},
		{Issuer: "https://b.example", ClientID: "c", AccessToken: "b-c"},
		{Issuer: "https://a.example", ClientID: "c", AccessToken: "a-c-2"},
	} {
		if err := st.Put(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Delete("https://a.example", "d"); err != nil {
		t.Fatal(err)
	}
	want := map[[2]string]string{{"https://a.example", "c"}: "a-c-2", {"https://a.example", "d"}: "", {"https://b.example", "c"}: "b-c"}
	for k, at := range want {
		s, err := st.Get(k[0], k[1])
		if at == "" {
			if !errors.Is(err, cli.ErrNotLoggedIn) {
				t.Fatalf("%v after delete: %+v %v", k, s, err)
			}
			continue
		}
		if err != nil || s.AccessToken != at {
			t.Fatalf("%v: %+v %v, want %s", k, s, err, at)
		}
	}
}

// A file lkcli cannot read is reported, never overwritten: it may hold
// other sessions' refresh tokens.
func TestStoreKeepsAnUnreadableFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	st := cli.Store{Path: path}
	if err := st.Put(cli.Session{Issuer: "https://a.example", ClientID: "c"}); err == nil {
		t.Fatal("Put over a damaged file succeeded")
	}
	if b, _ := os.ReadFile(path); string(b) != "{not json" {
		t.Fatalf("the damaged file was replaced by %q", b)
	}
}
