package pack_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/workload/spec"
)

const packYAML = `workloads:
  - name: exporter
    command: bin/exporter            # on windows/* also bin/exporter.exe
    args: [--listen, "127.0.0.1:9100"]
    ready: {http: "http://127.0.0.1:9100/metrics", within: 30s}
    live: {http: "http://127.0.0.1:9100/metrics", interval: 10s, failures: 3}
    stop: {signal: SIGTERM, grace: 10s}
`

// workloadBuildDir lays out what a release build of two platforms with one
// workload looks like, fake binaries included (SkipVersionCheck).
func workloadBuildDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write := func(rel string, data string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		// WriteFile's mode is filtered by the umask.
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("linux_amd64/molt-agent", "linux agent", 0o755)
	write("linux_amd64/molt-supervisor", "linux supervisor", 0o755)
	write("windows_amd64/molt-agent.exe", "MZ agent", 0o755)
	write("windows_amd64/molt-supervisor.exe", "MZ supervisor", 0o755)
	write("linux_amd64/workloads/exporter/bin/exporter", "#!/bin/sh\nexec sleep 1000\n", 0o755)
	write("linux_amd64/workloads/exporter/conf/default.yaml", "listen: 127.0.0.1:9100\n", 0o640)
	write("linux_amd64/workloads/exporter/conf/empty", "", 0o644)
	write("linux_amd64/workloads/exporter/lib/a/b/c.txt", "deep", 0o644)
	// Built on Unix for Windows: the .exe has no execute bit to rely on.
	write("windows_amd64/workloads/exporter/bin/exporter.exe", "MZ exporter", 0o644)
	write("windows_amd64/workloads/exporter/conf/default.yaml", "listen: 127.0.0.1:9100\n", 0o644)
	write("pack.yaml", packYAML, 0o644)
	return dir
}

func buildOpts(dir string, sec pack.SecretKey) pack.BuildOptions {
	at := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	return pack.BuildOptions{
		Version: testVersion, BinDir: dir, Key: sec, Out: filepath.Join(dir, "out", "p.zip"),
		SkipVersionCheck: true, Released: at, Now: func() time.Time { return at },
	}
}

// TestBuildWorkloadsRoundTrip: pack.yaml and the trees become the
// manifest's workloads (modes from the tree, the Windows command found
// with .exe), the pack verifies in full and extracts every file, and the
// same inputs build the same bytes.
func TestBuildWorkloadsRoundTrip(t *testing.T) {
	pub, sec := newKey(t)
	dir := workloadBuildDir(t)
	opts := buildOpts(dir, sec)
	if err := os.MkdirAll(filepath.Dir(opts.Out), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := pack.Build(opts); err != nil {
		t.Fatal(err)
	}
	r, err := pack.Open(opts.Out)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, err := r.VerifyAll([]pack.Key{pub})
	if err != nil {
		t.Fatal(err)
	}
	lin := m.PlatformWorkloads("linux/amd64")
	if len(lin) != 1 {
		t.Fatalf("linux workloads %+v", lin)
	}
	w := lin[0]
	if w.Spec.Command != "bin/exporter" || strings.Join(w.Spec.Args, " ") != "--listen 127.0.0.1:9100" ||
		w.Spec.Ready.HTTP != "http://127.0.0.1:9100/metrics" || w.Spec.Ready.Within.D() != 30*time.Second ||
		w.Spec.Live == nil || w.Spec.Live.Failures != 3 || w.Spec.Stop.Grace.D() != 10*time.Second {
		t.Fatalf("spec %+v", w.Spec)
	}
	var got []string
	for _, f := range w.Files {
		got = append(got, f.Path+":"+f.Mode)
	}
	if want := "bin/exporter:0755 conf/default.yaml:0644 conf/empty:0644 lib/a/b/c.txt:0644"; strings.Join(got, " ") != want {
		t.Fatalf("files %s, want %s", strings.Join(got, " "), want)
	}
	if f, _ := w.File("conf/empty"); f.Size != 0 || f.SHA256 != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("empty file %+v", f)
	}
	win := m.PlatformWorkloads("windows/amd64")
	if len(win) != 1 || win[0].Spec.Command != "bin/exporter.exe" {
		t.Fatalf("windows workloads %+v", win)
	}
	if f, _ := win[0].File("bin/exporter.exe"); f.Mode != "0755" {
		t.Fatalf("windows command %+v", f)
	}
	out := t.TempDir()
	if err := r.Extract(out); err != nil {
		t.Fatal(err)
	}
	for _, f := range w.Files {
		want, _ := os.ReadFile(filepath.Join(dir, "linux_amd64", "workloads", "exporter", filepath.FromSlash(f.Path)))
		b, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(spec.PackPath("linux/amd64", "exporter", f.Path))))
		if err != nil || !bytes.Equal(b, want) {
			t.Fatalf("%s: %q, %v", f.Path, b, err)
		}
	}
	first, _ := os.ReadFile(opts.Out)
	if err := pack.Build(opts); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(opts.Out); !bytes.Equal(first, again) {
		t.Fatal("the same inputs built another pack")
	}

	// --workloads names the specs file; platforms: restricts a workload.
	other := filepath.Join(t.TempDir(), "specs.yaml")
	if err := os.WriteFile(other, []byte(packYAML+"    platforms: [linux/amd64]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "windows_amd64", "workloads")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "pack.yaml")); err != nil {
		t.Fatal(err)
	}
	opts.Workloads = other
	if err := pack.Build(opts); err != nil {
		t.Fatal(err)
	}
	r2, err := pack.Open(opts.Out)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	m2, err := r2.VerifyAll([]pack.Key{pub})
	if err != nil {
		t.Fatal(err)
	}
	if len(m2.PlatformWorkloads("linux/amd64")) != 1 || len(m2.PlatformWorkloads("windows/amd64")) != 0 {
		t.Fatalf("workloads %+v", m2.Workloads)
	}
}

