package pack

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/moltfleet/molt/workload/spec"
)

func TestParseManifest(t *testing.T) {
	sha := strings.Repeat("a", 64)
	art := func(path string, size int64, sum string) string {
		return `{"path": "` + path + `", "size": ` + strconv.FormatInt(size, 10) + `, "sha256": "` + sum + `"}`
	}
	doc := func(version, floor, artifacts string) string {
		s := `{"version": "` + version + `", "released": "2026-01-02T03:04:05Z", `
		if floor != "" {
			s += `"floor": "` + floor + `", `
		}
		return s + `"artifacts": ` + artifacts + `}`
	}
	good := `{"linux/amd64": {"agent": ` + art("linux_amd64/molt-agent", 5, sha) + `}}`
	for _, tc := range []struct {
		name, in, err string
	}{
		{"minimal", doc("1.5.0", "", good), ""},
		{"floor equal to version", doc("1.5.0", "1.5.0", good), ""},
		{"url artifact", doc("1.5.0", "", `{"linux/amd64": {"agent": `+art("https://cdn.example.com/a", 5, sha)+`}}`), ""},
		{"unknown field", `{"version": "1.5.0", "extra": 1}`, `unknown field "extra"`},
		{"trailing data", doc("1.5.0", "", good) + ` {}`, "trailing data"},
		{"not json", `version: 1.5.0`, "invalid character"},
		{"bad version", doc("1.5.0/..", "", good), "is not a valid version"},
		{"dotdot version", doc("1..5", "", good), "is not a valid version"},
		{"bad floor", doc("1.5.0", "-1", good), `floor "-1" is not a valid version`},
		{"floor above version", doc("1.5.0", "1.6.0", good), "floor 1.6.0 is above version 1.5.0"},
		{"no artifacts", doc("1.5.0", "", `{}`), "no artifacts"},
		{"bad platform", doc("1.5.0", "", `{"linux": {"agent": `+art("a", 5, sha)+`}}`), "is not goos/goarch"},
		{"no agent", doc("1.5.0", "", `{"linux/amd64": {"supervisor": `+art("a", 5, sha)+`}}`), "no agent artifact"},
		{"unknown role", doc("1.5.0", "", `{"linux/amd64": {"agent": `+art("a", 5, sha)+`, "tool": `+art("b", 5, sha)+`}}`), `unknown role "tool"`},
		{"empty file", doc("1.5.0", "", `{"linux/amd64": {"agent": `+art("a", 0, sha)+`}}`), "size 0 out of range"},
		{"huge file", doc("1.5.0", "", `{"linux/amd64": {"agent": `+art("a", MaxArtifactSize+1, sha)+`}}`), "out of range"},
		{"bad sha", doc("1.5.0", "", `{"linux/amd64": {"agent": `+art("a", 5, strings.ToUpper(sha))+`}}`), "is not 64 lowercase hex digits"},
		{"escaping path", doc("1.5.0", "", `{"linux/amd64": {"agent": `+art("../a", 5, sha)+`}}`), `path "../a" escapes the pack`},
		{"absolute path", doc("1.5.0", "", `{"linux/amd64": {"agent": `+art("/a", 5, sha)+`}}`), "escapes the pack"},
		{"backslash path", doc("1.5.0", "", `{"linux/amd64": {"agent": `+art(`a\\\\b`, 5, sha)+`}}`), "escapes the pack"},
		{"unclean path", doc("1.5.0", "", `{"linux/amd64": {"agent": `+art("a/./b", 5, sha)+`}}`), "escapes the pack"},
		{"too big", `{"version": "` + strings.Repeat(" ", MaxManifestSize) + `"}`, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseManifest([]byte(tc.in))
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m.Version != "1.5.0" {
					t.Fatalf("version %q", m.Version)
				}
				return
			}
			if !errors.Is(err, ErrBadManifest) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want ErrBadManifest containing %q", err, tc.err)
			}
		})
	}
}

