// Package nspawn boots a real init system (systemd, or another one a root
// is made with) in a systemd-nspawn container, for tests of what molt
// installs on a host: the packages' units and scripts, and the supervisor
// as a service. A minimal Debian root is made once with mmdebstrap and
// cached; every boot runs on a throwaway overlay of it, so the cached root
// is never modified, and is powered off and removed without a trace.
//
// It needs root, Linux, systemd-nspawn (systemd-container), nsenter
// (util-linux) and, to make a root, mmdebstrap: Check says which is
// missing.
package nspawn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
)

// CacheVar names the directory the made roots are kept in, instead of
// DefaultCache.
const CacheVar = "MOLT_NSPAWN_CACHE"

// DefaultCache is where roots are kept between runs: outside any clone, so
// every checkout (and CI, where the machine keeps /var/cache) reuses them.
const DefaultCache = "/var/cache/molt-test"

// ErrUnavailable is what Check wraps when this machine cannot boot a
// container.
var ErrUnavailable = errors.New("nspawn: unavailable")

// Spec is a root to make: Debian Suite, minbase, with Include's packages.
type Spec struct {
	// Name names the cached root (nspawn-NAME); a changed Include needs a
	// new Name, since a cached root is never rebuilt.
	Name    string
	Suite   string
	Include []string
	// KillSignal is what systemd-nspawn sends the container's init to
	// power it off (--kill-signal); empty is its default for systemd.
	KillSignal string
	// Booted is a command that exits 0 inside once the init has finished
	// booting; nil is systemd's (systemctl is-system-running says running
	// or degraded).
	Booted []string
}

// Systemd is Debian 12 with systemd as its init.
var Systemd = Spec{Name: "bookworm", Suite: "bookworm", Include: []string{"systemd", "systemd-sysv", "dbus"}}

// OpenRC is Debian 12 booting sysvinit with OpenRC as its rc system (no
// systemd installed): the init molt-supervisor's own OpenRC script is for.
var OpenRC = Spec{
	Name: "bookworm-openrc", Suite: "bookworm", Include: []string{"sysvinit-core", "openrc", "procps"},
	// sysvinit ignores systemd's SIGRTMIN+3; SIGINT is its ctrlaltdel,
	// which Debian's inittab makes a shutdown -r: the container ends.
	KillSignal: "SIGINT",
	Booted:     []string{"sh", "-c", `[ "$(rc-status -r)" = default ] && ! rc-status -s | grep -q -e starting -e stopping`},
}

// CacheDir is the directory roots are cached in: $MOLT_NSPAWN_CACHE or
// DefaultCache.
func CacheDir() string {
	if d := os.Getenv(CacheVar); d != "" {
		return d
	}
	return DefaultCache
}

// Path is where s's root is (or will be) cached.
func (s Spec) Path() string { return filepath.Join(CacheDir(), "nspawn-"+s.Name) }

// Cached reports whether s's root has been made.
func (s Spec) Cached() bool {
	_, err := os.Stat(filepath.Join(s.Path(), "etc", "os-release"))
	return err == nil
}

// Check returns an error wrapping ErrUnavailable that names what this
// machine lacks to boot s (and, when it is not cached yet, to make it),
// or nil.
func Check(s Spec) error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("%w: needs Linux, not %s", ErrUnavailable, runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: needs root (systemd-nspawn, mounts)", ErrUnavailable)
	}
	tools := []string{"systemd-nspawn", "nsenter"}
	if !s.Cached() {
		tools = append(tools, "mmdebstrap")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s not found (apt-get install systemd-container mmdebstrap)", ErrUnavailable, tool)
		}
	}
	return nil
}

// Make returns the path of s's root, making it first when it is not
// cached (about 40-80 s; mmdebstrap's output goes to log). It is made in a
// temporary directory beside the cache and renamed into place, so a root
// is either complete or absent; concurrent callers (other test
// processes) wait for one another on a lock file.
func Make(ctx context.Context, s Spec, log io.Writer) (string, error) {
	dst := s.Path()
	if s.Cached() {
		return dst, nil
	}
	if err := os.MkdirAll(CacheDir(), 0o755); err != nil {
		return "", fmt.Errorf("make root %s: %w", s.Name, err)
	}
	lock, err := os.OpenFile(dst+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("make root %s: %w", s.Name, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("make root %s: lock: %w", s.Name, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if s.Cached() {
		return dst, nil
	}
	tmp, err := os.MkdirTemp(CacheDir(), ".nspawn-"+s.Name+".tmp-")
	if err != nil {
		return "", fmt.Errorf("make root %s: %w", s.Name, err)
	}
	defer os.RemoveAll(tmp)
	args := []string{"--variant=minbase", "--include=" + strings.Join(s.Include, ","), s.Suite, tmp}
	cmd := exec.CommandContext(ctx, "mmdebstrap", args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("make root %s: mmdebstrap %s: %w", s.Name, strings.Join(args, " "), err)
	}
	// MkdirTemp made it 0700; a root directory is 0755.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fmt.Errorf("make root %s: %w", s.Name, err)
	}
	os.RemoveAll(dst) // an incomplete leftover of a crashed older layout
	if err := os.Rename(tmp, dst); err != nil {
		return "", fmt.Errorf("make root %s: %w", s.Name, err)
	}
	return dst, nil
}
