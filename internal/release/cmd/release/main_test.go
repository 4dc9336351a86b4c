package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moltfleet/molt/internal/cli"
)

func runRelease(t *testing.T, env map[string]string, args ...string) (string, int) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	code := cli.Main(root, args, &out)
	return out.String(), code
}

// fakeBin lays out stand-in binaries for linux/amd64 in build.sh's layout.
func fakeBin(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	for _, prog := range []string{"molt", "molt-agent", "molt-supervisor"} {
		p := filepath.Join(bin, "linux_amd64", prog)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("stand-in "+prog), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

func TestReleaseCommand(t *testing.T) {
	root, _ := filepath.Abs("../../../..")
	bin := fakeBin(t)
	base := []string{"--version", "1.5.0", "--bin-dir", bin, "--root", root, "--platform", "linux/amd64"}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"no version", nil, []string{"--bin-dir", bin, "--out", "x"}, 2, "--version, --bin-dir and --out are required"},
		{"no key", map[string]string{"MOLT_RELEASE_KEY": ""}, append(base, "--out", t.TempDir()), 2, "no release key: pass --key FILE or set MOLT_RELEASE_KEY"},
		{"bad platform", nil, []string{"--version", "1.5.0", "--bin-dir", bin, "--out", "x", "--platform", "linux", "--unsigned"}, 2, "want GOOS/GOARCH"},
		{"missing key file", nil, append(base, "--out", t.TempDir(), "--key", "/nonexistent/molt.key"), 2, "--key /nonexistent/molt.key"},
		{"unsigned", map[string]string{"MOLT_RELEASE_KEY": ""}, append(base, "--out", t.TempDir(), "--unsigned"), 0, "SHA256SUMS is NOT signed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runRelease(t, tc.env, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, want %d and %q:\n%s", code, tc.code, tc.want, out)
			}
			if tc.code == 0 {
				for _, w := range []string{"linux/amd64", "molt-supervisor", "molt-agent_1.5.0_amd64.deb", "molt_1.5.0_linux_amd64.tar.gz"} {
					if !strings.Contains(out, w) {
						t.Errorf("output lacks %q:\n%s", w, out)
					}
				}
			}
		})
	}
}
