package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/updater/pack"
)

// openPTY returns a pseudo-terminal pair: what is written to master is
// typed on the terminal slave.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("pty number: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pty: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// On a terminal keygen asks for the passphrase twice, and build asks once.
func TestPackPassphrasePrompt(t *testing.T) {
	t.Setenv(packPassphraseEnv, "")
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	run := func(typed string, args ...string) (string, int) {
		master, slave := openPTY(t)
		if _, err := master.WriteString(typed); err != nil {
			t.Fatal(err)
		}
		root := newRootCmd()
		var out, errb strings.Builder
		root.SetOut(&out)
		root.SetErr(&errb)
		root.SetIn(slave)
		code := cli.Main(root, args, &errb)
		return out.String() + errb.String(), code
	}
	out, code := run("one\ntwo\n", "pack", "keygen", "--out", keys, "--kdf", "interactive")
	if code != 2 || !strings.Contains(out, "the passphrases do not match") {
		t.Fatalf("mismatched passphrases: exit %d: %s", code, out)
	}
	out, code = run("typed secret\ntyped secret\n", "pack", "keygen", "--out", keys, "--kdf", "interactive")
	if code != 0 || !strings.Contains(out, "Passphrase for the new key: ") || !strings.Contains(out, "Repeat the passphrase: ") {
		t.Fatalf("keygen on a terminal: exit %d: %s", code, out)
	}
	text, err := os.ReadFile(filepath.Join(keys, "molt.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pack.ParseSecretKey(text, "typed secret"); err != nil {
		t.Fatalf("the typed passphrase does not open the key: %v", err)
	}
	dist := fakeDist(t)
	out, code = run("typed secret\n", "pack", "build", "--version", "1.5.0", "--bin-dir", dist, "--skip-version-check",
		"--key", filepath.Join(keys, "molt.key"), "--out", filepath.Join(dir, "p.zip"))
	if code != 0 || !strings.Contains(out, "Passphrase for "+filepath.Join(keys, "molt.key")) || !strings.Contains(out, "built ") {
		t.Fatalf("build on a terminal: exit %d: %s", code, out)
	}
}
