//go:build !linux && !darwin && !freebsd && !dragonfly && !openbsd && !solaris && !illumos && !netbsd && !aix && !windows

package platform

func freeDisk(string) (uint64, error) { return 0, ErrNotSupported }
