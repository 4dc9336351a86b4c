//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly || solaris || windows)

package platform

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"

	"github.com/moltfleet/molt/internal/faults"
)

// replaceExecutable is the rename-based replacement for systems
// minio/selfupdate does not build for (AIX): the same steps, streaming the
// file instead of reading it whole into memory. Renaming a running program
// is allowed on these systems; writing it in place would not be.
func replaceExecutable(target, src, oldSave string, sum []byte) error {
	np := newPath(target)
	if err := copyChecked(src, np, sum); err != nil {
		os.Remove(np)
		return fmt.Errorf("prepare %s: %w", target, err)
	}
	faults.Point("supervisor/replace-prepared")
	_ = os.Remove(oldSave)
	if err := os.Rename(target, oldSave); err != nil {
		os.Remove(np)
		return fmt.Errorf("replace %s: keep old: %w", target, err)
	}
	if err := os.Rename(np, target); err != nil {
		if rerr := os.Rename(oldSave, target); rerr != nil {
			return fmt.Errorf("replace %s: %w (and restoring the old file failed: %v)", target, err, rerr)
		}
		return fmt.Errorf("replace %s: %w", target, err)
	}
	return nil
}

func copyChecked(src, dst string, sum []byte) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		out.Close()
		return err
	}
	if !bytes.Equal(h.Sum(nil), sum) {
		out.Close()
		return fmt.Errorf("new executable changed while it was copied")
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
