package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/seed"
	"github.com/latchkey/latchkey/internal/store"
)

const seedUsage = `usage: latchkey-bench seed [flags]

Writes grants, revoked grants, revoked JWT ids, users and clients into the
PostgreSQL database of $LATCHKEY_DATABASE_URL, as the server writes them,
with the token keys of $LATCHKEY_SECRET (the server's). A rerun skips what
is there. With -janitor-load it instead adds -rate new grants a second until
-duration passes or it is interrupted. See docs/benchmarks.md.
`

// runSeed is the seed subcommand; it returns the exit code.
func runSeed(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, seedUsage); fs.PrintDefaults() }
	o := seed.Options{Secret: secrets.ParseSystemSecrets(os.Getenv("LATCHKEY_SECRET"))}
	// Read after parsing, not as the flag's default, which -h would print
	// with its password.
	dbURL := fs.String("database-url", "", "PostgreSQL URL (default $LATCHKEY_DATABASE_URL)")
	fs.IntVar(&o.Grants, "grants", 10_000_000, "grants (a live refresh token, its rotated predecessors and an access token each)")
	revoked := fs.Int("revoked-grants", -1, "how many of the grants are revoked (default 1% of -grants)")
	fs.IntVar(&o.RevokedJTIs, "revoked-jtis", 1_000_000, "size of the JWT deny-list (revoked_jtis)")
	fs.IntVar(&o.Users, "users", 1_000_000, "users")
	fs.IntVar(&o.Clients, "clients", 5, "clients the grants belong to")
	fs.IntVar(&o.Rotated, "rotated", 1, "rotated (inactive) refresh tokens kept per grant")
	fs.BoolVar(&o.AccessTokens, "access-tokens", true, "write each live grant's opaque access token (the server keeps none for JWTs)")
	fs.Float64Var(&o.ExpiredFraction, "expired", 0.05, "fraction of grants and revoked jtis already expired, for the janitor")
	fs.DurationVar(&o.RefreshTTL, "refresh-ttl", 720*time.Hour, "refresh token lifetime the expiries spread over (the server's LATCHKEY_REFRESH_TOKEN_TTL)")
	fs.DurationVar(&o.AccessTTL, "access-ttl", 15*time.Minute, "access token lifetime (LATCHKEY_ACCESS_TOKEN_TTL)")
	fs.DurationVar(&o.DenyWindow, "deny-window", 24*time.Hour, "the revoked jtis' expiries spread over this, so the list keeps its size while measured")
	fs.IntVar(&o.Batch, "batch", 10_000, "grants, users or jtis per transaction")
	janitorLoad := fs.Bool("janitor-load", false, "instead of seeding, add -rate new grants a second (for the janitor measurement)")
	rate := fs.Int("rate", 2000, "with -janitor-load: new grants a second (they belong to the seed's -users and -clients: pass the same)")
	loadTTL := fs.Duration("load-ttl", time.Minute, "with -janitor-load: lifetime of the new grants' tokens")
	duration := fs.Duration("duration", 0, "with -janitor-load: how long (0: until interrupted)")
	showToken := fs.Int("show-token", -1, "print the refresh and access tokens of seeded grant N (0-based) and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *dbURL == "" {
		*dbURL = os.Getenv("LATCHKEY_DATABASE_URL")
	}
	if *revoked < 0 {
		*revoked = o.Grants / 100
	}
	o.RevokedGrants = *revoked
	if *showToken >= 0 {
		return printTokens(stdout, stderr, o.Secret, *showToken)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	conn, err := connect(ctx, *dbURL)
	if err != nil {
		fmt.Fprintln(stderr, "latchkey-bench seed:", err)
		return 1
	}
	defer conn.Close(context.Background())

	if *janitorLoad {
		st, err := seed.Load(ctx, conn, seed.LoadOptions{Rate: *rate, TTL: *loadTTL, Duration: *duration,
			Users: o.Users, Clients: o.Clients, Secret: o.Secret, Report: func(s seed.LoadStats) {
				fmt.Fprintf(stdout, "load: %d grants in %s (%.0f/s), behind %d\n", s.Grants, s.Elapsed.Round(time.Second),
					float64(s.Grants)/s.Elapsed.Seconds(), s.Behind)
			}})
		if err != nil {
			fmt.Fprintln(stderr, "latchkey-bench seed:", err)
			return 1
		}
		// A tick or two short at the end is the phase of the ticker; a
		// second short is a database that cannot take the rate.
		if st.Behind > *rate {
			fmt.Fprintf(stderr, "latchkey-bench seed: the database did not keep up: %d grants behind\n", st.Behind)
			return 1
		}
		return 0
	}

	var last time.Time
	o.Progress = func(p seed.Progress) {
		if p.Done < p.Total && time.Since(last) < 2*time.Second {
			return
		}
		last = time.Now()
		fmt.Fprintf(stdout, "%-12s %10d / %-10d  rows %11d  %7.0f rows/s  %s\n", p.Kind, p.Done, p.Total, p.Rows,
			float64(p.Rows)/p.Elapsed.Seconds(), p.Elapsed.Round(time.Second))
	}
	st, err := seed.Seed(ctx, conn, o)
	if err != nil {
		fmt.Fprintln(stderr, "latchkey-bench seed:", err)
		return 1
	}
	var size string
	if err := conn.QueryRow(ctx, "SELECT pg_size_pretty(pg_database_size(current_database()))").Scan(&size); err != nil {
		size = "?"
	}
	fmt.Fprintf(stdout, "seeded: %d rows in %s (%.0f rows/s), %d batches already there; database %s\n",
		st.Rows, st.Elapsed.Round(time.Millisecond), st.RowsPerSecond(), st.Skipped, size)
	return 0
}

// printTokens prints grant i's tokens, for trying a seeded grant by hand.
func printTokens(stdout, stderr io.Writer, ss secrets.SystemSecrets, i int) int {
	rt, err := seed.RefreshToken(ss, i)
	if err == nil {
		var at string
		at, err = seed.AccessToken(ss, i)
		fmt.Fprintf(stdout, "grant %s\nrefresh_token %s\naccess_token %s\n", seed.GrantID(i), rt, at)
	}
	if err != nil {
		fmt.Fprintln(stderr, "latchkey-bench seed:", err)
		return 1
	}
	return 0
}

// connect opens the database after checking that it is PostgreSQL with
// the schema of this build, so that rows never go into a half-made schema.
func connect(ctx context.Context, databaseURL string) (*pgx.Conn, error) {
	dialect, source, err := config.ParseDatabaseURL(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("LATCHKEY_DATABASE_URL: %w", err)
	}
	if dialect != store.DialectPostgres {
		return nil, errors.New("seeding needs PostgreSQL (LATCHKEY_DATABASE_URL=postgres://…)")
	}
	st, err := store.Open(ctx, dialect, source, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	pending, err := st.Pending(ctx)
	_ = st.Close()
	if err != nil {
		return nil, err
	}
	if pending {
		return nil, errors.New("the schema is behind: run `latchkey migrate up` first")
	}
	return pgx.Connect(ctx, source)
}
