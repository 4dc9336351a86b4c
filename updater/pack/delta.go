package pack

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// The manifest's "deltas" field has the shape it was reserved with
// (version → {"from", "artifacts": path → {"path", "size", "sha256"}}),
// so that agents built before deltas, which refuse unknown fields, still
// accept a manifest that carries patches and download the full files.
// Within that shape:
//
//	"deltas": {
//	  "1.4.0": {                                 the version patched from
//	    "from": "1.4.0",
//	    "artifacts": {
//	      "linux_amd64/molt-agent": {            the file of this pack the patch makes
//	        "path": "deltas/<base sha256>-<result sha256>.patch",
//	        "size": 48211, "sha256": "<the patch's own SHA-256>"}}}}
//
// The patch's path names, under the signature, the SHA-256 of the file it
// applies to and of the file it makes; it must name the latter as the
// target's SHA-256. A patch is stored once however many targets share it
// (a workload file the same on two platforms).

// DeltaDir is the pack directory of the patches.
const DeltaDir = "deltas"

var patchPathRe = regexp.MustCompile(`^deltas/([0-9a-f]{64})-([0-9a-f]{64})\.patch$`)

// PatchPath is where the pack stores the patch from base to result (two
// SHA-256 digests).
func PatchPath(baseSHA256, resultSHA256 string) string {
	return DeltaDir + "/" + baseSHA256 + "-" + resultSHA256 + ".patch"
}

// Patch is one binary patch a manifest offers (package updater/delta's
// format).
type Patch struct {
	// From is the version whose file the patch applies to.
	From string
	// Target is the path in this pack of the file the patch makes.
	Target string
	// Artifact is the patch file itself: its path, size and SHA-256.
	Artifact
	// BaseSHA256 is the SHA-256 of the file it applies to, ResultSHA256
	// of the file it makes (the target's).
	BaseSHA256, ResultSHA256 string
}

// Patches lists every patch, by version patched from, then target.
func (m *Manifest) Patches() []Patch {
	var out []Patch
	for from, d := range m.Deltas {
		for target, a := range d.Artifacts {
			p := Patch{From: from, Target: target, Artifact: a}
			if mm := patchPathRe.FindStringSubmatch(a.Path); mm != nil {
				p.BaseSHA256, p.ResultSHA256 = mm[1], mm[2]
			}
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b Patch) int {
		if c := strings.Compare(a.From, b.From); c != 0 {
			return c
		}
		return strings.Compare(a.Target, b.Target)
	})
	return out
}

// PatchFor returns the patch that makes target (a path in this pack) from
// version from's file, if the manifest offers one.
func (m *Manifest) PatchFor(from, target string) (Patch, bool) {
	a, ok := m.Deltas[from].Artifacts[target]
	if !ok {
		return Patch{}, false
	}
	mm := patchPathRe.FindStringSubmatch(a.Path)
	if mm == nil {
		return Patch{}, false
	}
	return Patch{From: from, Target: target, Artifact: a, BaseSHA256: mm[1], ResultSHA256: mm[2]}, true
}

// patchFiles lists each patch file once, for Files.
func (m *Manifest) patchFiles() []Artifact {
	seen := map[string]bool{}
	var out []Artifact
	for _, p := range m.Patches() {
		if !seen[p.Path] {
			seen[p.Path] = true
			out = append(out, p.Artifact)
		}
	}
	return out
}

// checkDeltas checks the "deltas" field against the files it patches.
func (m *Manifest) checkDeltas(files []Artifact) error {
	if len(m.Deltas) == 0 {
		return nil
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: deltas: %s", ErrBadManifest, fmt.Sprintf(format, args...))
	}
	byPath := make(map[string]Artifact, len(files))
	for _, f := range files {
		byPath[f.Path] = f
	}
	stored := map[string]Artifact{}
	for from, d := range m.Deltas {
		if !ValidVersion(from) || d.From != from {
			return bad("%q: the key and \"from\" (%q) must be the same valid version", from, d.From)
		}
		if from == m.Version {
			return bad("from %s, the pack's own version", from)
		}
		if len(d.Artifacts) == 0 {
			return bad("from %s: no patches", from)
		}
		for target, a := range d.Artifacts {
			t, ok := byPath[target]
			if !ok {
				return bad("from %s: %q is not a file of the pack", from, target)
			}
			if err := a.check(); err != nil {
				return bad("from %s: %s: %v", from, target, err)
			}
			mm := patchPathRe.FindStringSubmatch(a.Path)
			if mm == nil {
				return bad("from %s: %s: patch path %q is not deltas/<base sha256>-<result sha256>.patch", from, target, a.Path)
			}
			if mm[2] != t.SHA256 {
				return bad("from %s: %s: the patch makes %s, the file is %s", from, target, mm[2], t.SHA256)
			}
			if o, dup := stored[a.Path]; dup && o != a {
				return bad("%s is named twice with different sizes or hashes", a.Path)
			}
			stored[a.Path] = a
		}
	}
	return nil
}
