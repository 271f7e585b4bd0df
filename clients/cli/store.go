package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Session is what lkcli keeps of one sign-in: the tokens one client got
// from one issuer.
type Session struct {
	Issuer       string    `json:"issuer"`
	ClientID     string    `json:"client_id"`
	Scope        string    `json:"scope,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
}

type tokenFile struct {
	Sessions []Session `json:"sessions"`
}

// Store is the tokens file. It holds bearer credentials (a refresh token
// lasts weeks), so the file is 0600 in a 0700 directory: other local users
// must not be able to read it. Every save writes a temporary file in the
// same directory and renames it over the old one, so a crash or a full
// disk never leaves a half-written file that loses every session.
type Store struct {
	Path string
}

// Lock serialises lkcli runs on this file: the read, the refresh and
// the save of `lkcli token` happen under it, so that scripts calling
// lkcli in parallel refresh once (the others find the new token) and no
// run's save undoes another's. Callers hold it around Get and Put.
func (s Store) Lock() (unlock func(), err error) {
	dir := filepath.Dir(s.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	return lockFile(s.Path + ".lock")
}

// DefaultStorePath is os.UserConfigDir()/lkcli/tokens.json.
func DefaultStorePath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the config directory: %w", err)
	}
	return filepath.Join(dir, "lkcli", "tokens.json"), nil
}

func (s Store) read() (tokenFile, error) {
	var f tokenFile
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("read %s: %w", s.Path, err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("read %s: %w", s.Path, err)
	}
	return f, nil
}

// Get returns the session of clientID at issuer, or ErrNotLoggedIn.
func (s Store) Get(issuer, clientID string) (Session, error) {
	f, err := s.read()
	if err != nil {
		return Session{}, err
	}
	for _, sess := range f.Sessions {
		if sess.Issuer == issuer && sess.ClientID == clientID {
			return sess, nil
		}
	}
	return Session{}, ErrNotLoggedIn
}

// Put adds or replaces the session of its issuer and client.
func (s Store) Put(sess Session) error {
	return s.update(func(f *tokenFile) {
		for i, old := range f.Sessions {
			if old.Issuer == sess.Issuer && old.ClientID == sess.ClientID {
				f.Sessions[i] = sess
				return
			}
		}
		f.Sessions = append(f.Sessions, sess)
	})
}

// Delete removes the session of clientID at issuer, if there is one.
func (s Store) Delete(issuer, clientID string) error {
	return s.update(func(f *tokenFile) {
		kept := f.Sessions[:0]
		for _, old := range f.Sessions {
			if old.Issuer != issuer || old.ClientID != clientID {
				kept = append(kept, old)
			}
		}
		f.Sessions = kept
	})
}

func (s Store) update(change func(*tokenFile)) error {
	f, err := s.read()
	if err != nil {
		return err
	}
	change(&f)
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(s.Path, b)
}

func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	// MkdirAll leaves an existing directory as it was; ours holds
	// credentials only, so narrow it.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("restrict %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".tokens-*.json") // created 0600
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
