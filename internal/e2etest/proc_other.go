//go:build !unix

package e2etest

import (
	"os"
	"os/exec"
)

// The harness drives Unix processes; elsewhere it builds, and stops
// processes without process groups or graceful signals.

func ownGroup(*exec.Cmd) {}

func terminate(pid int) { kill(pid) }

func killGroup(pid int) { kill(pid) }

func kill(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}

func dumpStacks(int) bool { return false }

func alive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	p.Release()
	return true
}
