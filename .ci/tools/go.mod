// The tools .ci/run uses, pinned apart from the server's own go.mod so
// that they add nothing to the server's dependency graph.
module github.com/latchkey/latchkey/ci-tools

go 1.26.8

tool golang.org/x/vuln/cmd/govulncheck

require golang.org/x/mod v0.42.0

require (
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/telemetry v0.0.0-20261010193011-f71dc92da45e // indirect
	golang.org/x/tools v0.52.0 // indirect
	golang.org/x/vuln v1.9.0 // indirect
)

// The advisories govulncheck checks against: data/osv of this module, turned
// into a local database by ./vulnindex (vuln.go.dev is not reachable from CI).
// Nothing imports it, so `go mod tidy` would drop it: add it back if it does.
require golang.org/x/vulndb v0.0.0-20261105234957-e22db6528018
