// Package store is the only package that talks to the database. It opens
// PostgreSQL or the embedded SQLite store through GORM, applies the embedded
// migrations, keeps clients and users, and implements every fosite storage
// interface Latchkey's grants need.
//
// Transactions travel in the context: BeginTX puts one there and every query
// goes through db(ctx), so the work fosite brackets with BeginTX/Commit is
// really atomic. Errors are translated once, here, into fosite's sentinels
// (ErrNotFound, ErrSerializationFailure, ...) and this package's own.
package store
