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

// startShell starts sh with a sleeping child, in a group of its own or
// not, and returns the shell and the child's pid.
func startShell(t *testing.T, own bool) (*exec.Cmd, int) {
	t.Helper()
	pidFile := filepath.Join(t.TempDir(), "child")
	cmd := exec.Command("sh", "-c", `sleep 30 & echo $! > "$1"; wait`, "sh", pidFile)
	if own {
		PrepareGroup(cmd)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
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
	t.Cleanup(func() { syscall.Kill(child, syscall.SIGKILL) })
	return cmd, child
}

func gone(t *testing.T, pid int) bool {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := IdentifyProcess(pid); errors.Is(err, ErrNoProcess) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func TestGroupSignalAndKill(t *testing.T) {
	cmd, child := startShell(t, true)
	g, err := NewGroup(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	// SIGTERM to the group reaches the shell's child, not only the shell.
	if err := g.Signal("SIGTERM"); err != nil {
		t.Fatal(err)
	}
	if !gone(t, child) {
		t.Fatal("SIGTERM to the group did not reach the child")
	}
	cmd.Wait()
	if err := g.Signal("SIGBOGUS"); !errors.Is(err, ErrUnknownSignal) {
		t.Errorf("unknown signal: %v", err)
	}
}

// TestOpenGroupNotLeader: a recorded process that leads no group (here
// one in the test's own group) is signalled alone, never its group.
func TestOpenGroupNotLeader(t *testing.T) {
	cmd, child := startShell(t, false)
	g, err := OpenGroup(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if _, err := IdentifyProcess(child); err != nil {
		t.Fatalf("the child in the same group was killed too: %v", err)
	}
	if _, err := OpenGroup(1 << 22); !errors.Is(err, ErrNoProcess) {
		t.Errorf("OpenGroup of no process: %v", err)
	}
}
