package updater

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/internal/atomicfile"
	"github.com/moltfleet/molt/internal/faults"
	"github.com/moltfleet/molt/updater/pack"
)

// validMarker is the content of versions/<V>/.valid. Only its presence
// counts for the supervisor; the content records what was installed.
type validMarker struct {
	Version  string            `json:"version"`
	Platform string            `json:"platform"`
	Order    string            `json:"order,omitempty"`
	Files    map[string]string `json:"files"` // file name -> sha256
	Staged   time.Time         `json:"staged"`
}

// alreadyStaged reports whether versions/<V> is valid and holds exactly
// the manifest's files (a revert to an installed version, or a Prepare
// after a crash that followed the .valid write). A valid directory with
// other content is replaced, unless active.json refers to it.
func (u *Updater) alreadyStaged(st *UpgradeState, files map[string]pack.Artifact) (bool, error) {
	v := st.Version
	if !u.home.IsValid(v) {
		return false, nil
	}
	for role, a := range files {
		ok, err := verifyFile(filepath.Join(u.home.VersionDir(v), u.exeName(role)), a)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
		if !ok {
			if u.referenced(v) {
				return false, fmt.Errorf("%w: versions/%s is installed with other content than the signed manifest names", ErrVersionMismatch, v)
			}
			u.log.Warn("installed version differs from its manifest; replacing it", zap.String("version", v))
			return false, removeAll(u.home.VersionDir(v))
		}
	}
	return true, nil
}

// referenced reports whether active.json names v.
func (u *Updater) referenced(v string) bool {
	a, err := u.home.ReadActive()
	if err != nil {
		return false
	}
	return a.Current == v || a.Previous == v || (a.Trial != nil && a.Trial.Version == v)
}

// recover puts verified files from an interrupted staging back into the
// cache, so a crash between download and .valid costs no download, then
// removes what is left of that staging: a versions/<V> without .valid is
// garbage.
func (u *Updater) recover(st *UpgradeState, files map[string]pack.Artifact) error {
	v := st.Version
	garbage := []string{u.stagingDir(v)}
	if _, err := os.Stat(u.home.VersionDir(v)); err == nil && !u.home.IsValid(v) {
		garbage = append(garbage, u.home.VersionDir(v))
	}
	for role, a := range files {
		f := st.Files[role]
		dst := u.cachePath(v, role)
		candidates := []string{dst}
		for _, dir := range garbage {
			candidates = append(candidates, filepath.Join(dir, u.exeName(role)))
		}
		f.Verified = false
		for _, c := range candidates {
			ok, err := verifyFile(c, a)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			if !ok {
				_ = os.Remove(c)
				continue
			}
			if c != dst {
				if err := os.MkdirAll(u.cacheDir(v), 0o755); err != nil {
					return err
				}
				if err := os.Rename(c, dst); err != nil {
					return err
				}
			}
			f.Verified, f.Done = true, a.Size
			break
		}
	}
	for _, dir := range garbage {
		if err := removeAll(dir); err != nil {
			return fmt.Errorf("remove incomplete %s: %w", dir, err)
		}
	}
	return nil
}

// stage moves the verified files into versions/.<V>.staging, makes them
// executable, renames the directory to versions/<V> and writes .valid
// last. Every file was fsynced when it was verified; the directories are
// synced before anything relies on their entries.
func (u *Updater) stage(st *UpgradeState, files map[string]pack.Artifact) error {
	v := st.Version
	vdir, tmp := u.home.VersionDir(v), u.stagingDir(v)
	if err := os.MkdirAll(u.home.VersionsDir(), 0o755); err != nil {
		return err
	}
	// recover removed any incomplete versions/<V>; one still here has
	// appeared since, and is no more trustworthy.
	if err := errors.Join(removeAll(vdir), removeAll(tmp)); err != nil {
		return err
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	marker := validMarker{Version: v, Platform: u.platform, Order: st.Order, Files: map[string]string{}, Staged: u.now().UTC()}
	for _, role := range sortedRoles(files) {
		name := u.exeName(role)
		dst := filepath.Join(tmp, name)
		if err := os.Rename(u.cachePath(v, role), dst); err != nil {
			return err
		}
		if err := os.Chmod(dst, 0o755); err != nil {
			return err
		}
		marker.Files[name] = files[role].SHA256
	}
	u.checkpoint("staging-filled")
	faults.Point("agent/mid-staging")
	if err := os.Rename(tmp, vdir); err != nil {
		return err
	}
	u.checkpoint("staging-renamed")
	faults.Point("agent/before-valid")
	// WriteJSON syncs .valid and then its directory, which also makes the
	// entries of the files moved in before it durable (the same directory
	// inode, renamed). Should the rename of the directory itself be lost,
	// the staging directory is garbage, never valid.
	if err := atomicfile.WriteJSON(u.home.ValidPath(v), marker, 0o644); err != nil {
		return fmt.Errorf("write .valid: %w", err)
	}
	// Switch may write active.json naming V right after: the rename into
	// versions/ must be durable first.
	if err := atomicfile.SyncDir(u.home.VersionsDir()); err != nil {
		return err
	}
	u.checkpoint("valid-written")
	faults.Point("agent/after-valid")
	return removeAll(u.cacheDir(v))
}
