//go:build linux

package testtool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// WineCacheVar names the directory the booted Wine prefix is kept in,
// instead of /var/cache/molt-test (root) or the user's cache directory.
const WineCacheVar = "MOLT_WINE_CACHE"

const wineHow = `run eval "$(scripts/wine-setup.sh)" to run the Windows tests`

// winePersist is how long the test's wineserver outlives its last Windows
// process. It must cover the longest gap between two Wine commands of a
// test (a Go build): a server that went away is started again by the next
// command, which then waits for the whole Wine session to end (see Wine).
// It also bounds how long a test binary that was killed leaves Wine
// behind.
const winePersist = 180 * time.Second

// Wine returns the Wine binary scripts/wine-setup.sh prepared (MOLT_WINE,
// or /usr/lib/wine/wine64) and the environment to run Go's Windows
// binaries with it in a Wine prefix of t's own; it ends t through Missing
// when Wine or the prepared prefix ($WINEPREFIX, or /tmp/molt-wine, whose
// ProcessPrng DLL Go's binaries need) is not there.
//
// The prefix is a copy of one booted once per machine and cached (see
// WineCacheVar), keyed by Wine's version and the DLL, so every test starts
// from a freshly booted Windows with no services or programs of another
// test. Its wineserver is started before the test's first command, with
// its output not the test's: a server that a Wine command starts itself
// inherits that command's stderr, and so do the service manager and the
// drivers it boots, so the command's output pipe stays open until the
// whole session has ended, seconds after the program itself. When t ends,
// every Windows process of the prefix is killed, then the prefix removed.
func Wine(t testing.TB) (wine string, env []string) {
	t.Helper()
	return StartWine(t)()
}

// StartWine is Wine with the prefix copied and booted (3-7 s) in the
// background while the test does other work, such as building its Windows
// binaries: it checks for Wine at once, and the function it returns waits
// for the boot and returns what Wine does. Call that function from t's
// goroutine; the boot's failure ends t there.
func StartWine(t testing.TB) func() (wine string, env []string) {
	t.Helper()
	wine := os.Getenv("MOLT_WINE")
	if wine == "" {
		wine = "/usr/lib/wine/wine64"
	}
	if _, err := os.Stat(wine); err != nil {
		Missing(t, "wine64 not found at %s: %s", wine, wineHow)
	}
	setup := os.Getenv("WINEPREFIX")
	if setup == "" {
		setup = "/tmp/molt-wine"
	}
	shim, err := os.ReadFile(filepath.Join(setup, "drive_c", "windows", "system32", "bcryptprimitives.dll"))
	if err != nil {
		Missing(t, "Wine prefix %s is not prepared (no bcryptprimitives.dll): %s", setup, wineHow)
	}
	server, err := wineserverFor(wine)
	if err != nil {
		Missing(t, "%v: %s", err, wineHow)
	}
	prefix, err := os.MkdirTemp("", "molt-wine-")
	if err != nil {
		t.Fatal(err)
	}
	env := wineEnv(prefix)
	booted := make(chan struct{})
	var bootErr error
	go func() {
		defer close(booted)
		bootErr = bootWine(wine, server, shim, prefix, env)
	}()
	t.Cleanup(func() {
		<-booted
		if err := stopWine(server, env); err != nil {
			t.Errorf("stop Wine in %s: %v", prefix, err)
		}
		if err := os.RemoveAll(prefix); err != nil {
			t.Errorf("remove the Wine prefix: %v", err)
		}
	})
	return func() (string, []string) {
		t.Helper()
		<-booted
		if bootErr != nil {
			t.Fatal(bootErr)
		}
		return wine, env
	}
}

// bootWine makes prefix a copy of the cached booted prefix and starts its
// session: a wineserver whose stdin, stdout and stderr are /dev/null (see
// Wine), then a first program, which boots the session (wineboot, the
// service manager, the drivers) with the same /dev/null.
func bootWine(wine, server string, shim []byte, prefix string, env []string) error {
	booted, err := bootedPrefix(wine, shim)
	if err != nil {
		return err
	}
	if err := clonePrefix(booted, prefix); err != nil {
		return fmt.Errorf("copy the Wine prefix: %w", err)
	}
	if err := os.Mkdir(filepath.Join(prefix, "tmp"), 0o700); err != nil {
		return fmt.Errorf("copy the Wine prefix: %w", err)
	}
	srv := exec.Command(server, "-p"+strconv.Itoa(int(winePersist/time.Second)))
	srv.Env = env
	if err := srv.Run(); err != nil {
		return fmt.Errorf("start wineserver for %s: %w", prefix, err)
	}
	if err := runQuiet(wine, env, 2*time.Minute, "cmd", "/c", "exit"); err != nil {
		return fmt.Errorf("boot Wine in %s: %w", prefix, err)
	}
	return nil
}

// wineEnv is the environment of a Wine command in prefix. Wine's own
// temporary directories (wine-XXXXXX, the server's socket) go into the
// prefix, so they go with it.
func wineEnv(prefix string) []string {
	return append(os.Environ(), "WINEPREFIX="+prefix, "TMPDIR="+filepath.Join(prefix, "tmp"),
		"WINEDEBUG=-all", "WINEDLLOVERRIDES=mscoree,mshtml=", "DISPLAY=")
}

