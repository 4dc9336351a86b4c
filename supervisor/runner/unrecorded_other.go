//go:build !linux

package runner

import "github.com/moltfleet/molt/platform"

// Unrecorded lists the workload instances of a home that run now; only
// Linux can (its /proc shows a process's environment).
func Unrecorded(homeDir string) ([]Found, error) { return nil, platform.ErrNotSupported }
