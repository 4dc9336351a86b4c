package agent

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/workload/spec"
)

func fileOf(content string) InstallFile {
	return InstallFile{Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content)), nil }}
}

func installOpts(h home.Home, v string) InstallOptions {
	return InstallOptions{
		Home: h, Version: v, Platform: "linux/amd64",
		Agent: fileOf("agent " + v), Supervisor: fileOf("supervisor " + v),
		Now: func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) },
	}
}

func actions(steps []InstallStep) []string {
	var out []string
	for _, s := range steps {
		out = append(out, s.Action+" "+s.Path)
	}
	return out
}

func TestInstallLayoutAndIdempotency(t *testing.T) {
	h := home.New(filepath.Join(t.TempDir(), "home"))
	steps, err := Install(installOpts(h, "1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"wrote versions/1.0.0", "wrote bin/molt-supervisor", "wrote state/active.json", "wrote agent.yaml"}
	if d := cmp.Diff(want, actions(steps)); d != "" {
		t.Errorf("first install (-want +got)\n%s", d)
	}
	for path, content := range map[string]string{
		h.AgentBinary("1.0.0"):      "agent 1.0.0",
		h.StagedSupervisor("1.0.0"): "supervisor 1.0.0",
		h.SupervisorBinary():        "supervisor 1.0.0",
		h.ConfigPath():              DefaultConfig,
	} {
		if b, err := os.ReadFile(path); err != nil || string(b) != content {
			t.Errorf("%s = %q, %v; want %q", path, b, err, content)
		}
	}
	if !h.IsValid("1.0.0") {
		t.Error("versions/1.0.0 has no .valid")
	}
	if a, err := h.ReadActive(); err != nil || a.Current != "1.0.0" || a.Trial != nil {
		t.Errorf("active = %+v, %v", a, err)
	}
	for _, d := range []string{h.LogsDir(), h.CacheDir()} {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			t.Errorf("%s not made: %v", d, err)
		}
	}

	// The agent made its identity and the operator edited agent.yaml.
	id, _, _ := EnsureIdentity(h, "fp", time.Now(), nil)
	os.WriteFile(h.ConfigPath(), []byte("name: edited\n"), 0o600)
	o := installOpts(h, "1.0.0")
	o.Config = []byte("name: other\n")
	steps, err = Install(o)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"kept versions/1.0.0", "kept bin/molt-supervisor", "kept state/active.json", "kept agent.yaml", "kept state/identity.json"}
	if d := cmp.Diff(want, actions(steps)); d != "" {
		t.Errorf("second install (-want +got)\n%s", d)
	}
	if b, _ := os.ReadFile(h.ConfigPath()); string(b) != "name: edited\n" {
		t.Errorf("agent.yaml replaced: %q", b)
	}
	if got, _ := ReadIdentity(h); got.ID != id.ID {
		t.Errorf("identity replaced")
	}
}

func TestInstallRepairsIncompleteVersion(t *testing.T) {
	h := home.New(t.TempDir())
	os.MkdirAll(h.VersionDir("1.0.0"), 0o755)
	os.WriteFile(h.AgentBinary("1.0.0"), []byte("half"), 0o755)
	if _, err := Install(installOpts(h, "1.0.0")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(h.AgentBinary("1.0.0")); string(b) != "agent 1.0.0" {
		t.Errorf("incomplete version kept: %q", b)
	}
}

func TestInstallRefusesOtherVersion(t *testing.T) {
	for _, tc := range []struct{ active, install, want string }{
		{"1.5.0", "1.4.0", "does not downgrade"},
		{"1.4.0", "1.5.0", "molt-agent upgrade"},
	} {
		h := home.New(t.TempDir())
		h.WriteActive(home.Active{Current: tc.active})
		before := tree(t, h.Dir)
		_, err := Install(installOpts(h, tc.install))
		if !errors.Is(err, ErrOtherVersion) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("active %s, install %s: err = %v, want ErrOtherVersion saying %q", tc.active, tc.install, err, tc.want)
		}
		if d := cmp.Diff(before, tree(t, h.Dir)); d != "" {
			t.Errorf("refused install changed the home:\n%s", d)
		}
	}
}

func TestInstallRefusesBadInput(t *testing.T) {
	h := home.New(t.TempDir())
	o := installOpts(h, "1.0.0")
	o.Config = []byte("servr: x\n")
	if _, err := Install(o); !errors.Is(err, ErrConfig) {
		t.Errorf("bad config: err = %v, want ErrConfig", err)
	}
	o = installOpts(h, "1.0.0")
	o.Agent.SHA256 = strings.Repeat("0", 64)
	if _, err := Install(o); !errors.Is(err, pack.ErrHashMismatch) {
		t.Errorf("hash mismatch: err = %v", err)
	}
	if h.IsValid("1.0.0") {
		t.Error("a version whose file did not match was marked valid")
	}
	if _, err := h.ReadActive(); !errors.Is(err, home.ErrNoActive) {
		t.Errorf("active.json written after a failed install: %v", err)
	}
}

