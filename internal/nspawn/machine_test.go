package nspawn

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/testtool"
)

// A boot runs systemd as the container's PID 1, runs commands inside, and
// leaves nothing behind: the cached root unchanged, no process, no mount.
func TestBootRunPoweroff(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a container (-short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("booting a container with systemd-nspawn needs root")
	}
	if err := Check(Systemd); err != nil {
		testtool.Missing(t, "%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	base, err := Make(ctx, Systemd, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Boot(ctx, Systemd, t.TempDir())
	t.Cleanup(func() { _ = m.Poweroff(30 * time.Second) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.WaitRunning(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := m.Run(ctx, "cat", "/proc/1/comm"); err != nil || strings.TrimSpace(out) != "systemd" {
		t.Fatalf("PID 1 inside: %q %v", out, err)
	}
	if out, err := m.Run(ctx, "sh", "-c", "echo x > /etc/molt-nspawn-test"); err != nil {
		t.Fatalf("write inside: %q %v", out, err)
	}
	if _, err := os.Stat(m.Path("/etc/molt-nspawn-test")); err != nil {
		t.Fatalf("a file written inside is not at Path: %v", err)
	}
	if len(m.Processes()) < 2 {
		t.Fatalf("processes inside: %v", m.Processes())
	}
	if _, err := m.Run(ctx, "false"); err == nil {
		t.Fatal("Run of a failing command returned no error")
	}
	if err := m.Poweroff(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := m.Poweroff(30 * time.Second); err != nil {
		t.Fatalf("a second Poweroff: %v", err)
	}
	if _, err := os.Stat(filepath.Join(base, "etc", "molt-nspawn-test")); err == nil {
		t.Fatal("the cached root was modified")
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), m.Root) {
		t.Fatalf("%s still mounted", m.Root)
	}
}
