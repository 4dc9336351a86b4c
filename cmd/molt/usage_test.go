package main

import (
	"testing"

	"github.com/moltfleet/molt/internal/cli/clitest"
)

// Every command of the tree: a bad flag, a bad flag value, an unknown
// subcommand, a wrong number of arguments exit 2 with one line on stderr.
func TestUsageErrorsExit2(t *testing.T) { clitest.CheckUsageErrors(t, newRootCmd) }
