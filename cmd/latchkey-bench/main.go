// Command latchkey-bench drives a running Latchkey with concurrent workers
// and prints, per scenario, requests per second, latency percentiles,
// errors and the server's RSS. `latchkey-bench seed` fills a database with
// the rows of a large deployment first (internal/seed). See docs/benchmarks.md.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/bench"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/seed"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "seed" {
		os.Exit(runSeed(os.Args[2:], os.Stdout, os.Stderr))
	}
	var opts bench.Options
	flag.StringVar(&opts.PublicURL, "url", "http://127.0.0.1:8080", "Latchkey public URL")
	flag.StringVar(&opts.AdminURL, "admin-url", "http://127.0.0.1:8081", "Latchkey admin URL")
	// Secrets default to "" and are read from the environment after
	// parsing: a default shows in -h, which would print them.
	flag.StringVar(&opts.AdminToken, "admin-token", "", "admin token (default $LATCHKEY_ADMIN_TOKEN)")
	flag.IntVar(&opts.Workers, "workers", 16, "concurrent workers")
	flag.DurationVar(&opts.Duration, "duration", 10*time.Second, "how long each scenario runs")
	flag.StringVar(&opts.IDTokenAlg, "id-token-alg", "", "id_token_signed_response_alg of the bench's clients: RS256, ES256 or EdDSA (default: the server's, RS256)")
	scenarios := flag.String("scenario", "all", "comma-separated: "+strings.Join(bench.Scenarios, ", ")+", or all; after `latchkey-bench seed` also "+strings.Join(bench.SeededScenarios, ", "))
	flag.IntVar(&opts.SeededGrants, "seeded-grants", 0, "grants `latchkey-bench seed` wrote (their tokens are recomputed from $LATCHKEY_SECRET, the server's)")
	var hydra bench.HydraOptions
	flag.StringVar(&hydra.PublicURL, "hydra-url", "", "an Ory Hydra's public URL: run "+strings.Join(bench.HydraScenarios, ", ")+" against it instead (docs/benchmarks.md)")
	flag.StringVar(&hydra.AdminURL, "hydra-admin-url", "http://127.0.0.1:4445", "that Hydra's admin URL")
	flag.StringVar(&hydra.ClientID, "hydra-client", "bench", "client_id of a Hydra client for the code flow (client_secret_basic, redirect URI "+bench.HydraRedirectURI+")")
	flag.StringVar(&hydra.ClientSecret, "hydra-secret", "", "its secret (default $HYDRA_CLIENT_SECRET)")
	flag.Parse()
	opts.AdminToken = cmp.Or(opts.AdminToken, os.Getenv("LATCHKEY_ADMIN_TOKEN"))
	hydra.ClientSecret = cmp.Or(hydra.ClientSecret, os.Getenv("HYDRA_CLIENT_SECRET"))
	if opts.SeededGrants > 0 {
		t, err := seed.NewTokens(secrets.ParseSystemSecrets(os.Getenv("LATCHKEY_SECRET")))
		if err != nil {
			fmt.Fprintln(os.Stderr, "latchkey-bench: -seeded-grants:", err)
			os.Exit(2)
		}
		opts.Seed = t
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if hydra.PublicURL != "" {
		hydra.Workers, hydra.Duration = opts.Workers, opts.Duration
		os.Exit(runHydra(ctx, hydra, *scenarios))
	}
	r, err := bench.NewRunner(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "latchkey-bench: set-up:", err)
		os.Exit(1)
	}
	names := bench.Scenarios
	if *scenarios != "all" {
		names = strings.Split(*scenarios, ",")
	}
	fmt.Printf("workers %d, %s per scenario, idle rss %.1f MiB\n", opts.Workers, opts.Duration, r.RSS(ctx))
	failed := false
	for _, name := range names {
		res, err := r.Run(ctx, strings.TrimSpace(name))
		if err != nil {
			fmt.Fprintln(os.Stderr, "latchkey-bench:", err)
			failed = true
			continue
		}
		fmt.Println(res)
	}
	if failed {
		os.Exit(1)
	}
}

// runHydra runs the Hydra scenarios and returns the exit code.
func runHydra(ctx context.Context, o bench.HydraOptions, scenarios string) int {
	names := bench.HydraScenarios
	if scenarios != "all" {
		names = strings.Split(scenarios, ",")
	}
	fmt.Printf("Hydra at %s, workers %d, %s per scenario\n", o.PublicURL, o.Workers, o.Duration)
	code := 0
	for _, name := range names {
		res, err := bench.RunHydra(ctx, o, strings.TrimSpace(name))
		if err != nil {
			fmt.Fprintln(os.Stderr, "latchkey-bench:", err)
			code = 1
			continue
		}
		fmt.Println(res)
	}
	return code
}
