// Command molt-supervisor is the OS service on every managed host: it runs
// the agent, restarts it by its exit code, watches and rolls back a freshly
// upgraded agent, and upgrades its own binary.
package main

import (
	"os"

	"github.com/moltfleet/molt/internal/cli"
)

func main() {
	os.Exit(cli.Main(newRootCmd(), os.Args[1:], os.Stderr))
}
