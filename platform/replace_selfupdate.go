//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly || solaris || windows

package platform

import (
	"fmt"
	"os"

	"github.com/minio/selfupdate"

	"github.com/moltfleet/molt/internal/faults"
)

// replaceExecutable uses minio/selfupdate: PrepareAndCheckBinary writes
// and checks .target.new, which is fsynced here (selfupdate does not), and
// CommitBinary renames target to oldSave and the new file to target, putting
// the old one back if the second rename fails. On Windows renaming a running
// executable is allowed, deleting it is not, which is why the old file is
// kept rather than removed.
func replaceExecutable(target, src, oldSave string, sum []byte) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open new executable: %w", err)
	}
	defer f.Close()
	opts := selfupdate.Options{
		TargetPath:  target,
		TargetMode:  0o755,
		Checksum:    sum,
		OldSavePath: oldSave,
	}
	if err := selfupdate.PrepareAndCheckBinary(f, opts); err != nil {
		os.Remove(newPath(target))
		return fmt.Errorf("prepare %s: %w", target, err)
	}
	if err := syncFile(newPath(target)); err != nil {
		os.Remove(newPath(target))
		return fmt.Errorf("sync new executable: %w", err)
	}
	faults.Point("supervisor/replace-prepared")
	if err := selfupdate.CommitBinary(opts); err != nil {
		if rerr := selfupdate.RollbackError(err); rerr != nil {
			return fmt.Errorf("replace %s: %w (and restoring the old file failed: %v)", target, err, rerr)
		}
		return fmt.Errorf("replace %s: %w", target, err)
	}
	return nil
}
