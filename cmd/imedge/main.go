// Command imedge is the mutual-TLS edge receiver for Tencent Cloud IM
// webhooks. Run `imedge help` for its commands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "imedge: %v\n", err)
		os.Exit(exitCode(err)) // the only os.Exit in the module
	}
}
