// Command molt is the control server (molt serve), the operator CLI and the
// release tooling (molt pack).
package main

import (
	"os"

	"github.com/moltfleet/molt/internal/cli"
)

func main() {
	os.Exit(cli.Main(newRootCmd(), os.Args[1:], os.Stderr))
}
