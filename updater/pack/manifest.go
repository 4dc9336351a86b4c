// Package pack is the release format: one version's binaries for one or
// more platforms plus manifest.json and its minisign signature
// (manifest.json.sig). It builds, signs, reads and verifies packs.
package pack

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moltfleet/molt/internal/semver"
	"github.com/moltfleet/molt/workload/spec"
)

// File names inside a pack.
const (
	ManifestName  = "manifest.json"
	SignatureName = "manifest.json.sig"
)

// Roles of the files of one platform.
const (
	RoleAgent      = "agent"
	RoleSupervisor = "supervisor"
)

// Limits on untrusted input.
const (
	// MaxManifestSize leaves room for workload trees: 16384 files of a
	// few hundred bytes of JSON each.
	MaxManifestSize  = 8 << 20
	MaxSignatureSize = 4 << 10
	MaxArtifactSize  = 1 << 30
)

// Manifest is manifest.json.
type Manifest struct {
	Version  string    `json:"version"`
	Released time.Time `json:"released"`
	// Floor is the lowest version an agent may go to once it has seen this
	// manifest (empty: no floor).
	Floor string `json:"floor,omitempty"`
	// Artifacts maps "goos/goarch" to role ("agent", "supervisor") to file.
	Artifacts map[string]map[string]Artifact `json:"artifacts"`
	// Deltas maps an earlier version to binary patches from its files to
	// this version's (delta.go).
	Deltas map[string]Delta `json:"deltas,omitempty"`
	// Workloads maps a platform of Artifacts to the workloads it runs
	// besides molt-agent (docs/workloads.md); their files are carried at
	// spec.PackPath. Agents that predate workloads refuse the field.
	Workloads map[string][]spec.Workload `json:"workloads,omitempty"`
}

// Artifact is one file of a platform.
type Artifact struct {
	// Path is relative to the pack ("linux_amd64/molt-agent"), or an
	// absolute http(s) URL of a store that serves the same bytes.
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Delta is the patches from one earlier version: Artifacts maps the path
// of a file of this pack to the patch that makes it (see delta.go for how
// the patch's path names its base and result). Agents that do not apply
// patches download the full files.
type Delta struct {
	From      string              `json:"from"`
	Artifacts map[string]Artifact `json:"artifacts,omitempty"`
}

var (
	// ErrBadManifest is wrapped by every manifest parse or check failure.
	ErrBadManifest = errors.New("bad manifest")

	// versionRe is compiled at its first use: its counted repetition
	// costs a millisecond, paid otherwise by every start of the agent.
	versionRe  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+-]{0,63}$`) })
	platformRe = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9]+$`)
	sha256Re   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ValidVersion reports whether v may name a version (and a directory).
func ValidVersion(v string) bool { return versionRe().MatchString(v) && !strings.Contains(v, "..") }

