//go:build linux || darwin || freebsd || openbsd || netbsd || dragonfly

package cli

import (
	"fmt"
	"os"
	"syscall"
)

// lockFile holds an exclusive flock(2) on path until the returned
// function is called. The kernel drops it if lkcli dies.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
