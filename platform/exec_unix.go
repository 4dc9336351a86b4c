//go:build !windows

package platform

import "syscall"

// ExecSelf replaces the running program with path (same pid, open files
// without close-on-exec kept). It returns only on failure.
func ExecSelf(path string, args, env []string) error {
	return syscall.Exec(path, args, env)
}
