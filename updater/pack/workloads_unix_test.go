//go:build unix

package pack_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/moltfleet/molt/updater/pack"
)

// TestBuildWorkloadsRefusesSpecialFiles: a named pipe in a workload tree
// (as a device or a socket would be) fails the build, naming it; nothing
// is written.
func TestBuildWorkloadsRefusesSpecialFiles(t *testing.T) {
	_, sec := newKey(t)
	dir := workloadBuildDir(t)
	if err := syscall.Mkfifo(filepath.Join(dir, "linux_amd64", "workloads", "exporter", "conf", "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := buildOpts(dir, sec)
	opts.Out = filepath.Join(dir, "p.zip")
	err := pack.Build(opts)
	if err == nil || !strings.Contains(err.Error(), "linux_amd64/workloads/exporter/conf/pipe: not a regular file") {
		t.Fatalf("error %v, want the pipe refused", err)
	}
	if _, err := os.Stat(opts.Out); !os.IsNotExist(err) {
		t.Fatalf("a failed build wrote %s: %v", opts.Out, err)
	}
}
