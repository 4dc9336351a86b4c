package updater

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/internal/atomicfile"
	"github.com/moltfleet/molt/internal/faults"
	"github.com/moltfleet/molt/internal/smallfile"
	"github.com/moltfleet/molt/workload/spec"
)

// validMarker is the content of versions/<V>/.valid. Only its presence
// counts for the supervisor; the content records what was installed.
type validMarker struct {
	Version  string `json:"version"`
	Platform string `json:"platform"`
	Order    string `json:"order,omitempty"`
	// Files maps each file's slash path in the version directory
	// ("molt-agent", "workloads/exporter/bin/exporter", "workloads.json")
	// to its SHA-256.
	Files  map[string]string `json:"files"`
	Staged time.Time         `json:"staged"`
}

// alreadyStaged reports whether versions/<V> is valid and holds exactly
// the manifest's files (a revert to an installed version, or a Prepare
// after a crash that followed the .valid write): every binary and every
// workload's file hashed again, and workloads.json naming the manifest's
// workloads. Files a workload wrote into its own directory since are no
// concern here. A valid directory with other content is replaced, unless
// active.json refers to it.
func (u *Updater) alreadyStaged(st *UpgradeState, items []item, ws []spec.Workload) (bool, error) {
	v := st.Version
	if !u.home.IsValid(v) {
		return false, nil
	}
	ok, err := u.sameWorkloads(v, ws)
	if err != nil {
		return false, err
	}
	for _, it := range items {
		if !ok {
			break
		}
		ok, err = verifyFile(it.target(u.home.VersionDir(v)), it.a)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
	}
	if ok {
		return true, nil
	}
	if u.referenced(v) {
		return false, fmt.Errorf("%w: versions/%s is installed with other content than the signed manifest names", ErrVersionMismatch, v)
	}
	u.log.Warn("installed version differs from its manifest; replacing it", zap.String("target", v))
	return false, removeAll(u.home.VersionDir(v))
}

// sameWorkloads reports whether versions/<v>/workloads.json describes ws
// (a version without workloads has none, or an empty list).
func (u *Updater) sameWorkloads(v string, ws []spec.Workload) (bool, error) {
	b, err := smallfile.Read(u.home.WorkloadsFile(v), maxStateSize)
	if errors.Is(err, fs.ErrNotExist) {
		return len(ws) == 0, nil
	}
	if err != nil {
		return false, nil
	}
	in, err := spec.ParseInstalled(b)
	if err != nil || in.Version != v || in.Platform != u.platform {
		return false, nil
	}
	want, _ := json.Marshal(ws)
	got, _ := json.Marshal(in.Workloads)
	if len(ws) == 0 {
		return len(in.Workloads) == 0, nil
	}
	return bytes.Equal(want, got), nil
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
func (u *Updater) recover(st *UpgradeState, items []item) error {
	v := st.Version
	garbage := []string{u.stagingDir(v)}
	if _, err := os.Stat(u.home.VersionDir(v)); err == nil && !u.home.IsValid(v) {
		garbage = append(garbage, u.home.VersionDir(v))
	}
	for _, it := range items {
		f := st.Files[it.key]
		dst := u.cachePath(v, it.key)
		candidates := []string{dst}
		for _, dir := range garbage {
			candidates = append(candidates, it.target(dir))
		}
		f.Verified = false
		for _, c := range candidates {
			ok, err := verifyFile(c, it.a)
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
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
			f.Verified, f.Done = true, it.a.Size
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

// stage moves the verified files into versions/.<V>.staging with their
// modes (binaries executable, a workload's files as the manifest says,
// their directories 0755), writes workloads.json there, renames the
// directory to versions/<V> and writes .valid last. Every file was
// fsynced when it was verified; the directories are synced before
// anything relies on their entries.
func (u *Updater) stage(st *UpgradeState, items []item, ws []spec.Workload) error {
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
	// The directories made for workload files, synced before the staging
	// directory is renamed: .valid's sync covers only the top one.
	dirs := map[string]bool{}
	for _, it := range items {
		dst := it.target(tmp)
		if it.workload() {
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			for d := filepath.Dir(dst); d != tmp && !dirs[d]; d = filepath.Dir(d) {
				dirs[d] = true
				// 0755 whatever the umask: the workload may run as
				// another user than the agent.
				if err := os.Chmod(d, 0o755); err != nil {
					return err
				}
			}
		}
		if err := os.Rename(u.cachePath(v, it.key), dst); err != nil {
			return err
		}
		if err := os.Chmod(dst, it.perm); err != nil {
			return err
		}
		marker.Files[it.dst] = it.a.SHA256
		if it.workload() {
			// The molt binaries and some of the workload files are in
			// the staging directory, workloads.json is not, and the new
			// directories are not synced.
			faults.Point("agent/staging-workload-file")
		}
	}
	if len(ws) > 0 {
		in := spec.Installed{Version: v, Platform: u.platform, Workloads: ws}
		b, err := json.MarshalIndent(in, "", "  ")
		if err != nil {
			return err
		}
		b = append(b, '\n')
		if err := os.WriteFile(filepath.Join(tmp, workloadsName), b, 0o644); err != nil {
			return err
		}
		if err := syncFile(filepath.Join(tmp, workloadsName)); err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		marker.Files[workloadsName] = hex.EncodeToString(sum[:])
	}
	for d := range dirs {
		if err := atomicfile.SyncDir(d); err != nil {
			return err
		}
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

// workloadsName is versions/<V>/workloads.json (home.WorkloadsFile).
const workloadsName = "workloads.json"
