//go:build !windows

package platform

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// RunService runs run until it returns, with ctx cancelled on SIGTERM or
// SIGINT: what systemd, launchd, SysV scripts and the other Unix service
// managers send to stop a service. name is used on Windows only.
// Signals stay caught until run returns, so a second SIGTERM does not cut
// the supervisor's graceful stop of its agent short; the service manager's
// stop timeout is the backstop. RunService returns run's error.
func RunService(name string, run func(ctx context.Context) error) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return run(ctx)
}

func windowsServiceMatches(ServiceSpec) (bool, error) { return false, ErrNotSupported }
func applyWindowsRecovery(ServiceSpec) error          { return ErrNotSupported }
func stopService(ServiceSpec) error                   { return ErrNotSupported }
