// Package migrations holds Latchkey's versioned SQL schema, one folder per
// database dialect. Both folders carry the same version numbers so that
// `latchkey migrate status` means the same thing on PostgreSQL and SQLite.
package migrations

import "embed"

// FS holds postgres/*.sql and sqlite/*.sql in goose's annotated format.
//
//go:embed postgres/*.sql sqlite/*.sql
var FS embed.FS
