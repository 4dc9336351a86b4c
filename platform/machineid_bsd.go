//go:build freebsd || openbsd

package platform

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

func machineID() (string, error) {
	name := "kern.hostuuid"
	if runtime.GOOS == "openbsd" {
		name = "hw.uuid"
	}
	v, err := unix.Sysctl(name)
	if err != nil {
		return "", fmt.Errorf("machine id: sysctl %s: %w", name, err)
	}
	return v, nil
}
