//go:build !windows

package updater

import (
	"runtime"
	"syscall"
)

func maxRSSKB() (int64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss) / 1024, nil // bytes there
	}
	return int64(ru.Maxrss), nil
}
