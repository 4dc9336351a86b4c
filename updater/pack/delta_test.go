package pack_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moltfleet/molt/updater/delta"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/updater/pack/packtest"
)

// deltaBuildDirs lays out two releases of workloadBuildDir's tree whose
// binaries and the exporter (the same bytes on both platforms) are 64 KiB
// that differ by a few bytes between the two; the small files are alike.
func deltaBuildDirs(t *testing.T) (v1, v2 string) {
	r := rand.New(rand.NewPCG(7, 8))
	v1, v2 = workloadBuildDir(t), workloadBuildDir(t)
	for _, rel := range []string{"linux_amd64/molt-agent", "linux_amd64/molt-supervisor", "windows_amd64/molt-agent.exe",
		"windows_amd64/molt-supervisor.exe", "linux_amd64/workloads/exporter/bin/exporter"} {
		b := make([]byte, 64<<10)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		b2 := bytes.Clone(b)
		copy(b2[30000:], "one line changed")
		for dir, data := range map[string][]byte{v1: b, v2: b2} {
			p := filepath.Join(dir, filepath.FromSlash(rel))
			if err := os.WriteFile(p, data, 0o755); err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(rel, "bin/exporter") {
				if err := os.WriteFile(filepath.Join(dir, "windows_amd64/workloads/exporter/bin/exporter.exe"), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return v1, v2
}

func TestBuildDeltas(t *testing.T) {
	pub, sec := newKey(t)
	d1, d2 := deltaBuildDirs(t)
	o1 := buildOpts(d1, sec)
	o1.Version, o1.Out = "1.0.0", filepath.Join(t.TempDir(), "1.zip")
	if err := pack.Build(o1); err != nil {
		t.Fatal(err)
	}
	o2 := buildOpts(d2, sec)
	o2.Version, o2.DeltaFrom, o2.Out = "1.0.1", []string{o1.Out}, filepath.Join(t.TempDir(), "2.zip")
	if err := pack.Build(o2); err != nil {
		t.Fatal(err)
	}
	r1, err := pack.Open(o1.Out)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	m1, err := r1.VerifyAll([]pack.Key{pub})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := pack.Open(o2.Out)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	m2, err := r2.VerifyAll([]pack.Key{pub})
	if err != nil {
		t.Fatalf("the pack with patches does not verify: %v", err)
	}
	old := map[string]pack.Artifact{}
	for _, a := range m1.Files() {
		old[a.Path] = a
	}
	own := map[string]pack.Artifact{}
	for _, a := range m2.Files() {
		own[a.Path] = a
	}
	var targets []string
	for _, p := range m2.Patches() {
		targets = append(targets, p.Target)
		if p.From != "1.0.0" || p.BaseSHA256 != old[p.Target].SHA256 || p.ResultSHA256 != own[p.Target].SHA256 {
			t.Errorf("patch %+v: want from 1.0.0, base %s, result %s", p, old[p.Target].SHA256, own[p.Target].SHA256)
		}
		if p.Size > own[p.Target].Size/20 {
			t.Errorf("patch for %s is %d bytes of %d", p.Target, p.Size, own[p.Target].Size)
		}
		// The patch applies to the old file and gives the new one.
		base, patch, want := readArtifact(t, r1, old[p.Target]), readArtifact(t, r2, p.Artifact), readArtifact(t, r2, own[p.Target])
		var out bytes.Buffer
		if _, err := delta.Apply(bytes.NewReader(base), int64(len(base)), bytes.NewReader(patch), int64(len(patch)), &out, int64(len(want))); err != nil || !bytes.Equal(out.Bytes(), want) {
			t.Errorf("patch for %s does not make it: %v", p.Target, err)
		}
	}
	want := "linux_amd64/molt-agent linux_amd64/molt-supervisor linux_amd64/workloads/exporter/bin/exporter " +
		"windows_amd64/molt-agent.exe windows_amd64/molt-supervisor.exe windows_amd64/workloads/exporter/bin/exporter.exe"
	if got := strings.Join(targets, " "); got != want {
		t.Errorf("patched files:\n%s\nwant (small files get none):\n%s", got, want)
	}
	// The exporter is the same on both platforms: its patch is stored once.
	zr, err := zip.OpenReader(o2.Out)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	n := 0
	for _, f := range zr.File {
		if strings.HasPrefix(f.Name, pack.DeltaDir+"/") {
			n++
			if f.Method != zip.Store {
				t.Errorf("%s is compressed again", f.Name)
			}
		}
	}
	if n != 5 {
		t.Errorf("%d patch files in the pack, want 5", n)
	}
}

func readArtifact(t *testing.T, r *pack.Reader, a pack.Artifact) []byte {
	t.Helper()
	rc, err := r.OpenArtifact(a)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestDeltasReadByOlderAgents: a manifest with patches decodes, with
// unknown fields refused, into the structure agents built before patches
// have, so they still take the pack (and download the full files).
func TestDeltasReadByOlderAgents(t *testing.T) {
	type artifact struct {
		Path   string `json:"path"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	}
	type oldDelta struct {
		From      string              `json:"from"`
		Artifacts map[string]artifact `json:"artifacts,omitempty"`
	}
	type oldManifest struct {
		Version   string                         `json:"version"`
		Released  string                         `json:"released"`
		Floor     string                         `json:"floor,omitempty"`
		Artifacts map[string]map[string]artifact `json:"artifacts"`
		Deltas    map[string]oldDelta            `json:"deltas,omitempty"`
		Workloads json.RawMessage                `json:"workloads,omitempty"`
	}
	m := withPatch(t, func(*pack.Manifest) {})
	dec := json.NewDecoder(bytes.NewReader(packtest.Encode(t, m)))
	dec.DisallowUnknownFields()
	var old oldManifest
	if err := dec.Decode(&old); err != nil {
		t.Fatalf("an agent before patches refuses the manifest: %v", err)
	}
	if len(old.Deltas["1.0.0"].Artifacts) != 1 {
		t.Fatalf("deltas decoded as %+v", old.Deltas)
	}
}

// withPatch is a manifest of version 1.0.1 with one patch for the linux
// agent from 1.0.0, changed by edit.
func withPatch(t *testing.T, edit func(*pack.Manifest)) *pack.Manifest {
	m := packtest.Manifest("1.0.1", packtest.SmallFiles())
	target := m.Artifacts["linux/amd64"][pack.RoleAgent]
	base := strings.Repeat("b", 64)
	m.Deltas = map[string]pack.Delta{"1.0.0": {From: "1.0.0", Artifacts: map[string]pack.Artifact{
		target.Path: {Path: pack.PatchPath(base, target.SHA256), Size: 100, SHA256: strings.Repeat("c", 64)},
	}}}
	edit(m)
	return m
}

func TestDeltasChecked(t *testing.T) {
	agent := packtest.ArtifactPath("linux/amd64", pack.RoleAgent)
	patch := func(m *pack.Manifest) pack.Artifact { return m.Deltas["1.0.0"].Artifacts[agent] }
	set := func(m *pack.Manifest, target string, a pack.Artifact) {
		m.Deltas["1.0.0"] = pack.Delta{From: "1.0.0", Artifacts: map[string]pack.Artifact{target: a}}
	}
	for _, tc := range []struct {
		name, want string
		edit       func(*pack.Manifest)
	}{
		{"good", "", func(*pack.Manifest) {}},
		{"from differs from its key", `the key and "from"`, func(m *pack.Manifest) {
			d := m.Deltas["1.0.0"]
			d.From = "0.9.0"
			m.Deltas["1.0.0"] = d
		}},
		{"from the pack's own version", "from 1.0.1, the pack's own version", func(m *pack.Manifest) {
			m.Deltas["1.0.1"] = pack.Delta{From: "1.0.1", Artifacts: m.Deltas["1.0.0"].Artifacts}
			delete(m.Deltas, "1.0.0")
		}},
		{"no patches", "no patches", func(m *pack.Manifest) { m.Deltas["1.0.0"] = pack.Delta{From: "1.0.0"} }},
		{"target not in the pack", `"linux_amd64/nothing" is not a file of the pack`, func(m *pack.Manifest) { set(m, "linux_amd64/nothing", patch(m)) }},
		{"patch path", "is not deltas/<base sha256>-<result sha256>.patch", func(m *pack.Manifest) {
			a := patch(m)
			a.Path = "linux_amd64/patch"
			set(m, agent, a)
		}},
		{"escaping patch path", "escapes the pack", func(m *pack.Manifest) {
			a := patch(m)
			a.Path = "../" + a.Path
			set(m, agent, a)
		}},
		{"result is not the target", "the patch makes", func(m *pack.Manifest) {
			a := patch(m)
			a.Path = pack.PatchPath(strings.Repeat("b", 64), strings.Repeat("d", 64))
			set(m, agent, a)
		}},
		{"empty patch", "size 0 out of range", func(m *pack.Manifest) {
			a := patch(m)
			a.Size = 0
			set(m, agent, a)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pack.ParseManifest(packtest.Encode(t, withPatch(t, tc.edit)))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, pack.ErrBadManifest) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseManifest = %v, want ErrBadManifest with %q", err, tc.want)
			}
		})
	}
}

func TestBuildDeltasRefuses(t *testing.T) {
	_, sec := newKey(t)
	d1, _ := deltaBuildDirs(t)
	o1 := buildOpts(d1, sec)
	o1.Out = filepath.Join(t.TempDir(), "1.zip")
	if err := pack.Build(o1); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		from []string
		want string
	}{
		{"same version", []string{o1.Out}, "it is version " + testVersion + ", the pack being built"},
		{"missing", []string{filepath.Join(d1, "nope.zip")}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := buildOpts(d1, sec)
			o.Out = filepath.Join(t.TempDir(), "p.zip")
			o.DeltaFrom = tc.from
			err := pack.Build(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build = %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(o.Out); err == nil {
				t.Error("a failed build left a pack")
			}
		})
	}
}
