package platform

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/moltfleet/molt/internal/atomicfile"
	"github.com/moltfleet/molt/internal/faults"
)

// ReplaceExecutable installs the program at src as target, keeping the
// program that was at target as oldSave (replaced if it exists). target is
// the path captured when the running program started, not os.Executable
// now: after the swap that would name the old file. The new file is fsynced
// before the rename and the directory after it, so a power cut leaves either
// the old or the new program at target, complete.
func ReplaceExecutable(target, src, oldSave string) error {
	sum, err := fileSHA256(src)
	if err != nil {
		return fmt.Errorf("read new executable: %w", err)
	}
	// A leftover of a replacement that was killed before its swap would
	// be truncated and rewritten, keeping its old mode: removed, the new
	// file is created with the executable's mode.
	if err := os.Remove(newPath(target)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove leftover %s: %w", newPath(target), err)
	}
	if err := replaceExecutable(target, src, oldSave, sum); err != nil {
		return err
	}
	faults.Point("supervisor/replace-committed")
	return atomicfile.SyncDir(filepath.Dir(target))
}

// newPath is where the new program is prepared beside target (the name
// minio/selfupdate uses, so a leftover is recognisable).
func newPath(target string) string {
	return filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".new")
}

func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// syncFile makes a written file durable before it is renamed into place.
func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
