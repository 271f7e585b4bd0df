// Command lkcli signs a person in to a Latchkey server and prints access
// tokens for scripts; see clients/cli/README.md.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/latchkey/latchkey/clients/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := (&cli.App{}).Main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