func TestManifestWorkloads(t *testing.T) {
	sha := strings.Repeat("a", 64)
	good := func() *Manifest {
		return &Manifest{
			Version: "1.5.0",
			Artifacts: map[string]map[string]Artifact{
				"linux/amd64": {RoleAgent: {Path: "linux_amd64/molt-agent", Size: 5, SHA256: sha}},
			},
			Workloads: map[string][]spec.Workload{"linux/amd64": {{
				Spec: spec.Spec{Name: "exporter", Command: "bin/exporter", Ready: spec.Ready{Probe: spec.Probe{TCP: "127.0.0.1:9100"}}},
				Files: []spec.File{
					{Path: "bin/exporter", Size: 7, SHA256: sha, Mode: "0755"},
					{Path: "conf/empty", Size: 0, SHA256: sha, Mode: "0644"},
				},
			}}},
		}
	}
	encode := func(m *Manifest) []byte {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	m, err := ParseManifest(encode(good()))
	if err != nil {
		t.Fatal(err)
	}
	ws := m.PlatformWorkloads("linux/amd64")
	if len(ws) != 1 || ws[0].Spec.Name != "exporter" || len(m.PlatformWorkloads("windows/amd64")) != 0 {
		t.Fatalf("workloads %+v", ws)
	}
	a := WorkloadArtifact("linux/amd64", "exporter", ws[0].Files[1])
	if a != (Artifact{Path: "linux_amd64/workloads/exporter/conf/empty", Size: 0, SHA256: sha}) {
		t.Fatalf("artifact %+v", a)
	}
	var paths []string
	for _, f := range m.Files() {
		paths = append(paths, f.Path)
	}
	if got := strings.Join(paths, " "); got != "linux_amd64/molt-agent linux_amd64/workloads/exporter/bin/exporter linux_amd64/workloads/exporter/conf/empty" {
		t.Fatalf("files %s", got)
	}

	for _, tc := range []struct {
		name    string
		edit    func(m *Manifest)
		err     string
		badSpec bool
	}{
		{"platform without artifacts", func(m *Manifest) {
			m.Workloads["darwin/arm64"] = m.Workloads["linux/amd64"]
		}, "workloads for darwin/arm64, which has no artifacts", false},
		{"command outside", func(m *Manifest) { m.Workloads["linux/amd64"][0].Spec.Command = "../x" }, `command "../x": not a clean relative path`, true},
		{"file outside", func(m *Manifest) { m.Workloads["linux/amd64"][0].Files[1].Path = "../../x" }, `file "../../x": not a clean relative path`, true},
		{"unknown check", func(m *Manifest) {
			m.Workloads["linux/amd64"][0].Spec.Ready = spec.Ready{}
		}, "ready: no check", true},
		{"twice", func(m *Manifest) {
			m.Workloads["linux/amd64"] = append(m.Workloads["linux/amd64"], m.Workloads["linux/amd64"][0])
		}, `workload "exporter": named twice`, true},
		{"command not executable", func(m *Manifest) { m.Workloads["linux/amd64"][0].Files[0].Mode = "0644" }, "is not executable", true},
		{"collides with an artifact", func(m *Manifest) {
			a := m.Artifacts["linux/amd64"][RoleAgent]
			a.Path = "linux_amd64/workloads/exporter/BIN/exporter"
			m.Artifacts["linux/amd64"][RoleAgent] = a
		}, "are the same file in the pack", false},
		{"more files than a pack holds", func(m *Manifest) {
			w := m.Workloads["linux/amd64"][0]
			for i := range spec.MaxFiles - 2 {
				w.Files = append(w.Files, spec.File{Path: "f/" + strconv.Itoa(i), Size: 1, SHA256: sha, Mode: "0644"})
			}
			w2 := w
			w2.Spec.Name = "second"
			m.Workloads["linux/amd64"] = []spec.Workload{w, w2}
		}, "16385 files, a pack holds at most 16382", false},
		{"windows device name", func(m *Manifest) {
			m.Artifacts["windows/amd64"] = map[string]Artifact{RoleAgent: {Path: "windows_amd64/molt-agent.exe", Size: 5, SHA256: sha}}
			w := m.Workloads["linux/amd64"][0]
			w.Files = append(append([]spec.File(nil), w.Files...), spec.File{Path: "conf/aux.yaml", Size: 1, SHA256: sha, Mode: "0644"})
			m.Workloads["windows/amd64"] = []spec.Workload{w}
		}, `windows/amd64: bad workload spec: workload "exporter": file "conf/aux.yaml": "aux.yaml" cannot be a file name on Windows`, true},
		{"artifact is a workload directory", func(m *Manifest) {
			a := m.Artifacts["linux/amd64"][RoleAgent]
			a.Path = "linux_amd64/workloads/exporter/bin"
			m.Artifacts["linux/amd64"][RoleAgent] = a
		}, "is both a file and a directory", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := good()
			tc.edit(m)
			_, err := ParseManifest(encode(m))
			if !errors.Is(err, ErrBadManifest) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want ErrBadManifest containing %q", err, tc.err)
			}
			if errors.Is(err, spec.ErrBadSpec) != tc.badSpec {
				t.Fatalf("errors.Is(%v, spec.ErrBadSpec) = %v", err, !tc.badSpec)
			}
		})
	}
}