// TestBuildWorkloadsRefused: every bad spec or tree fails the build with
// one line naming the problem, and nothing is written.
func TestBuildWorkloadsRefused(t *testing.T) {
	_, sec := newKey(t)
	tree := "linux_amd64/workloads/exporter/"
	yamlWith := func(extra string) string {
		return strings.Replace(packYAML, "    stop:", extra+"    stop:", 1)
	}
	for _, tc := range []struct {
		name string
		yaml string // "" keeps packYAML
		edit func(t *testing.T, dir string)
		want string
	}{
		{"command outside the workload", strings.Replace(packYAML, "command: bin/exporter", "command: ../x", 1), nil,
			`linux/amd64: bad workload spec: workload "exporter": command "../x": not a clean relative path inside the workload's directory`},
		{"probe path with ..", yamlWith("    busy: {command: [../probe]}\n"), nil,
			`busy: command "../probe": a path inside the workload's directory, or an absolute one`},
		{"symlink in the tree", "", func(t *testing.T, dir string) {
			if err := os.Symlink("/etc/passwd", filepath.Join(dir, tree, "conf", "passwd")); err != nil {
				t.Skip("no symlinks here:", err)
			}
		}, tree + `conf/passwd: a symbolic link`},
		{"backslash in a name", "", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, tree, `conf\x`), nil, 0o644); err != nil {
				t.Skip("no backslash names here:", err)
			}
		}, tree + `conf\x: a name with a backslash or ".." is not allowed`},
		{"unknown check kind", strings.Replace(packYAML, "ready: {http:", "ready: {grpc:", 1), nil,
			`line 5: unknown key "grpc"`},
		{"check kind not allowed", yamlWith("    busy: {tcp: \"127.0.0.1:1\"}\n"), nil,
			`busy: check kind "tcp" is not allowed here: one of http, command`},
		{"unknown key", strings.Replace(packYAML, "    stop:", "    comand: x\n    stop:", 1), nil,
			`pack.yaml: line 7: unknown key "comand"`},
		{"unknown top-level key", "workload:\n  - name: exporter\n", nil, `line 1: unknown key "workload"`},
		{"missing command", strings.Replace(packYAML, "command: bin/exporter", "command: bin/nope", 1), nil,
			`command "bin/nope" is not one of the workload's files`},
		{"command not executable", "", func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Join(dir, tree, "bin", "exporter"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, `command "bin/exporter" is not executable (mode 0644)`},
		{"spec over its limit", strings.Replace(packYAML, `args: [--listen, "127.0.0.1:9100"]`, "args: ["+strings.Repeat(`"`+strings.Repeat("a", 4000)+`", `, 8)+"x]", 1), nil,
			`spec is larger than 16384 bytes`},
		{"duplicate names", packYAML + strings.TrimPrefix(packYAML, "workloads:\n"), nil,
			`workload "exporter" is named twice`},
		{"tree without a spec", "", func(t *testing.T, dir string) {
			if err := os.MkdirAll(filepath.Join(dir, "linux_amd64", "workloads", "sensor"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "linux_amd64/workloads/sensor has no spec in pack.yaml"},
		{"spec without a tree", "", func(t *testing.T, dir string) {
			if err := os.RemoveAll(filepath.Join(dir, "windows_amd64", "workloads")); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "pack.yaml"), []byte(packYAML+"    platforms: [linux/amd64, windows/amd64]\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, `pack.yaml: workload "exporter": no windows_amd64/workloads/exporter/ in`},
		{"bad name in pack.yaml", strings.Replace(packYAML, "name: exporter", "name: ../exporter", 1), nil,
			`workload "../exporter": not a workload name`},
		{"bad name", "", func(t *testing.T, dir string) {
			if err := os.MkdirAll(filepath.Join(dir, "linux_amd64", "workloads", "Big"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, `"Big" is not a workload name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := workloadBuildDir(t)
			if tc.yaml != "" {
				if err := os.WriteFile(filepath.Join(dir, "pack.yaml"), []byte(tc.yaml), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tc.edit != nil {
				tc.edit(t, dir)
			}
			opts := buildOpts(dir, sec)
			opts.Out = filepath.Join(dir, "p.zip")
			err := pack.Build(opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			if strings.Contains(err.Error(), "bad workload spec") && !errors.Is(err, spec.ErrBadSpec) {
				t.Fatalf("%v does not wrap spec.ErrBadSpec", err)
			}
			left, _ := filepath.Glob(filepath.Join(dir, "*.zip*"))
			left2, _ := filepath.Glob(filepath.Join(dir, ".p.zip*"))
			if len(left)+len(left2) != 0 {
				t.Fatalf("a failed build wrote %v %v", left, left2)
			}
		})
	}
}

// TestBuildWorkloadsPlatformSubset: a build restricted to platforms
// without a workload's tree leaves that workload out instead of failing.
func TestBuildWorkloadsPlatformSubset(t *testing.T) {
	pub, sec := newKey(t)
	dir := workloadBuildDir(t)
	if err := os.RemoveAll(filepath.Join(dir, "windows_amd64", "workloads")); err != nil {
		t.Fatal(err)
	}
	opts := buildOpts(dir, sec)
	opts.Out = filepath.Join(dir, "p.zip")
	opts.Platforms = []string{"windows/amd64"}
	if err := pack.Build(opts); err != nil {
		t.Fatal(err)
	}
	r, err := pack.Open(opts.Out)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, err := r.VerifyAll([]pack.Key{pub})
	if err != nil || len(m.Workloads) != 0 {
		t.Fatalf("%v, workloads %+v", err, m)
	}
	// Unrestricted, the same tree-less spec would be a mistake: refused.
	if err := os.RemoveAll(filepath.Join(dir, "linux_amd64", "workloads")); err != nil {
		t.Fatal(err)
	}
	opts.Platforms = nil
	if err := pack.Build(opts); err == nil || !strings.Contains(err.Error(), `workload "exporter": no platform directory has workloads/exporter/`) {
		t.Fatalf("spec without any tree: %v", err)
	}
}

// TestBuildWorkloadsManyFiles: a bundled runtime of thousands of files (over
// the 1024 entries packs were once limited to) builds, verifies and
// extracts.
func TestBuildWorkloadsManyFiles(t *testing.T) {
	pub, sec := newKey(t)
	dir := workloadBuildDir(t)
	lib := filepath.Join(dir, "linux_amd64", "workloads", "exporter", "runtime")
	const n = 1500
	for i := range n {
		d := filepath.Join(lib, fmt.Sprintf("pkg%02d", i%50))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("m%04d.py", i)), []byte(fmt.Sprintf("x = %d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts := buildOpts(dir, sec)
	opts.Out = filepath.Join(dir, "p.zip")
	if err := pack.Build(opts); err != nil {
		t.Fatal(err)
	}
	r, err := pack.Open(opts.Out)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, err := r.VerifyAll([]pack.Key{pub})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(m.PlatformWorkloads("linux/amd64")[0].Files); got != n+4 {
		t.Fatalf("%d files, want %d", got, n+4)
	}
	out := t.TempDir()
	if err := r.Extract(out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "linux_amd64", "workloads", "exporter", "runtime", "pkg07", "m1457.py"))
	if err != nil || string(b) != "x = 1457\n" {
		t.Fatalf("extracted %q, %v", b, err)
	}
}
