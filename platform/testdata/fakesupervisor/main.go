//go:build linux

// Command fakesupervisor stands in for molt-supervisor in the tests of the
// SysV script's respawn loop: run as "fakesupervisor run --home DIR", it
// appends its pid to DIR/supervisor.pids, starts a child in a process group
// of its own (as the real supervisor starts the agent) and records the
// child's pid in DIR/child.pids, then exits 0 on SIGTERM without stopping
// the child: a supervisor that leaves something behind.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	if len(os.Args) != 4 || os.Args[1] != "run" || os.Args[2] != "--home" {
		fmt.Fprintln(os.Stderr, "usage: fakesupervisor run --home DIR")
		os.Exit(2)
	}
	dir := os.Args[3]
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	child := exec.Command("sleep", "300")
	child.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := child.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	appendPid(filepath.Join(dir, "child.pids"), child.Process.Pid)
	appendPid(filepath.Join(dir, "supervisor.pids"), os.Getpid())
	<-sig
	os.Exit(0)
}

func appendPid(path string, pid int) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		os.Exit(1)
	}
	fmt.Fprintln(f, pid)
	f.Close()
}
