package updater

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/workload/spec"
)

// workloadKey prefixes the state key of a workload's file:
// "workload/<name>/<path>".
const workloadKey = "workload/"

// item is one file of a version: a molt binary, keyed by its role, or a
// file of a workload, keyed "workload/<name>/<path>". The key names the
// file in state/upgrade.json, in progress reports and in errors.
type item struct {
	key string
	// a is where the file is in the pack (or at a URL), its size and its
	// SHA-256, from the signed manifest.
	a pack.Artifact
	// dst is the file's slash path inside versions/<V>/.
	dst  string
	perm fs.FileMode
	// patch, when the signed manifest offers one from the installed
	// version, makes the file from base, the installed file (patch.go).
	patch *pack.Patch
	base  string
}

// workload reports whether it is a workload's file.
func (it item) workload() bool { return strings.HasPrefix(it.key, workloadKey) }

// items lists the files of the updater's platform in the signed
// manifest: the binaries by role, then every workload's files in the
// manifest's order. Every workload is checked again here (the manifest's
// parse checked them too): a path that reaches the disk must have passed
// spec.SafePath, whoever built the manifest.
func (u *Updater) items(m *pack.Manifest) ([]item, []spec.Workload, error) {
	files, err := m.PlatformArtifacts(u.platform)
	if err != nil {
		return nil, nil, err
	}
	ws := m.PlatformWorkloads(u.platform)
	if err := spec.CheckAll(ws); err != nil {
		return nil, nil, err
	}
	var out []item
	for _, role := range sortedRoles(files) {
		out = append(out, item{key: role, a: files[role], dst: u.exeName(role), perm: 0o755})
	}
	for _, w := range ws {
		name := w.Spec.Name
		for _, f := range w.Files {
			if !spec.ValidName(name) || !spec.SafePath(f.Path) {
				return nil, nil, fmt.Errorf("%w: workload %q: file %q: not a clean relative path inside the workload", spec.ErrBadSpec, name, f.Path)
			}
			out = append(out, item{
				key:  workloadKey + name + "/" + f.Path,
				a:    pack.WorkloadArtifact(u.platform, name, f),
				dst:  "workloads/" + name + "/" + f.Path,
				perm: fs.FileMode(f.Perm()) & fs.ModePerm,
			})
		}
	}
	return out, ws, nil
}

// cacheName is the file name in cache/<V>/ of a state key: a role as
// itself, a workload's file ("w-") or a patch ("p-") by a digest of its
// key, so that no manifest path ever names a file in cache/ and the
// directory stays flat.
func cacheName(key string) string {
	prefix := "w-"
	switch {
	case strings.HasPrefix(key, patchKey):
		prefix = "p-"
	case !strings.HasPrefix(key, workloadKey):
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return prefix + hex.EncodeToString(sum[:16])
}

// target is where it goes under dir (a version or staging directory).
func (it item) target(dir string) string { return filepath.Join(dir, filepath.FromSlash(it.dst)) }