// exporterWorkload is a workload of two files, one executable, whose
// contents Open serves; bad names a file served with other content.
func exporterWorkload(bad string) InstallWorkload {
	content := map[string]string{"bin/exporter": "#!/bin/sh\n", "conf/default.yaml": "listen: x\n"}
	w := spec.Workload{Spec: spec.Spec{Name: "exporter", Command: "bin/exporter", Ready: spec.Ready{Probe: spec.Probe{File: true}}}}
	for _, p := range []string{"bin/exporter", "conf/default.yaml"} {
		sum := sha256.Sum256([]byte(content[p]))
		mode := "0644"
		if strings.HasPrefix(p, "bin/") {
			mode = "0755"
		}
		w.Files = append(w.Files, spec.File{Path: p, Size: int64(len(content[p])), SHA256: fmt.Sprintf("%x", sum), Mode: mode})
	}
	return InstallWorkload{Workload: w, Open: func(f spec.File) (io.ReadCloser, error) {
		c := content[f.Path]
		if f.Path == bad {
			c = "tampered"
		}
		return io.NopCloser(strings.NewReader(c)), nil
	}}
}

func TestInstallWorkloads(t *testing.T) {
	h := home.New(filepath.Join(t.TempDir(), "home"))
	o := installOpts(h, "1.0.0")
	o.Workloads = []InstallWorkload{exporterWorkload("")}
	steps, err := Install(o)
	if err != nil {
		t.Fatal(err)
	}
	if got := steps[0].Detail; got != "molt-agent, molt-supervisor, workload exporter, .valid" {
		t.Errorf("first step detail = %q", got)
	}
	for p, mode := range map[string]os.FileMode{"bin/exporter": 0o755, "conf/default.yaml": 0o644} {
		fi, err := os.Stat(filepath.Join(h.WorkloadDir("1.0.0", "exporter"), filepath.FromSlash(p)))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, %v; want mode %v", p, fi, err, mode)
		}
	}
	b, err := os.ReadFile(h.WorkloadsFile("1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	in, err := spec.ParseInstalled(b)
	if err != nil || in.Version != "1.0.0" || in.Platform != "linux/amd64" || len(in.Workloads) != 1 || in.Workloads[0].Spec.Name != "exporter" {
		t.Errorf("workloads.json = %+v, %v", in, err)
	}
	var marker validMarker
	vb, _ := os.ReadFile(h.ValidPath("1.0.0"))
	if err := json.Unmarshal(vb, &marker); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"molt-agent", "workloads/exporter/bin/exporter", "workloads/exporter/conf/default.yaml", "workloads.json"} {
		if marker.Files[k] == "" {
			t.Errorf(".valid does not record %s: %v", k, marker.Files)
		}
	}
}

func TestInstallRefusesBadWorkloads(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    InstallWorkload
		want error
	}{
		{"a file that does not match", exporterWorkload("conf/default.yaml"), pack.ErrHashMismatch},
		{"a bad spec", func() InstallWorkload {
			w := exporterWorkload("")
			w.Workload.Files[0].Path = "../bin/exporter"
			return w
		}(), spec.ErrBadSpec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := home.New(filepath.Join(t.TempDir(), "home"))
			o := installOpts(h, "1.0.0")
			o.Workloads = []InstallWorkload{tc.w}
			if _, err := Install(o); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if h.IsValid("1.0.0") {
				t.Error("marked valid")
			}
			if _, err := h.ReadActive(); !errors.Is(err, home.ErrNoActive) {
				t.Errorf("active.json written after a failed install: %v", err)
			}
		})
	}
}

func TestUninstallKeepsLogsAndData(t *testing.T) {
	h := home.New(filepath.Join(t.TempDir(), "home"))
	if _, err := Install(installOpts(h, "1.0.0")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(h.LogsDir(), "agent-1.0.0.log"), []byte("log"), 0o644)
	os.MkdirAll(h.DataDir("exporter"), 0o750)
	os.WriteFile(filepath.Join(h.DataDir("exporter"), "db"), []byte("state"), 0o600)
	removed, err := Uninstall(h, false)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	if want := []string{"agent.yaml", "bin", "cache", "state", "versions"}; !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	if got := tree(t, h.Dir); len(got) != 5 || got[0] != "data/" || !strings.HasPrefix(got[2], "data/exporter/db ") ||
		got[3] != "logs/" || !strings.HasPrefix(got[4], "logs/agent-1.0.0.log ") {
		t.Errorf("left %v, want data/ and logs/", got)
	}
	if _, err := Uninstall(h, true); err == nil {
		t.Error("uninstall of a home with only logs/ did not refuse (not a home any more)")
	}

	h2 := home.New(filepath.Join(t.TempDir(), "home"))
	Install(installOpts(h2, "1.0.0"))
	os.MkdirAll(h2.DataDir("exporter"), 0o750)
	if _, err := Uninstall(h2, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h2.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("purge left the home: %v", err)
	}
}

func TestUninstallRefusesNonHome(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o644)
	if _, err := Uninstall(home.New(dir), true); err == nil {
		t.Fatal("uninstall of a directory that is no home did not refuse")
	}
	if _, err := os.Stat(filepath.Join(dir, "precious")); err != nil {
		t.Errorf("file removed: %v", err)
	}
}

// tree lists every path under dir (directories with a trailing slash, files
// with the SHA-256 of their content), to compare a home before and after.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		r, _ := filepath.Rel(dir, p)
		r = filepath.ToSlash(r)
		if d.IsDir() {
			out = append(out, r+"/")
			return nil
		}
		b, _ := os.ReadFile(p)
		out = append(out, fmt.Sprintf("%s %x", r, sha256.Sum256(b)))
		return nil
	})
	return out
}
