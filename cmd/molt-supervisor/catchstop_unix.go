//go:build !windows

package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// catchStop catches SIGTERM and SIGINT from the start of run, not only
// once platform.RunService runs: Go's default for an uncaught SIGTERM is
// to die at once. After a self-upgrade this process is a new image of the
// old supervisor's pid, handed its agent and workloads; dying while it
// reads agent.yaml and opens its log would leave them running, the
// workloads in process groups of their own that the service manager's
// kill of this one does not reach. A stop caught here cancels the
// returned context, which Run then sees at once: it adopts what was
// handed over and stops it. (The exec itself and the Go runtime's start
// remain, a window of about a millisecond; the old image does not exec
// once a stop was asked for, see supervisor.restartSelf.)
func catchStop() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
}
