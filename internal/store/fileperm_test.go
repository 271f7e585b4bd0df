package store_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// Issue 12 item 9: `serve --dev` made latchkey.db and its -wal and -shm
// files 0644, so any local user could read the password hashes and sealed
// keys. A new SQLite file is its owner's alone, whatever the umask, and
// SQLite gives the -wal and -shm files the main file's mode.
func TestSQLiteFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "latchkey.db")
	st := storetest.Open(t, "sqlite://"+path, store.Options{})
	if err := st.CreateUser(context.Background(), &store.User{ID: "u1", Username: "perm", PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatalf("stat %s: %v", f, err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %o, want 600", filepath.Base(f), mode)
		}
	}
}
