// Package packtest writes packs for tests of everything that reads them:
// well-formed ones from small in-memory files, and one of each kind of bad
// pack a reader must refuse.
package packtest

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/workload/spec"
)

// Files maps a platform ("linux/amd64") to role ("agent", "supervisor")
// to file content.
type Files map[string]map[string][]byte

// SmallFiles is a two-platform set of tiny fake binaries.
func SmallFiles() Files {
	return Files{
		"linux/amd64": {
			pack.RoleAgent:      []byte("linux agent binary\n"),
			pack.RoleSupervisor: []byte("linux supervisor binary\n"),
		},
		"windows/amd64": {
			pack.RoleAgent:      []byte("MZ windows agent\n"),
			pack.RoleSupervisor: []byte("MZ windows supervisor\n"),
		},
	}
}

// Entry is one zip entry as written, possibly malformed on purpose.
type Entry struct {
	Name    string
	Data    []byte
	Symlink bool
	// DeclaredSize, when not zero, is written as the entry's uncompressed
	// size whatever Data holds (a lying header).
	DeclaredSize uint64
}

// ArtifactPath is where a platform's role file lives in a pack.
func ArtifactPath(platform, role string) string {
	goos, goarch, _ := strings.Cut(platform, "/")
	exe := ""
	if goos == "windows" {
		exe = ".exe"
	}
	return goos + "_" + goarch + "/molt-" + role + exe
}

// Manifest describes files as the pack of version.
func Manifest(version string, files Files) *pack.Manifest {
	m := &pack.Manifest{
		Version:   version,
		Released:  time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Artifacts: map[string]map[string]pack.Artifact{},
	}
	for plat, roles := range files {
		m.Artifacts[plat] = map[string]pack.Artifact{}
		for role, data := range roles {
			sum := sha256.Sum256(data)
			m.Artifacts[plat][role] = pack.Artifact{
				Path: ArtifactPath(plat, role), Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
			}
		}
	}
	return m
}