// ParseManifest decodes and checks manifest.json. It does not check the
// signature: callers verify that first (see Verify).
func ParseManifest(b []byte) (*Manifest, error) {
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadManifest, MaxManifestSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrBadManifest)
	}
	if err := m.Check(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Check validates every field.
func (m *Manifest) Check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadManifest, fmt.Sprintf(format, args...))
	}
	if !ValidVersion(m.Version) {
		return bad("version %q is not a valid version", m.Version)
	}
	if m.Floor != "" && !ValidVersion(m.Floor) {
		return bad("floor %q is not a valid version", m.Floor)
	}
	// A floor above the pack's own version would make every agent that
	// installs it refuse itself.
	if m.Floor != "" && semver.Less(m.Version, m.Floor) {
		return bad("floor %s is above version %s", m.Floor, m.Version)
	}
	if len(m.Artifacts) == 0 {
		return bad("no artifacts")
	}
	for plat, files := range m.Artifacts {
		if !platformRe.MatchString(plat) {
			return bad("platform %q is not goos/goarch", plat)
		}
		if _, ok := files[RoleAgent]; !ok {
			return bad("%s: no agent artifact", plat)
		}
		for role, a := range files {
			if role != RoleAgent && role != RoleSupervisor {
				return bad("%s: unknown role %q", plat, role)
			}
			if err := a.check(); err != nil {
				return bad("%s %s: %v", plat, role, err)
			}
		}
	}
	for plat, ws := range m.Workloads {
		if _, ok := m.Artifacts[plat]; !ok {
			return bad("workloads for %s, which has no artifacts", plat)
		}
		if err := spec.CheckAll(ws); err != nil {
			// Both sentinels hold: callers test for either.
			return fmt.Errorf("%w: %s: %w", ErrBadManifest, plat, err)
		}
		if strings.HasPrefix(plat, "windows/") {
			for _, w := range ws {
				if err := w.CheckWindows(); err != nil {
					return fmt.Errorf("%w: %s: %w", ErrBadManifest, plat, err)
				}
			}
		}
	}
	if err := m.checkDeltas(m.ownFiles()); err != nil {
		return err
	}
	// Every stored file has one place in the pack; names that differ only
	// in case are one file on Windows and macOS.
	files := m.Files()
	if len(files)+2 > MaxEntries {
		return bad("%d files, a pack holds at most %d besides its manifest and signature", len(files), MaxEntries-2)
	}
	seen := map[string]string{}
	dirs := map[string]bool{}
	for _, a := range files {
		low := strings.ToLower(a.Path)
		if other, dup := seen[low]; dup {
			return bad("%q and %q are the same file in the pack", other, a.Path)
		}
		seen[low] = a.Path
		for d := path.Dir(low); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for d := range dirs {
		if f, ok := seen[d]; ok {
			return bad("%q is both a file and a directory in the pack", f)
		}
	}
	return nil
}

// Files lists every file the pack stores besides the manifest and its
// signature: the artifacts that are not URLs, every workload file and
// every patch (once), sorted by path. A pack holds exactly these.
func (m *Manifest) Files() []Artifact {
	out := append(m.ownFiles(), m.patchFiles()...)
	slices.SortFunc(out, func(a, b Artifact) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// ownFiles is Files without the patches: the files an agent installs.
func (m *Manifest) ownFiles() []Artifact {
	var out []Artifact
	for _, files := range m.Artifacts {
		for _, a := range files {
			if !isURL(a.Path) {
				out = append(out, a)
			}
		}
	}
	for plat, ws := range m.Workloads {
		for _, w := range ws {
			for _, f := range w.Files {
				out = append(out, WorkloadArtifact(plat, w.Spec.Name, f))
			}
		}
	}
	return out
}

// PlatformWorkloads returns the workloads of platform ("linux/amd64"),
// nil when it has none.
func (m *Manifest) PlatformWorkloads(platform string) []spec.Workload {
	return m.Workloads[platform]
}

// WorkloadArtifact is file f of workload name of platform as an artifact
// of the pack, to download and verify like the binaries. Its size may be 0
// (VerifyingReader accepts that).
func WorkloadArtifact(platform, name string, f spec.File) Artifact {
	return Artifact{Path: spec.PackPath(platform, name, f.Path), Size: f.Size, SHA256: f.SHA256}
}

func (a Artifact) check() error {
	if a.Size <= 0 || a.Size > MaxArtifactSize {
		return fmt.Errorf("size %d out of range (1..%d)", a.Size, MaxArtifactSize)
	}
	if !sha256Re.MatchString(a.SHA256) {
		return fmt.Errorf("sha256 %q is not 64 lowercase hex digits", a.SHA256)
	}
	if strings.HasPrefix(a.Path, "https://") || strings.HasPrefix(a.Path, "http://") {
		return nil
	}
	if !SafePath(a.Path) {
		return fmt.Errorf("path %q escapes the pack", a.Path)
	}
	return nil
}

// SafePath reports whether p is a clean relative slash path that stays
// inside the pack.
func SafePath(p string) bool {
	if p == "" || strings.Contains(p, `\`) || strings.HasPrefix(p, "/") {
		return false
	}
	c := path.Clean(p)
	return c == p && c != "." && c != ".." && !strings.HasPrefix(c, "../")
}
