// Command molt-agent is the daemon on every managed host: it enrolls with the
// control server, checks in, and carries out upgrade orders.
package main

import (
	"os"

	"github.com/moltfleet/molt/internal/cli"
)

func main() {
	os.Exit(cli.Main(newRootCmd(), os.Args[1:], os.Stderr))
}
