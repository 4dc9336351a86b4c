package artifacts

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/moltfleet/molt/internal/atomicfile"
)

// Dir keeps packs in a directory: ROOT/VERSION/PATH.
type Dir struct{ root string }

// NewDir uses (and makes) directory root.
func NewDir(root string) (*Dir, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("packs directory: %w", err)
	}
	return &Dir{root: root}, nil
}

func (d *Dir) String() string { return d.root }

// Publish moves dir into place (a rename: dir must be on the same file
// system, e.g. made under the root) and syncs the tree, so that a
// release recorded after it never points at files a power loss took.
func (d *Dir) Publish(ctx context.Context, version, dir string) error {
	dst := filepath.Join(d.root, version)
	_ = os.RemoveAll(dst) // a leftover of an import that crashed before its commit
	if err := os.Rename(dir, dst); err != nil {
		return err
	}
	err := filepath.WalkDir(dst, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return err
		}
		return atomicfile.SyncDir(p)
	})
	if err == nil {
		err = atomicfile.SyncDir(d.root)
	}
	if err != nil {
		_ = os.RemoveAll(dst)
	}
	return err
}

// Remove moves version's directory aside, then removes it, so that no
// reader sees it half removed.
func (d *Dir) Remove(ctx context.Context, version string) error {
	trash, err := os.MkdirTemp(d.root, ".removed-")
	if err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(d.root, version), filepath.Join(trash, version)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		_ = os.Remove(trash)
		return err
	}
	return os.RemoveAll(trash)
}

func (d *Dir) Open(ctx context.Context, version, p string) (File, error) {
	f, err := os.Open(filepath.Join(d.root, version, filepath.FromSlash(p)))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, ErrNotFound
	}
	return dirFile{f, fi}, nil
}

// Presign: a directory has no URLs of its own; the server serves it.
func (d *Dir) Presign(context.Context, string, string, time.Duration) (string, error) {
	return "", nil
}

type dirFile struct {
	*os.File
	fi fs.FileInfo
}

func (f dirFile) Size() int64        { return f.fi.Size() }
func (f dirFile) ModTime() time.Time { return f.fi.ModTime() }
