package pack

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/moltfleet/molt/updater/delta"
)

// minPatchTarget is the smallest file that gets a patch: below it the
// patch's header and the extra request cost about what the file does.
const minPatchTarget = 4 << 10

// olderPack is a pack given with --delta-from.
type olderPack struct {
	path  string
	r     *Reader
	m     *Manifest
	files map[string]Artifact // by path in the pack
}

// openOlder opens the packs to patch from. Their signatures are not
// checked (they may be by a retired key); every file a patch is made from
// is checked against its manifest's SHA-256 while it is read, and agents
// apply a patch only to a file with that SHA-256.
func openOlder(paths []string, version string) ([]*olderPack, error) {
	var out []*olderPack
	seen := map[string]string{}
	for _, p := range paths {
		r, err := Open(p)
		if err != nil {
			closeOlder(out)
			return nil, fmt.Errorf("delta from %s: %w", p, err)
		}
		m, err := r.UnverifiedManifest()
		if err == nil && m.Version == version {
			err = fmt.Errorf("it is version %s, the pack being built", version)
		}
		if err == nil && seen[m.Version] != "" {
			err = fmt.Errorf("version %s is given twice (also %s)", m.Version, seen[m.Version])
		}
		if err != nil {
			r.Close()
			closeOlder(out)
			return nil, fmt.Errorf("delta from %s: %w", p, err)
		}
		seen[m.Version] = p
		o := &olderPack{path: p, r: r, m: m, files: map[string]Artifact{}}
		for _, a := range m.ownFiles() {
			o.files[a.Path] = a
		}
		out = append(out, o)
	}
	return out, nil
}

func closeOlder(ps []*olderPack) {
	for _, p := range ps {
		p.r.Close()
	}
}

// packedFile is a file written into the pack being built.
type packedFile struct {
	a   Artifact
	src string
}

// addDeltas writes into zw a patch from each older pack's file to the
// file at the same path in this pack, and names them in m.Deltas. A file
// gets no patch when it is new, under minPatchTarget, its base is over
// delta.MaxDiffInput, or the patch would not save half of it. Each patch
// is applied once here and its result compared before it is packed.
func addDeltas(zw *zip.Writer, m *Manifest, files []packedFile, older []*olderPack, mod time.Time) error {
	stored := map[string]Artifact{}
	for _, o := range older {
		for _, f := range files {
			base, ok := o.files[f.a.Path]
			if !ok || f.a.Size < minPatchTarget || base.Size > delta.MaxDiffInput {
				continue
			}
			path := PatchPath(base.SHA256, f.a.SHA256)
			pa, ok := stored[path]
			if !ok {
				p, err := makePatch(o, base, f)
				if err != nil {
					return err
				}
				if int64(len(p)) > f.a.Size/2 {
					continue
				}
				if err := addBytes(zw, path, p, mod); err != nil {
					return err
				}
				sum := sha256.Sum256(p)
				pa = Artifact{Path: path, Size: int64(len(p)), SHA256: hex.EncodeToString(sum[:])}
				stored[path] = pa
			}
			if m.Deltas == nil {
				m.Deltas = map[string]Delta{}
			}
			d := m.Deltas[o.m.Version]
			if d.Artifacts == nil {
				d = Delta{From: o.m.Version, Artifacts: map[string]Artifact{}}
			}
			d.Artifacts[f.a.Path] = pa
			m.Deltas[o.m.Version] = d
		}
	}
	return nil
}

// makePatch diffs older pack o's file base against f and checks that the
// patch gives back f's bytes.
func makePatch(o *olderPack, base Artifact, f packedFile) ([]byte, error) {
	rc, err := o.r.OpenArtifact(base)
	if err != nil {
		return nil, fmt.Errorf("delta from %s: %w", o.path, err)
	}
	old, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("delta from %s: %w", o.path, err)
	}
	nw, err := os.ReadFile(f.src)
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(nw); hex.EncodeToString(sum[:]) != f.a.SHA256 {
		return nil, fmt.Errorf("%s changed while the pack was built", f.src)
	}
	var p bytes.Buffer
	if err := delta.Diff(old, nw, &p); err != nil {
		return nil, fmt.Errorf("delta from %s: %s: %w", o.m.Version, f.a.Path, err)
	}
	var out bytes.Buffer
	if _, err := delta.Apply(bytes.NewReader(old), int64(len(old)), bytes.NewReader(p.Bytes()), int64(p.Len()), &out, int64(len(nw))); err != nil || !bytes.Equal(out.Bytes(), nw) {
		return nil, fmt.Errorf("delta from %s: %s: the patch does not give the file back (%v)", o.m.Version, f.a.Path, err)
	}
	return p.Bytes(), nil
}
