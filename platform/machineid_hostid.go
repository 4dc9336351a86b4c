//go:build solaris || aix || illumos

package platform

import (
	"context"
	"fmt"
	"os/exec"
	"time"
)

// machineID uses hostid(1): Solaris and AIX have no machine-id file, and
// their hostid is per installation (Solaris) or per system (AIX).
func machineID() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "hostid").Output()
	if err != nil {
		return "", fmt.Errorf("machine id: hostid: %w", err)
	}
	return string(out), nil
}
