// Command extagram runs Extagram: the whole site in one process (up), or
// one role per process (edge, feed, upload, blob), plus the operator's
// subcommands migrate, health and version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `Extagram: a tiny photo feed, as a gRPC mesh behind an HTTPS edge.

usage: extagram <command> [flags]

commands:
  up        run the whole site in one process (edge, two feed replicas, upload, blob)
  edge      run the HTTPS edge (S1)
  feed      run a FeedService replica (S2, S3, ...)
  upload    run the UploadService (S4)
  blob      run the BlobService (S5)
  certs     write the mesh's CA and certificates (mutual TLS between the roles)
  migrate   apply the database schema migrations and exit
  health    check a service (gRPC health) or the edge (/healthz); exit 0 when healthy
  version   print the version

Run "extagram <command> -h" for the command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmds := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"up":      cmdUp,
		"edge":    cmdEdge,
		"feed":    cmdService("feed"),
		"upload":  cmdService("upload"),
		"blob":    cmdService("blob"),
		"certs":   cmdCerts,
		"migrate": cmdMigrate,
		"health":  cmdHealth,
		"version": cmdVersion,
	}
	name := args[0]
	if name == "-h" || name == "--help" || name == "help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := cmds[name]
	if !ok {
		fmt.Fprintf(stderr, "extagram: unknown command %q\n\n%s", name, usage)
		return 2
	}
	if err := cmd(ctx, args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "extagram %s: %v\n", name, err)
			return 2
		}
		fmt.Fprintf(stderr, "extagram %s: %v\n", name, err)
		return 1
	}
	return 0
}

// usageError is a mistake in the command line (exit status 2).
type usageError struct{ error }
