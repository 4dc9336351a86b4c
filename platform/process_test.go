package platform

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

func TestIdentifyProcessSelf(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("exercised on Unix; Windows reads GetProcessTimes")
	}
	id, err := IdentifyProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	if runtime.GOOS == "linux" && id.Exe != exe {
		t.Errorf("Exe = %q, want %q", id.Exe, exe)
	}
	again, err := IdentifyProcess(os.Getpid())
	if err != nil || !id.Same(again) {
		t.Fatalf("second look: %+v, %v; want same as %+v", again, err, id)
	}
	other := id
	other.Start += 100
	if id.Same(other) {
		t.Error("a process with another start time (pid reused) counts as the same")
	}
	other = id
	other.Exe += "x"
	if id.Same(other) {
		t.Error("a process with another executable counts as the same")
	}
}

func TestTerminateAndGone(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs sleep(1)")
	}
	cmd := exec.Command("sleep", "30")
	PrepareChild(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	id, err := IdentifyProcess(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(id.Exe) != "sleep" && runtime.GOOS == "linux" {
		t.Errorf("Exe = %q, want .../sleep", id.Exe)
	}
	if err := TerminateProcess(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if err == nil || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
			t.Errorf("wait: %v, %v; want killed by SIGTERM", err, ws)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sleep did not end after TerminateProcess")
	}
	if _, err := IdentifyProcess(id.PID); !errors.Is(err, ErrNoProcess) {
		t.Errorf("after exit: %v, want ErrNoProcess", err)
	}
	if err := KillProcess(id.PID); !errors.Is(err, ErrNoProcess) {
		t.Errorf("kill after exit: %v, want ErrNoProcess", err)
	}
}

func TestReplaceExecutable(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "prog")
	src := filepath.Join(dir, "staged")
	old := filepath.Join(dir, "prog.old")
	must(t, os.WriteFile(target, []byte("old program"), 0o755))
	must(t, os.WriteFile(src, []byte("new program"), 0o755))
	must(t, os.WriteFile(old, []byte("older leftover"), 0o755))
	// A replacement killed before its swap leaves .prog.new, here not
	// executable: the new target must be executable all the same.
	must(t, os.WriteFile(newPath(target), []byte("half a program, and more than the new one"), 0o644))
	if err := ReplaceExecutable(target, src, old); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{target: "new program", old: "old program", src: "new program"} {
		b, err := os.ReadFile(path)
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", filepath.Base(path), b, err, want)
		}
	}
	if fi, err := os.Stat(target); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("target mode %v is not executable", fi.Mode())
	}
	if _, err := os.Stat(newPath(target)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover %s: %v", newPath(target), err)
	}
	if err := ReplaceExecutable(target, filepath.Join(dir, "missing"), old); err == nil {
		t.Error("replacing from a missing file succeeded")
	}
	if b, _ := os.ReadFile(target); string(b) != "new program" {
		t.Errorf("a failed replacement changed the target: %q", b)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
