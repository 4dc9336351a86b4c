package platform

import (
	"context"
	"fmt"
	"os/exec"
	"time"
)

func machineID() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/usr/sbin/ioreg", "-rd1", "-c", "IOPlatformExpertDevice").Output()
	if err != nil {
		return "", fmt.Errorf("machine id: ioreg: %w", err)
	}
	id := parseIOPlatformUUID(out)
	if id == "" {
		return "", fmt.Errorf("machine id: no IOPlatformUUID: %w", ErrNotSupported)
	}
	return id, nil
}