// Encode renders m as manifest.json.
func Encode(t testing.TB, m *pack.Manifest) []byte {
	t.Helper()
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// Entries lists a complete pack: manifest, signature, then the files.
func Entries(manifest, sig []byte, files Files) []Entry {
	es := []Entry{{Name: pack.ManifestName, Data: manifest}, {Name: pack.SignatureName, Data: sig}}
	for plat, roles := range files {
		for role, data := range roles {
			es = append(es, Entry{Name: ArtifactPath(plat, role), Data: data})
		}
	}
	return es
}

// WriteZip writes entries as a zip file at path, exactly as given.
func WriteZip(t testing.TB, path string, entries []Entry) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for _, e := range entries {
		hdr := &zip.FileHeader{Name: e.Name, Method: zip.Store}
		if e.Symlink {
			hdr.SetMode(os.ModeSymlink | 0o777)
		}
		hdr.CRC32 = crc32.ChecksumIEEE(e.Data)
		hdr.CompressedSize64 = uint64(len(e.Data))
		hdr.UncompressedSize64 = uint64(len(e.Data))
		if e.DeclaredSize != 0 {
			hdr.UncompressedSize64 = e.DeclaredSize
		}
		w, err := zw.CreateRaw(hdr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// Good writes a valid pack of files at version, signed by sk, to path.
func Good(t testing.TB, path, version string, files Files, sk pack.SecretKey) *pack.Manifest {
	t.Helper()
	return GoodWithWorkloads(t, path, version, files, nil, sk)
}

// Workload is one workload to put in a pack: its spec and its files by
// path inside the workload's directory.
type Workload struct {
	Spec  spec.Spec
	Files map[string][]byte
	// Modes overrides a file's mode ("0755"); by default the spec's
	// command is "0755" and every other file "0644".
	Modes map[string]string
}

// Workloads maps a platform ("linux/amd64") to its workloads.
type Workloads map[string][]Workload

// ShellWorkload is a workload of one shell script, bin/run.sh, whose
// ready check passes once it has run for a second: enough for tests of
// whatever carries, stages or runs workloads.
func ShellWorkload(name, script string) Workload {
	return Workload{
		Spec: spec.Spec{
			Name:    name,
			Command: "bin/run.sh",
			Ready:   spec.Ready{Probe: spec.Probe{Running: spec.Duration(time.Second)}},
		},
		Files: map[string][]byte{"bin/run.sh": []byte(script)},
	}
}

// Manifest returns w as the manifest carries it, files sorted by path.
func (w Workload) Manifest() spec.Workload {
	out := spec.Workload{Spec: w.Spec}
	for p, data := range w.Files {
		mode := "0644"
		if p == w.Spec.Command {
			mode = "0755"
		}
		if m, ok := w.Modes[p]; ok {
			mode = m
		}
		sum := sha256.Sum256(data)
		out.Files = append(out.Files, spec.File{Path: p, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Mode: mode})
	}
	slices.SortFunc(out.Files, func(a, b spec.File) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// AddWorkloads adds ws to m (replacing what m had for their platforms).
// It does not check them: tests of refusals add bad ones on purpose.
func AddWorkloads(m *pack.Manifest, ws Workloads) {
	for plat, list := range ws {
		if m.Workloads == nil {
			m.Workloads = map[string][]spec.Workload{}
		}
		m.Workloads[plat] = nil
		for _, w := range list {
			m.Workloads[plat] = append(m.Workloads[plat], w.Manifest())
		}
	}
}

// WorkloadEntries lists the zip entries of ws's files, at
// <goos>_<goarch>/workloads/<name>/<path>.
func WorkloadEntries(ws Workloads) []Entry {
	var es []Entry
	for plat, list := range ws {
		for _, w := range list {
			for p, data := range w.Files {
				es = append(es, Entry{Name: spec.PackPath(plat, w.Spec.Name, p), Data: data})
			}
		}
	}
	slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return es
}

// GoodWithWorkloads writes a pack of files and workloads at version,
// signed by sk, to path. The manifest is not checked, so a bad spec makes
// a pack that readers must refuse; Signed does the same without writing.
func GoodWithWorkloads(t testing.TB, path, version string, files Files, ws Workloads, sk pack.SecretKey) *pack.Manifest {
	t.Helper()
	m, entries := Signed(t, version, files, ws, sk)
	WriteZip(t, path, entries)
	return m
}

// Signed returns the manifest of files and workloads at version and the
// pack's entries, the manifest signed by sk.
func Signed(t testing.TB, version string, files Files, ws Workloads, sk pack.SecretKey) (*pack.Manifest, []Entry) {
	t.Helper()
	m := Manifest(version, files)
	AddWorkloads(m, ws)
	mb := Encode(t, m)
	return m, append(Entries(mb, pack.Sign(sk, mb, time.Now()), files), WorkloadEntries(ws)...)
}

// ZipBytes is WriteZip into memory (a pack as an upload body).
func ZipBytes(t testing.TB, entries []Entry) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pack.zip")
	WriteZip(t, p, entries)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Case is one bad pack and how a reader must refuse it.
type Case struct {
	Name string
	// Path of the pack file.
	Path string
	// Platform, when set, is the platform the reader must ask for.
	Platform string
	// MaxSize, when set, is the size limit the reader must apply.
	MaxSize int64
	// Want is the sentinel the error wraps; Text a part of its message.
	Want error
	Text string
}

// BadPacks writes one pack per way a pack can be bad into dir. Each is
// signed by sk (so a reader trusting sk's public key must refuse it for the
// reason given) unless the case is about the key.
func BadPacks(t testing.TB, dir string, sk pack.SecretKey) []Case {
	t.Helper()
	_, wrong, err := pack.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	files := SmallFiles()
	m := Manifest("1.5.0", files)
	mb := Encode(t, m)
	sig := pack.Sign(sk, mb, time.Now())
	agent := ArtifactPath("linux/amd64", pack.RoleAgent)
	var cases []Case
	add := func(name string, entries []Entry, c Case) {
		c.Name = name
		c.Path = filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".zip")
		WriteZip(t, c.Path, entries)
		cases = append(cases, c)
	}
	// mutate returns the good entries with one file replaced.
	mutate := func(name string, data []byte) []Entry {
		es := Entries(mb, sig, files)
		for i := range es {
			if es[i].Name == name {
				es[i].Data = data
			}
		}
		return es
	}
	add("wrong key", Entries(mb, pack.Sign(wrong, mb, time.Now()), files),
		Case{Want: pack.ErrUntrustedKey, Text: "signed by key " + wrong.ID() + ", which is not trusted"})
	tampered := []byte(strings.Replace(string(mb), `"1.5.0"`, `"1.5.1"`, 1))
	add("bad signature", Entries(tampered, sig, files),
		Case{Want: pack.ErrBadSignature, Text: "does not match manifest.json"})
	add("size mismatch", mutate(agent, append([]byte("x"), files["linux/amd64"][pack.RoleAgent]...)),
		Case{Want: pack.ErrSizeMismatch, Text: agent + ": size mismatch"})
	flipped := append([]byte{}, files["linux/amd64"][pack.RoleAgent]...)
	flipped[0] ^= 0x20
	add("hash mismatch", mutate(agent, flipped),
		Case{Want: pack.ErrHashMismatch, Text: agent + ": sha256 mismatch"})
	add("missing platform", Entries(mb, sig, files),
		Case{Platform: "darwin/arm64", Want: pack.ErrMissingPlatform, Text: "darwin/arm64 is not in pack 1.5.0"})
	add("escaping entry", append(Entries(mb, sig, files), Entry{Name: "../../etc/cron.d/evil", Data: []byte("x")}),
		Case{Want: pack.ErrUnsafePath, Text: `path escapes the pack: entry "../../etc/cron.d/evil"`})
	add("absolute entry", append(Entries(mb, sig, files), Entry{Name: "/etc/passwd", Data: []byte("x")}),
		Case{Want: pack.ErrUnsafePath, Text: `entry "/etc/passwd"`})
	add("backslash entry", append(Entries(mb, sig, files), Entry{Name: `..\evil.exe`, Data: []byte("x")}),
		Case{Want: pack.ErrUnsafePath, Text: `entry "..\\evil.exe"`})
	add("symlink entry", append(Entries(mb, sig, files), Entry{Name: "link", Data: []byte("/etc/passwd"), Symlink: true}),
		Case{Want: pack.ErrUnsafePath, Text: `entry "link" is a symbolic link`})
	escM := Manifest("1.5.0", files)
	a := escM.Artifacts["linux/amd64"][pack.RoleAgent]
	a.Path = "../molt-agent"
	escM.Artifacts["linux/amd64"][pack.RoleAgent] = a
	escMB := Encode(t, escM)
	add("escaping manifest path", Entries(escMB, pack.Sign(sk, escMB, time.Now()), files),
		Case{Want: pack.ErrBadManifest, Text: `path "../molt-agent" escapes the pack`})
	junk := []byte(`{"version": "1.5.0", "artifacts": `)
	add("unparsable manifest", Entries(junk, pack.Sign(sk, junk, time.Now()), files),
		Case{Want: pack.ErrBadManifest, Text: "bad manifest: unexpected EOF"})
	add("over the size limit", Entries(mb, sig, files),
		Case{MaxSize: 512, Want: pack.ErrTooLarge, Text: "the limit is 512"})
	add("zip bomb", append(Entries(mb, sig, files), Entry{Name: "bomb", Data: []byte("x"), DeclaredSize: 3 << 30}),
		Case{Want: pack.ErrTooLarge, Text: "pack content exceeds the limit"})
	many := Entries(mb, sig, files)
	for i := 0; i <= pack.MaxEntries; i++ {
		many = append(many, Entry{Name: fmt.Sprintf("junk/%d", i), Data: []byte("x")})
	}
	add("too many entries", many,
		Case{Want: pack.ErrTooLarge, Text: fmt.Sprintf("entries, the limit is %d", pack.MaxEntries)})
	add("duplicate entry", append(Entries(mb, sig, files), Entry{Name: agent, Data: []byte("x")}),
		Case{Want: pack.ErrBadPack, Text: "duplicate entry"})
	add("unexpected entry", append(Entries(mb, sig, files), Entry{Name: "linux_amd64/extra.so", Data: []byte("x")}),
		Case{Want: pack.ErrBadPack, Text: `entry "linux_amd64/extra.so" is not named by the manifest`})
	var noAgent []Entry
	for _, e := range Entries(mb, sig, files) {
		if e.Name != agent {
			noAgent = append(noAgent, e)
		}
	}
	add("missing artifact", noAgent,
		Case{Want: pack.ErrBadPack, Text: agent + " is not in the pack"})
	add("unsigned", Entries(mb, sig, files)[:1],
		Case{Want: pack.ErrBadPack, Text: "no manifest.json.sig in the pack"})
	notZip := filepath.Join(dir, "not-a-zip.zip")
	if err := os.WriteFile(notZip, []byte("this is not a zip file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, Case{Name: "not a zip", Path: notZip, Want: pack.ErrBadPack, Text: "not a zip archive"})
	return cases
}

// SampleWorkloads is one workload for linux/amd64 with a script, a
// configuration file and an empty file (workload files may be empty).
func SampleWorkloads() Workloads {
	w := ShellWorkload("exporter", "#!/bin/sh\nexec sleep 1000\n")
	w.Files["conf/default.yaml"] = []byte("listen: 127.0.0.1:9100\n")
	w.Files["conf/empty"] = []byte{}
	return Workloads{"linux/amd64": {w}}
}

// BadWorkloadPacks writes one pack per way a pack's workloads can be bad
// into dir, each signed by sk: a reader trusting sk must refuse each for
// the reason given, before it extracts or runs anything.
func BadWorkloadPacks(t testing.TB, dir string, sk pack.SecretKey) []Case {
	t.Helper()
	files := SmallFiles()
	var cases []Case
	add := func(name string, entries []Entry, c Case) {
		c.Name = name
		c.Path = filepath.Join(dir, "workload-"+strings.ReplaceAll(name, " ", "-")+".zip")
		WriteZip(t, c.Path, entries)
		cases = append(cases, c)
	}
	script := spec.PackPath("linux/amd64", "exporter", "bin/run.sh")
	_, good := Signed(t, "1.5.0", files, SampleWorkloads(), sk)
	mutate := func(name string, data []byte) []Entry {
		es := slices.Clone(good)
		for i := range es {
			if es[i].Name == name {
				es[i].Data = data
			}
		}
		return es
	}
	add("workload file changed", mutate(script, []byte("#!/bin/sh\nrm -rf /\n")),
		Case{Want: pack.ErrSizeMismatch, Text: script + ": size mismatch"})
	add("workload file flipped", mutate(script, []byte("#!/bin/sh\nexec sleep 1001\n")),
		Case{Want: pack.ErrHashMismatch, Text: script + ": sha256 mismatch"})
	add("unsigned workload file", append(slices.Clone(good), Entry{Name: "linux_amd64/workloads/exporter/bin/extra", Data: []byte("x")}),
		Case{Want: pack.ErrBadPack, Text: `entry "linux_amd64/workloads/exporter/bin/extra" is not named by the manifest`})
	var noScript []Entry
	for _, e := range good {
		if e.Name != script {
			noScript = append(noScript, e)
		}
	}
	add("workload file missing", noScript,
		Case{Want: pack.ErrBadPack, Text: script + " is not in the pack"})
	bad := func(name, text string, edit func(w *Workload)) {
		ws := SampleWorkloads()
		w := ws["linux/amd64"][0]
		edit(&w)
		ws["linux/amd64"][0] = w
		_, es := Signed(t, "1.5.0", files, ws, sk)
		add(name, es, Case{Want: spec.ErrBadSpec, Text: text})
	}
	bad("workload command outside", `command "../x": not a clean relative path`, func(w *Workload) { w.Spec.Command = "../x" })
	bad("workload with two ready checks", "ready: more than one check", func(w *Workload) {
		w.Spec.Ready = spec.Ready{Probe: spec.Probe{File: true, Running: spec.Duration(time.Second)}}
	})
	bad("workload command not executable", `command "bin/run.sh" is not executable`, func(w *Workload) {
		w.Modes = map[string]string{"bin/run.sh": "0644"}
	})
	// Manifests a builder would never write, signed by hand.
	handSigned := func(name, text string, want error, edit func(mb []byte, m *pack.Manifest) []byte) {
		m := Manifest("1.5.0", files)
		AddWorkloads(m, SampleWorkloads())
		mb := edit(Encode(t, m), m)
		add(name, append(Entries(mb, pack.Sign(sk, mb, time.Now()), files), WorkloadEntries(SampleWorkloads())...), Case{Want: want, Text: text})
	}
	handSigned("workload file outside", `file "../x": not a clean relative path inside the workload`, spec.ErrBadSpec, func(_ []byte, m *pack.Manifest) []byte {
		m.Workloads["linux/amd64"][0].Files[1].Path = "../x"
		return Encode(t, m)
	})
	handSigned("workload named twice", `workload "exporter": named twice`, spec.ErrBadSpec, func(_ []byte, m *pack.Manifest) []byte {
		m.Workloads["linux/amd64"] = append(m.Workloads["linux/amd64"], m.Workloads["linux/amd64"][0])
		return Encode(t, m)
	})
	handSigned("workload spec too large", "spec is larger than 16384 bytes", spec.ErrBadSpec, func(_ []byte, m *pack.Manifest) []byte {
		for range 8 {
			m.Workloads["linux/amd64"][0].Spec.Args = append(m.Workloads["linux/amd64"][0].Spec.Args, strings.Repeat("a", 4000))
		}
		return Encode(t, m)
	})
	handSigned("workload unknown check", `json: unknown field "grpc"`, pack.ErrBadManifest, func(mb []byte, _ *pack.Manifest) []byte {
		return []byte(strings.Replace(string(mb), `"running": "1s"`, `"grpc": "127.0.0.1:1"`, 1))
	})
	handSigned("workload for a platform without binaries", "workloads for darwin/arm64, which has no artifacts", pack.ErrBadManifest, func(_ []byte, m *pack.Manifest) []byte {
		m.Workloads["darwin/arm64"] = m.Workloads["linux/amd64"]
		return Encode(t, m)
	})
	return cases
}
