//go:build !windows

package platform

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestKillProcessTakesTheGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child")
	cmd := exec.Command("sh", "-c", `sleep 30 & echo $! > "$1"; wait`, "sh", pidFile)
	PrepareChild(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var child int
	deadline := time.Now().Add(10 * time.Second)
	for child == 0 && time.Now().Before(deadline) {
		b, _ := os.ReadFile(pidFile)
		fmt.Sscan(string(b), &child)
		time.Sleep(10 * time.Millisecond)
	}
	if child == 0 {
		t.Fatal("the child did not start")
	}
	if err := KillProcess(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	deadline = time.Now().Add(10 * time.Second)
	for {
		if _, err := IdentifyProcess(child); errors.Is(err, ErrNoProcess) {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(child, syscall.SIGKILL)
			t.Fatal("the agent's child survived the kill of its group")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
