package updater

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/moltfleet/molt/updater/pack"
)

// mountTmpfs mounts a tmpfs of size bytes at a new directory, or skips
// the test with the reason it cannot.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; the injected free-space variant in TestRefusals covers the preflight")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v)", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// TestDiskFullTmpfs runs the updater on a real 1 MiB file system that
// cannot hold a 2 MiB artifact: the preflight refuses before downloading,
// and a write that fails mid-way (preflight fooled) leaves a clean error,
// an empty cache and the old version active and runnable.
func TestDiskFullTmpfs(t *testing.T) {
	const size = 2 << 20
	for _, tc := range []struct {
		name       string
		freeSpace  func(string) (uint64, error) // nil: the real one
		wantServed func(n int64) bool
	}{
		{"preflight", nil, func(n int64) bool { return n == 0 }},
		{"write fails mid-way", func(string) (uint64, error) { return 1 << 40, nil }, func(n int64) bool { return n > 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mnt := mountTmpfs(t, "1m")
			pub, sk := newKey(t)
			h := testHome(t, filepath.Join(mnt, "home"))
			srv := newServer(t)
			rel := newRelease(t, sk, "1.1.0", files("1.1.0", size, 100), nil)
			base := srv.publish(rel)
			o := testOptions(h, pub)
			o.FreeSpace = tc.freeSpace
			o.ReserveBytes = -1
			u := New(o)
			err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)})
			if !errors.Is(err, ErrNoSpace) {
				t.Fatalf("Prepare = %v, want ErrNoSpace", err)
			}
			t.Logf("refused: %v", err)
			if n := srv.servedBytes(srv.path(rel, pack.RoleAgent)); !tc.wantServed(n) {
				t.Errorf("server sent %d agent bytes", n)
			}
			if c := cacheEntries(t, h); len(c) != 0 {
				t.Errorf("cache not cleaned: %v", c)
			}
			if _, err := os.Stat(h.VersionDir("1.1.0")); !os.IsNotExist(err) {
				t.Errorf("versions/1.1.0 exists: %v", err)
			}
			if a, _ := h.ReadActive(); a.Current != "1.0.0" || a.Trial != nil {
				t.Errorf("active %+v", a)
			}
			checkHomeInvariants(t, h)
		})
	}
}
