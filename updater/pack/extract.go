package pack

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/moltfleet/molt/internal/atomicfile"
)

// Spool copies a pack arriving as a stream (an HTTP upload) into a
// temporary file in dir, at most maxSize bytes (ErrTooLarge beyond), and
// opens it. Closing the Reader removes the temporary file.
func Spool(src io.Reader, dir string, maxSize int64) (*Reader, error) {
	f, err := os.CreateTemp(dir, ".pack-upload-*.zip")
	if err != nil {
		return nil, fmt.Errorf("spool pack: %w", err)
	}
	name := f.Name()
	fail := func(err error) (*Reader, error) {
		f.Close()
		os.Remove(name)
		return nil, err
	}
	n, err := io.Copy(f, io.LimitReader(src, maxSize+1))
	if err != nil {
		return fail(fmt.Errorf("spool pack: %w", err))
	}
	if n > maxSize {
		return fail(fmt.Errorf("%w: pack is larger than the limit of %d bytes", ErrTooLarge, maxSize))
	}
	r, err := NewReader(f, n, maxSize)
	if err != nil {
		return fail(err)
	}
	r.closer = removeOnClose{f}
	return r, nil
}

type removeOnClose struct{ f *os.File }

func (c removeOnClose) Close() error {
	err := c.f.Close()
	if rerr := os.Remove(c.f.Name()); err == nil {
		err = rerr
	}
	return err
}

// Extract writes a verified pack into dir as the server serves it:
// dir/<path> for every file stored in the pack (Manifest.Files), then
// manifest.json.sig and manifest.json last. Every artifact is checked
// against the manifest while it is written, and each file appears only
// complete (temporary file, fsync, rename). Verify must have succeeded
// first. On error dir may hold some of the files: the caller removes it.
func (r *Reader) Extract(dir string) error {
	m := r.verified
	if m == nil {
		return errors.New("extract: the pack has not been verified")
	}
	// Each file is synced before its rename, each directory once after
	// all its files: a workload's tree can be thousands of files, and a
	// directory sync per file doubled the cost of extracting it.
	dirs := map[string]bool{}
	for _, a := range m.Files() {
		dst := filepath.Join(dir, filepath.FromSlash(a.Path))
		if err := r.extractArtifact(a, dst); err != nil {
			return fmt.Errorf("extract %s: %w", a.Path, err)
		}
		dirs[filepath.Dir(dst)] = true
	}
	for d := range dirs {
		if err := atomicfile.SyncDir(d); err != nil {
			return fmt.Errorf("extract: %w", err)
		}
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, SignatureName), r.sig, 0o644); err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ManifestName), r.manifest, 0o644); err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	return nil
}

func (r *Reader) extractArtifact(a Artifact, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	rc, err := r.OpenArtifact(a)
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp*")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := io.Copy(f, rc); err != nil {
		return err
	}
	if err := f.Chmod(0o755); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return err
	}
	ok = true
	return nil
}
