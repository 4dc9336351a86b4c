package updater

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/atomicfile"
	"github.com/moltfleet/molt/updater/pack"
)

// Phase is where an order stands in state/upgrade.json.
type Phase string

const (
	// PhaseNone: no order has been seen (no upgrade.json).
	PhaseNone Phase = ""
	// PhasePreflight: the manifest is being fetched and checked.
	PhasePreflight Phase = "preflight"
	// PhaseDownloading: artifacts are being fetched into cache/.
	PhaseDownloading Phase = "downloading"
	// PhaseVerified: every artifact is in cache/ with its size and SHA-256
	// checked against the signed manifest.
	PhaseVerified Phase = "verified"
	// PhaseStaged: versions/<V>/ is complete and marked .valid.
	PhaseStaged Phase = "staged"
	// PhaseSwitched: active.json names the version, in trial.
	PhaseSwitched Phase = "switched"
	// PhaseDone: the order is finished (see Finish).
	PhaseDone Phase = "done"
	// PhaseFailed: the last attempt failed; Error says why. A refusal
	// stays failed; a transient failure resumes on the next Prepare.
	PhaseFailed Phase = "failed"
	// PhaseAborted: the order was dropped with Abort.
	PhaseAborted Phase = "aborted"
)

// UpgradeState is state/upgrade.json: the in-flight order.
type UpgradeState struct {
	Order   string `json:"order"`
	Version string `json:"version"`
	Source  Source `json:"source"`
	Phase   Phase  `json:"phase"`
	// Platform is the goos/goarch whose artifacts are fetched.
	Platform string `json:"platform,omitempty"`
	// Files are the artifacts by role ("agent", "supervisor").
	Files map[string]*FileState `json:"files,omitempty"`
	// Error is the last failure, one line.
	Error string `json:"error,omitempty"`
	// Refused is set when Error is a refusal (see IsRefusal): the
	// order's cache was removed. Prepare runs every check again.
	Refused bool      `json:"refused,omitempty"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
}

// FileState is one artifact's download.
type FileState struct {
	URL    string `json:"url,omitempty"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Done is how many bytes are on disk (verified ones once Verified).
	Done int64 `json:"done"`
	// ETag and LastModified are the validator of the response the
	// partial bytes came from, sent back in If-Range on resume.
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	Verified     bool   `json:"verified,omitempty"`
}

// maxStateSize bounds state files read back from disk. upgrade.json and
// .valid name every file of a manifest, which may name thousands of a
// workload's files.
const maxStateSize = 4 * pack.MaxManifestSize

func readJSON(path string, v any) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if len(b) > maxStateSize {
		return false, fmt.Errorf("%s: larger than %d bytes", filepath.Base(path), maxStateSize)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return true, nil
}

func writeJSON(h home.Home, path string, v any) error {
	if err := os.MkdirAll(h.StateDir(), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteJSON(path, v, 0o644)
}

// loadState reads upgrade.json. The file is a record, not the truth:
// every step checks the files themselves again, so a file that a power
// cut left unreadable is reported and then ignored (the order starts over
// from what is on disk).
func (u *Updater) loadState() (UpgradeState, error) {
	var st UpgradeState
	_, err := readJSON(u.home.UpgradePath(), &st)
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax) || errors.As(err, &typ):
		u.log.Warn("state/upgrade.json is unreadable; starting the order over", zap.Error(err))
		return UpgradeState{}, nil
	case err != nil:
		return UpgradeState{}, fmt.Errorf("read upgrade state: %w", err)
	}
	return st, nil
}

// saveState writes upgrade.json atomically (temp file, rename) but
// without fsync: the durable truth is in versions/<V>/.valid and
// active.json, both synced; losing the newest upgrade.json to a power cut
// costs a re-check of the files on the next Prepare, while each fsync
// costs milliseconds on a busy disk.
func (u *Updater) saveState(st *UpgradeState) error {
	st.Updated = u.now().UTC()
	if err := writeJSONFast(u.home, u.home.UpgradePath(), st); err != nil {
		return fmt.Errorf("write upgrade state: %w", err)
	}
	return nil
}

// writeJSONFast replaces path by rename without fsync: a reader sees the
// old or the new content, a power cut may lose the new one.
func writeJSONFast(h home.Home, path string, v any) error {
	if err := os.MkdirAll(h.StateDir(), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, werr := f.Write(append(b, '\n'))
	if err := errors.Join(werr, f.Close()); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// floorState is state/floor.json: the highest floor of any verified
// manifest. It only ever rises, so a compromised server cannot walk an
// agent back below a floor it once saw.
type floorState struct {
	Floor string    `json:"floor"`
	From  string    `json:"from"`
	At    time.Time `json:"at"`
}

func (u *Updater) floorPath() string { return filepath.Join(u.home.StateDir(), "floor.json") }

// Floor is the highest floor of any verified manifest seen so far ("" if
// none).
func (u *Updater) Floor() (string, error) {
	var f floorState
	if _, err := readJSON(u.floorPath(), &f); err != nil {
		return "", fmt.Errorf("read floor: %w", err)
	}
	return f.Floor, nil
}
