//go:build !(linux || darwin || freebsd || openbsd || netbsd || dragonfly)

package cli

// lockFile does not lock here (Windows among others): two lkcli runs at
// the same moment may both refresh, which the server's grace period
// allows, and the last save wins.
func lockFile(string) (func(), error) { return func() {}, nil }