// wineserverFor finds the wineserver that goes with wine: beside it, as
// Debian installs them, or on PATH.
func wineserverFor(wine string) (string, error) {
	for _, name := range []string{"wineserver", "wineserver64"} {
		p := filepath.Join(filepath.Dir(wine), name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath("wineserver"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("wineserver not found beside %s nor on PATH", wine)
}

// runQuiet runs wine or wineserver with no input or output, within d.
func runQuiet(bin string, env []string, d time.Duration, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s %v: still running after %v", filepath.Base(bin), args, d)
		}
		return fmt.Errorf("%s %v: %w", filepath.Base(bin), args, err)
	}
	return nil
}

// stopWine kills every process of the prefix env names and waits for its
// wineserver to be gone.
func stopWine(server string, env []string) error {
	if err := runQuiet(server, env, time.Minute, "-k"); err != nil {
		// -k exits 1 when no server runs: already stopped.
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return err
		}
	}
	return runQuiet(server, env, time.Minute, "-w")
}

// WineCacheDir is the directory the booted prefix is cached in:
// $MOLT_WINE_CACHE, /var/cache/molt-test for root (beside the nspawn
// roots), else molt-test in the user's cache directory.
func WineCacheDir() (string, error) {
	if d := os.Getenv(WineCacheVar); d != "" {
		return d, nil
	}
	if os.Geteuid() == 0 {
		return "/var/cache/molt-test", nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("wine cache: %w (set %s)", err, WineCacheVar)
	}
	return filepath.Join(d, "molt-test"), nil
}

// bootedPrefix returns the cached prefix booted by this wine with this
// ProcessPrng DLL in it, booting it first when there is none (10-20 s).
// It is made in a temporary directory beside the cache and renamed into
// place, so it is complete or absent; concurrent test processes wait for
// one another on a lock file. A cached prefix is never modified.
func bootedPrefix(wine string, shim []byte) (string, error) {
	version, err := exec.Command(wine, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", wine, err)
	}
	sum := sha256.New()
	sum.Write(bytes.TrimSpace(version))
	sum.Write([]byte{0})
	sum.Write(shim)
	cache, err := WineCacheDir()
	if err != nil {
		return "", err
	}
	dst := filepath.Join(cache, "wine-"+hex.EncodeToString(sum.Sum(nil))[:16])
	booted := func() bool {
		_, err := os.Stat(filepath.Join(dst, "system.reg"))
		return err == nil
	}
	if booted() {
		return dst, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", fmt.Errorf("wine cache: %w", err)
	}
	lock, err := os.OpenFile(dst+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("wine cache: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("wine cache: lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if booted() {
		return dst, nil
	}
	tmp, err := os.MkdirTemp(cache, "."+filepath.Base(dst)+".tmp-")
	if err != nil {
		return "", fmt.Errorf("wine cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	prefix := filepath.Join(tmp, "prefix")
	env := wineEnv(prefix)
	if err := os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755); err != nil {
		return "", fmt.Errorf("wine cache: %w", err)
	}
	if err := runQuiet(wine, env, 5*time.Minute, "wineboot", "--init"); err != nil {
		return "", fmt.Errorf("boot a Wine prefix: %w", err)
	}
	// The registry is written when the server ends.
	server, err := wineserverFor(wine)
	if err != nil {
		return "", err
	}
	if err := runQuiet(server, env, 2*time.Minute, "-w"); err != nil {
		return "", fmt.Errorf("boot a Wine prefix: %w", err)
	}
	if _, err := os.Stat(filepath.Join(prefix, "system.reg")); err != nil {
		return "", fmt.Errorf("boot a Wine prefix: wineboot made no registry: %w", err)
	}
	if err := os.WriteFile(filepath.Join(prefix, "drive_c", "windows", "system32", "bcryptprimitives.dll"), shim, 0o644); err != nil {
		return "", fmt.Errorf("wine cache: %w", err)
	}
	// The session's temporary directory, and the file naming it, belong
	// to the session that booted it.
	for _, p := range []string{"tmp", "wineserver"} {
		if err := os.RemoveAll(filepath.Join(prefix, p)); err != nil {
			return "", fmt.Errorf("wine cache: %w", err)
		}
	}
	if err := os.Chmod(prefix, 0o755); err != nil {
		return "", fmt.Errorf("wine cache: %w", err)
	}
	if err := os.Rename(prefix, dst); err != nil {
		return "", fmt.Errorf("wine cache: %w", err)
	}
	return dst, nil
}

// clonePrefix copies the booted prefix src to dst. Wine's builtin DLLs and
// programs (700 MB of the 710) are hard links: Wine only reads them, and
// only wineboot --update rewrites them, which a prefix cached per Wine
// version never needs. Everything else (the registry, win.ini, ...) is a
// copy, since Wine rewrites those in place. Across file systems, all is
// copied.
func clonePrefix(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if rel == "." {
				return nil
			}
			return os.Mkdir(to, info.Mode().Perm())
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case !d.Type().IsRegular():
			return nil
		}
		if builtin, err := isWineBuiltin(p); err != nil {
			return err
		} else if builtin && os.Link(p, to) == nil {
			return nil
		}
		return copyFile(p, to, info.Mode().Perm())
	})
}

// isWineBuiltin reports whether p is one of Wine's own PE files, which
// carry "Wine builtin DLL" (or "Wine placeholder DLL") after the DOS
// header.
func isWineBuiltin(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	head := make([]byte, 0x60)
	if _, err := io.ReadFull(f, head); err != nil {
		return false, nil
	}
	mark := head[0x40:]
	return bytes.HasPrefix(mark, []byte("Wine builtin DLL")) || bytes.HasPrefix(mark, []byte("Wine placeholder DLL")), nil
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
