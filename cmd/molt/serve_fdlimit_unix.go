//go:build unix

package main

import "syscall"

// raiseFDLimit raises the soft file descriptor limit to the hard one (Go
// does so too at start, but says nothing) and returns both, with the soft
// limit it found. ok is false when the limit cannot be read.
func raiseFDLimit() (before, soft, hard uint64, ok bool) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, 0, 0, false
	}
	before = uint64(l.Cur)
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
		}
	}
	return before, uint64(l.Cur), uint64(l.Max), true
}
