//go:build !linux && !windows && !darwin && !freebsd && !openbsd && !solaris && !aix && !illumos

package platform

func machineID() (string, error) { return "", ErrNotSupported }
