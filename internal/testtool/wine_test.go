//go:build linux

package testtool

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestWineMissing(t *testing.T) {
	t.Setenv("MOLT_WINE", filepath.Join(t.TempDir(), "no-wine64"))
	t.Setenv(RequireVar, "0")
	f := call(t, func(tb testing.TB) { Wine(tb) })
	if f.ended != "skip" || !strings.Contains(f.msg, "scripts/wine-setup.sh") {
		t.Fatalf("ended %q %q, want a skip naming scripts/wine-setup.sh", f.ended, f.msg)
	}
	t.Setenv(RequireVar, "1")
	if f := call(t, func(tb testing.TB) { Wine(tb) }); f.ended != "fail" {
		t.Fatalf("ended %q, want a failure when tools are required", f.ended)
	}
}

// TestWine runs a Windows program in the prefix Wine gives a test: a
// prefix of the test's own, whose wineserver does not hold the program's
// output open (the program's pipe closes when it exits, the server still
// runs), and which is gone, with every process of it, when the test ends.
func TestWine(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: boots Wine")
	}
	var prefix string
	t.Run("run", func(t *testing.T) {
		wine, env := Wine(t)
		prefix = envValue(env, "WINEPREFIX")
		setup := os.Getenv("WINEPREFIX")
		if setup == "" {
			setup = "/tmp/molt-wine"
		}
		if prefix == "" || filepath.Clean(prefix) == filepath.Clean(setup) {
			t.Fatalf("WINEPREFIX %q, want a prefix of the test's own, not %s", prefix, setup)
		}
		cmd := exec.Command(wine, "cmd", "/c", "echo", "hello")
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil || !strings.Contains(string(out), "hello") {
			t.Fatalf("cmd /c echo hello: %q, %v", out, err)
		}
		// Had the command started the server, its pipe would have stayed
		// open until the server ended, and the socket would be gone.
		if s, _ := filepath.Glob(filepath.Join(prefix, "tmp", "wine-*", "server-*", "socket")); len(s) != 1 {
			t.Errorf("wineserver sockets %q after the command, want the test's one still there", s)
		}
		if len(wineProcesses(prefix)) == 0 {
			t.Errorf("no process runs with WINEPREFIX=%s", prefix)
		}
	})
	if _, err := os.Stat(prefix); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the prefix after the test: %v, want it removed", err)
	}
	if ps := wineProcesses(prefix); len(ps) > 0 {
		t.Errorf("processes of the prefix left after the test: %q", ps)
	}
}

func envValue(env []string, key string) string {
	var v string
	for _, kv := range env {
		if s, ok := strings.CutPrefix(kv, key+"="); ok {
			v = s
		}
	}
	return v
}

// wineProcesses lists the command lines of the live processes whose
// environment names prefix as WINEPREFIX.
func wineProcesses(prefix string) []string {
	var found []string
	envs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range envs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("\x00WINEPREFIX="+prefix+"\x00")) && !bytes.HasPrefix(b, []byte("WINEPREFIX="+prefix+"\x00")) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
		found = append(found, strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return found
}

// TestClonePrefix: Wine's builtin files are shared with the cached
// prefix, everything else is a copy a test may change.
func TestClonePrefix(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "prefix")
	builtin := make([]byte, 0x80)
	copy(builtin, "MZ")
	copy(builtin[0x40:], "Wine builtin DLL")
	placeholder := bytes.Clone(builtin)
	copy(placeholder[0x40:], "Wine placeholder DLL")
	files := map[string][]byte{
		"system.reg":                                    []byte("WINE REGISTRY Version 2\n"),
		"drive_c/windows/win.ini":                       []byte("[windows]\n"),
		"drive_c/windows/system32/kernel32.dll":         builtin,
		"drive_c/windows/system32/notepad.exe":          placeholder,
		"drive_c/windows/system32/bcryptprimitives.dll": append([]byte("MZ"), make([]byte, 0x80)...),
		"drive_c/windows/system32/tiny.dll":             []byte("MZ"),
	}
	for name, b := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(src, "dosdevices"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../drive_c", filepath.Join(src, "dosdevices", "c:")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := clonePrefix(src, dst); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		t.Run(name, func(t *testing.T) {
			got, err := os.ReadFile(filepath.Join(dst, name))
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("the copy holds %q, %v; want %q", got, err, b)
			}
			a, _ := os.Stat(filepath.Join(src, name))
			c, _ := os.Stat(filepath.Join(dst, name))
			want := bytes.Equal(b, builtin) || bytes.Equal(b, placeholder)
			if os.SameFile(a, c) != want {
				t.Errorf("shared with the cached prefix: %v, want %v", os.SameFile(a, c), want)
			}
		})
	}
	if l, err := os.Readlink(filepath.Join(dst, "dosdevices", "c:")); err != nil || l != "../drive_c" {
		t.Errorf("dosdevices/c: links to %q (%v), want ../drive_c", l, err)
	}
}
