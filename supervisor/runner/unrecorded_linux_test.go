package runner

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/moltfleet/molt/platform"
)

// TestUnrecorded: a workload instance of a home, started as a supervisor
// starts one (its own process group, the home and the workload in its
// environment) is found by its home, once (not its child, which is in
// its group), and not by another home's.
func TestUnrecorded(t *testing.T) {
	home := t.TempDir()
	childFile := filepath.Join(t.TempDir(), "child")
	cmd := exec.Command(testWorkload, "-child", childFile)
	cmd.Env = append(os.Environ(), "MOLT_HOME="+home, "MOLT_WORKLOAD=exporter", "MOLT_WORKLOAD_VERSION=1.0.0")
	platform.PrepareGroup(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	deadline := time.Now().Add(10 * time.Second)
	for child := 0; child == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no child started")
		}
		time.Sleep(20 * time.Millisecond)
		b, _ := os.ReadFile(childFile)
		fmt.Sscan(string(b), &child)
	}

	got, err := Unrecorded(home + "/")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Process.PID != cmd.Process.Pid || got[0].Name != "exporter" || got[0].Version != "1.0.0" {
		t.Fatalf("Unrecorded(%s) = %+v, want the instance pid %d, exporter 1.0.0, alone", home, got, cmd.Process.Pid)
	}
	if id, err := platform.IdentifyProcess(cmd.Process.Pid); err != nil || !got[0].Process.Same(id) {
		t.Errorf("found %+v, the process is %+v (%v)", got[0].Process, id, err)
	}
	if other, err := Unrecorded(t.TempDir()); err != nil || len(other) != 0 {
		t.Errorf("another home: %+v, %v; want none", other, err)
	}
}
