// Package seed fills a PostgreSQL database with the rows of a large
// deployment, written as the server writes them, so that the load tool
// (cmd/latchkey-bench) can measure the server at that size: grants with
// their refresh-token and access-token rows, revoked grants, a deny-list of
// revoked JWT ids, users and a handful of clients. Rows go in by COPY, in
// batches of one transaction each, with every index of the schema in place.
//
// Everything is derived from the row's index, so a rerun writes the same
// rows: batches already present are skipped, and a batch that is only
// partly there (the janitor deleted some of its expired rows) is written
// again with ON CONFLICT DO NOTHING. Token values are derived from the
// system secret too: RefreshToken and AccessToken give back the token of any
// seeded grant, which the server accepts like one it issued.
//
// Load adds grants at a fixed rate for as long as it runs, for measuring the
// janitor while it deletes as fast as grants arrive.
package seed
