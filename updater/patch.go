package updater

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/internal/faults"
	"github.com/moltfleet/molt/updater/delta"
	"github.com/moltfleet/molt/updater/pack"
)

// patchKey prefixes the state key of a patch's download: "patch/<key>",
// key being the file it makes.
const patchKey = "patch/"

// Methods a Progress names when it says how a file was obtained.
const (
	MethodDelta = "delta"
	MethodFull  = "full"
)

// planPatches marks each item the signed manifest offers a patch for,
// from the version this home runs now, and gives its download a state
// entry (kept across a restart, so the patch's download resumes). A
// manifest with patches, none of them from this version, is said once.
// Only HTTP sources take patches: a pack file on disk costs no network.
func (u *Updater) planPatches(st *UpgradeState, m *pack.Manifest, items []item, http bool) {
	keep := map[string]bool{}
	defer func() {
		for key := range st.Files {
			if strings.HasPrefix(key, patchKey) && !keep[key] {
				delete(st.Files, key)
			}
		}
	}()
	if !http || len(m.Deltas) == 0 {
		return
	}
	a, err := u.home.ReadActive()
	if err != nil || a.Current == "" || a.Current == st.Version {
		return
	}
	if _, ok := m.Deltas[a.Current]; !ok {
		var from []string
		for v := range m.Deltas {
			from = append(from, v)
		}
		slices.Sort(from)
		u.progress(Progress{Order: st.Order, Version: st.Version, File: "*", Method: MethodFull,
			Reason: fmt.Sprintf("no patch from %s in the pack (it has patches from %s)", a.Current, strings.Join(from, ", "))})
		return
	}
	for i := range items {
		it := &items[i]
		p, ok := m.PatchFor(a.Current, it.a.Path)
		if !ok {
			continue
		}
		it.patch, it.base = &p, it.target(u.home.VersionDir(a.Current))
		key := patchKey + it.key
		keep[key] = true
		f := st.Files[key]
		if f == nil || f.SHA256 != p.SHA256 || f.Size != p.Size {
			f = &FileState{}
			st.Files[key] = f
		}
		f.Size, f.SHA256, f.URL = p.Size, p.SHA256, ""
	}
}

// patched tries to make item it's part file from its patch: it returns
// true when the part file holds the file, verified. On any failure (the
// installed base is missing or not the patch's base, the patch does not
// download or does not verify, applying fails or gives other bytes) it
// says why, removes what the attempt left and returns false: the caller
// downloads the full file.
func (u *Updater) patched(ctx context.Context, log *zap.Logger, st *UpgradeState, src source, it item) bool {
	if it.patch == nil {
		return false
	}
	err := u.applyPatch(ctx, log, st, src, it)
	if err == nil {
		u.progress(Progress{Order: st.Order, Version: st.Version, File: it.key, Total: it.a.Size, Method: MethodDelta,
			Reason: fmt.Sprintf("patch from %s, %s instead of %s", it.patch.From, size(it.patch.Size), size(it.a.Size))})
		log.Info("file made from a patch", zap.String("file", it.key), zap.String("from", it.patch.From),
			zap.Int64("patch_bytes", it.patch.Size), zap.Int64("file_bytes", it.a.Size))
		return true
	}
	_ = os.Remove(u.patchedPath(st.Version, it.key))
	if ctx.Err() != nil {
		return false
	}
	u.progress(Progress{Order: st.Order, Version: st.Version, File: it.key, Total: it.a.Size, Method: MethodFull, Reason: err.Error()})
	log.Warn("patch not used; downloading the full file", zap.String("file", it.key), zap.Error(err))
	return false
}

// errBase: the installed file is not the one the patch applies to.
var errBase = errors.New("installed file is not the patch's base")

func (u *Updater) applyPatch(ctx context.Context, log *zap.Logger, st *UpgradeState, src source, it item) error {
	p := it.patch
	rel, _ := filepath.Rel(u.home.Dir, it.base)
	base, err := os.Open(it.base)
	if err != nil {
		return fmt.Errorf("%w: %v", errBase, err)
	}
	defer base.Close()
	// The base is this host's own installed file, but a disk or a person
	// may have changed it since it was verified: hash it again.
	h := sha256.New()
	baseSize, err := io.Copy(h, bufio.NewReaderSize(base, copyBuffer))
	if err != nil {
		return fmt.Errorf("read %s: %w", rel, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != p.BaseSHA256 {
		return fmt.Errorf("%w: %s has sha256 %s, the patch applies to %s", errBase, rel, short(sum), short(p.BaseSHA256))
	}
	pit := item{key: patchKey + it.key, a: p.Artifact}
	if err := u.download(ctx, log, st, pit, src.location(p.Artifact)); err != nil {
		return fmt.Errorf("patch download: %w", err)
	}
	u.checkpoint("patch-downloaded-" + it.key)
	patch, err := os.Open(u.partPath(st.Version, pit.key))
	if err != nil {
		return err
	}
	defer patch.Close()
	// The result is made beside the file's part file, never in it: a part
	// file holds only bytes of the full file, so a fallback's download
	// resumes whatever an earlier attempt did.
	tmp := u.patchedPath(st.Version, it.key)
	out, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	rh := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(out, rh), copyBuffer)
	// A crash from here leaves a half-made file: the next attempt
	// truncates it and applies again (the patch is on disk, verified),
	// or the fallback removes it.
	w := &crashAfterFirst{w: bw, at: func() { u.checkpoint("patch-applying"); faults.Point("agent/patch-applying") }}
	n, err := delta.Apply(base, baseSize, patch, p.Size, w, it.a.Size)
	if err != nil {
		return fmt.Errorf("apply the patch: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if sum := hex.EncodeToString(rh.Sum(nil)); n != it.a.Size || sum != it.a.SHA256 {
		return fmt.Errorf("%w: the patched file has sha256 %s (%d bytes), the manifest says %s", pack.ErrHashMismatch, short(sum), n, short(it.a.SHA256))
	}
	if err := out.Close(); err != nil {
		return err
	}
	// Verified: it becomes the part file, which fetch syncs and renames
	// like a downloaded one.
	return os.Rename(tmp, u.partPath(st.Version, it.key))
}

// patchedPath is where a file is made from its patch, in cache/<V>/.
func (u *Updater) patchedPath(v, key string) string {
	return filepath.Join(u.cacheDir(v), cacheName(key)+".patched")
}

// crashAfterFirst calls at once, after its first write: the crash point
// of a patch half applied.
type crashAfterFirst struct {
	w    io.Writer
	at   func()
	done bool
}

func (c *crashAfterFirst) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if !c.done {
		c.done = true
		if f, ok := c.w.(interface{ Flush() error }); ok {
			_ = f.Flush()
		}
		c.at()
	}
	return n, err
}

func short(sum string) string {
	if len(sum) > 16 {
		return sum[:16] + "..."
	}
	return sum
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
