package artifacts

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// CopiedPack is what CopyDir did with one version's files.
type CopiedPack struct {
	Version string `json:"version"`
	Files   int    `json:"files"`
	Bytes   int64  `json:"bytes"`
	// Skipped: the target already held every file, byte for byte.
	Skipped bool    `json:"skipped"`
	Seconds float64 `json:"seconds"`
}

// localFile is a file of a version in a packs directory.
type localFile struct {
	rel  string // slash-separated, under the version
	size int64
	sum  [sha256.Size]byte
}

// CopyDir copies every version in the packs directory root (a Dir's
// layout, ROOT/VERSION/PATH; names starting with a dot are an import's
// or a removal's leftovers and are not copied) to dst. A version whose
// files dst already holds with the same size and SHA-256 is skipped, so
// that a second run costs reading, not writing; any other is published
// whole (Publish replaces what dst held of it) from a copy made in
// tmpDir (hard links where it can: Publish may consume its directory),
// then read back from dst and checked file by file. progress, when not
// nil, is called after each version.
func CopyDir(ctx context.Context, root string, dst Store, tmpDir string, progress func(CopiedPack)) ([]CopiedPack, error) {
	es, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("packs: %w", err)
	}
	var out []CopiedPack
	for _, e := range es {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		t0 := time.Now()
		c, err := copyVersion(ctx, filepath.Join(root, e.Name()), e.Name(), dst, tmpDir)
		if err != nil {
			return out, fmt.Errorf("copy pack %s to %s: %w", e.Name(), dst, err)
		}
		c.Seconds = time.Since(t0).Seconds()
		out = append(out, c)
		if progress != nil {
			progress(c)
		}
	}
	return out, nil
}

func copyVersion(ctx context.Context, dir, version string, dst Store, tmpDir string) (CopiedPack, error) {
	c := CopiedPack{Version: version}
	files, err := listFiles(dir)
	if err != nil {
		return c, err
	}
	c.Files = len(files)
	for _, f := range files {
		c.Bytes += f.size
	}
	if same, err := holds(ctx, dst, version, files); err != nil {
		return c, err
	} else if same {
		c.Skipped = true
		return c, nil
	}
	tmp, err := os.MkdirTemp(tmpDir, ".migrate-pack-")
	if err != nil {
		return c, err
	}
	defer os.RemoveAll(tmp)
	staged := filepath.Join(tmp, version)
	for _, f := range files {
		if err := linkOrCopy(filepath.Join(dir, filepath.FromSlash(f.rel)), filepath.Join(staged, filepath.FromSlash(f.rel))); err != nil {
			return c, err
		}
	}
	if err := dst.Publish(ctx, version, staged); err != nil {
		return c, err
	}
	for _, f := range files {
		ok, err := holdsFile(ctx, dst, version, f)
		if err != nil {
			return c, fmt.Errorf("verify %s: %w", f.rel, err)
		}
		if !ok {
			return c, fmt.Errorf("verify %s: the store's copy differs from the file (size or SHA-256)", f.rel)
		}
	}
	return c, nil
}

// listFiles are the regular files under dir with their sizes and
// SHA-256, sorted by path.
func listFiles(dir string) ([]localFile, error) {
	var files []localFile
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if !e.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		lf := localFile{rel: filepath.ToSlash(rel), size: n}
		copy(lf.sum[:], h.Sum(nil))
		files = append(files, lf)
		return nil
	})
	sort.Slice(files, func(i, j int) bool { return files[i].rel < files[j].rel })
	return files, err
}

// holds says whether dst has every one of files, byte for byte.
func holds(ctx context.Context, dst Store, version string, files []localFile) (bool, error) {
	for _, f := range files {
		ok, err := holdsFile(ctx, dst, version, f)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// holdsFile reads file f of version back from dst and compares its size
// and SHA-256; a missing file is not an error.
func holdsFile(ctx context.Context, dst Store, version string, f localFile) (bool, error) {
	r, err := dst.Open(ctx, version, f.rel)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer r.Close()
	if r.Size() != f.size {
		return false, nil
	}
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return false, err
	}
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	return n == f.size && sum == f.sum, nil
}

// linkOrCopy makes to a hard link of from, or a copy where links fail
// (another file system).
func linkOrCopy(from, to string) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	if err := os.Link(from, to); err == nil {
		return nil
	}
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
