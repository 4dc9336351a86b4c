package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/moltfleet/molt/config"
	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/atomicfile"
	"github.com/moltfleet/molt/internal/semver"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/workload/spec"
)

// InstallFile is one binary to install: Open streams it. When SHA256 is
// set the copy must match it (the reader of a verified pack checks this
// itself as well).
type InstallFile struct {
	Open   func() (io.ReadCloser, error)
	SHA256 string
}

// InstallWorkload is one workload of the version to install (from a
// pack's manifest): Open streams one of its files, which must then match
// the file's SHA-256.
type InstallWorkload struct {
	Workload spec.Workload
	Open     func(spec.File) (io.ReadCloser, error)
}

// InstallOptions describe a first installation into a home.
type InstallOptions struct {
	Home    home.Home
	Version string
	// Platform is recorded in .valid (goos/goarch).
	Platform   string
	Agent      InstallFile
	Supervisor InstallFile
	// Workloads are the version's workloads, staged as the updater stages
	// them (versions/<V>/workloads/<name>/..., workloads.json) before
	// .valid, so the supervisor's first start runs them.
	Workloads []InstallWorkload
	// Config is agent.yaml's content; nil writes DefaultConfig. An
	// existing agent.yaml is never replaced.
	Config []byte
	Now    func() time.Time
}

// Install outcomes of each step, for the report.
const (
	Wrote = "wrote"
	Kept  = "kept"
)

// InstallStep is one line of what Install did.
type InstallStep struct {
	Path   string `json:"path"` // home-relative
	Action string `json:"action"`
	Detail string `json:"detail,omitempty"`
}

// Sentinels of Install.
var (
	// ErrOtherVersion: the home runs another version; install never
	// switches an existing home (molt-agent upgrade does, with a trial).
	ErrOtherVersion = errors.New("the home runs another version")
)

// DefaultConfig is the agent.yaml written when none is given.
const DefaultConfig = `# molt agent configuration. Unknown keys are errors.
# The environment (MOLT_SERVER, MOLT_CA_FILE, ...) and flags of
# "molt-agent run" override these values.

# The control server. Without it the agent runs local-only: upgrades come
# from "molt-agent upgrade --pack FILE".
# server: https://molt.example.com:8443
# ca_file: /opt/molt/ca.pem
# enrollment_token: "..."

# Public keys whose signatures on packs this agent trusts (files or inline
# minisign keys). Without one, every upgrade is refused.
# trusted_keys:
#   - /opt/molt/release.pub

# name: web-01
# labels: {env: prod, role: web}
# cluster: web-east
# log_level: info
# disk_reserve_mb: 64

# supervisor:
#   ready_timeout: 60s
#   crash_budget: 2
#   watch: 5m
#   stop_grace: 30s
`

// validMarker is versions/<V>/.valid, in the updater's format.
type validMarker struct {
	Version  string            `json:"version"`
	Platform string            `json:"platform"`
	Order    string            `json:"order,omitempty"`
	Files    map[string]string `json:"files"`
	Staged   time.Time         `json:"staged"`
}

// Install lays out a home for its first start: versions/<V>/ (agent,
// supervisor, .valid last), bin/molt-supervisor, state/active.json and
// agent.yaml. It is idempotent: what exists and is complete is kept, and
// agent.yaml and the identity are never replaced. A home that runs another
// version is refused with ErrOtherVersion and left as it is.
func Install(o InstallOptions) ([]InstallStep, error) {
	h, v := o.Home, o.Version
	if !pack.ValidVersion(v) {
		return nil, fmt.Errorf("version %q is not valid", v)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ws := make([]spec.Workload, len(o.Workloads))
	for i, w := range o.Workloads {
		ws[i] = w.Workload
	}
	if err := spec.CheckAll(ws); err != nil {
		return nil, err
	}
	if o.Config != nil {
		if _, err := config.Parse(o.Config); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	a, err := h.ReadActive()
	switch {
	case errors.Is(err, home.ErrNoActive):
	case err != nil:
		return nil, err
	case a.Current != v:
		how := "upgrade it with: molt-agent upgrade --pack FILE (verified, with a trial and rollback)"
		if semver.Less(v, a.Current) {
			how = "install does not downgrade; revert with: molt-agent upgrade --pack FILE (a pack of " + v + ")"
		}
		return nil, fmt.Errorf("%w: %s is active, this is %s; %s", ErrOtherVersion, a.Current, v, how)
	}

	var steps []InstallStep
	step := func(p, action, detail string) {
		r, err := filepath.Rel(h.Dir, p)
		if err != nil {
			r = p
		}
		steps = append(steps, InstallStep{Path: filepath.ToSlash(r), Action: action, Detail: detail})
	}
	for _, d := range []string{h.Dir, h.BinDir(), h.VersionsDir(), h.StateDir(), h.CacheDir(), h.LogsDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return steps, err
		}
	}

	if h.IsValid(v) {
		step(h.VersionDir(v), Kept, "complete (.valid)")
	} else {
		if err := installVersion(o); err != nil {
			return steps, fmt.Errorf("versions/%s: %w", v, err)
		}
		detail := "molt-agent, molt-supervisor"
		for _, w := range ws {
			detail += ", workload " + w.Spec.Name
		}
		step(h.VersionDir(v), Wrote, detail+", .valid")
	}

	switch _, err := os.Stat(h.SupervisorBinary()); {
	case err == nil:
		step(h.SupervisorBinary(), Kept, "the supervisor upgrades it itself")
	case errors.Is(err, fs.ErrNotExist):
		if err := copyFile(h.StagedSupervisor(v), h.SupervisorBinary(), 0o755); err != nil {
			return steps, fmt.Errorf("bin: %w", err)
		}
		step(h.SupervisorBinary(), Wrote, "from versions/"+v)
	default:
		return steps, err
	}

	if a.Current == v {
		step(h.ActivePath(), Kept, "current "+v)
	} else {
		if err := h.WriteActive(home.Active{Current: v}); err != nil {
			return steps, err
		}
		step(h.ActivePath(), Wrote, "current "+v)
	}

	switch _, err := os.Stat(h.ConfigPath()); {
	case err == nil:
		detail := "never replaced"
		if o.Config != nil {
			if old, rerr := os.ReadFile(h.ConfigPath()); rerr == nil && !bytes.Equal(old, o.Config) {
				detail = "never replaced; the given file was NOT installed"
			}
		}
		step(h.ConfigPath(), Kept, detail)
	case errors.Is(err, fs.ErrNotExist):
		content, detail := o.Config, "from the given file"
		if content == nil {
			content, detail = []byte(DefaultConfig), "default, local-only: set server and trusted_keys"
		}
		// 0600: it may hold the enrollment token.
		if err := atomicfile.WriteFile(h.ConfigPath(), content, 0o600); err != nil {
			return steps, err
		}
		step(h.ConfigPath(), Wrote, detail)
	default:
		return steps, err
	}
	if id, err := ReadIdentity(h); err == nil {
		step(h.IdentityPath(), Kept, id.ID)
	}
	return steps, nil
}

// installVersion writes versions/<V> from scratch through a temporary
// directory renamed into place, with .valid written last.
func installVersion(o InstallOptions) error {
	h, v := o.Home, o.Version
	tmp := filepath.Join(h.VersionsDir(), "."+v+".install")
	if err := errors.Join(os.RemoveAll(h.VersionDir(v)), os.RemoveAll(tmp)); err != nil {
		return err
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	marker := validMarker{Version: v, Platform: o.Platform, Order: "install", Files: map[string]string{}, Staged: o.Now().UTC()}
	for _, f := range []struct {
		name string
		src  InstallFile
	}{{filepath.Base(h.AgentBinary(v)), o.Agent}, {filepath.Base(h.StagedSupervisor(v)), o.Supervisor}} {
		sum, err := writeFrom(f.src, filepath.Join(tmp, f.name))
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		marker.Files[f.name] = sum
	}
	if err := installWorkloads(o, tmp, marker.Files); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, h.VersionDir(v)); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(h.VersionsDir()); err != nil {
		return err
	}
	return atomicfile.WriteJSON(h.ValidPath(v), marker, 0o644)
}

// installWorkloads writes every workload's files under tmp/workloads/
// with their modes, and workloads.json in the updater's format, recording
// each in files (the .valid marker).
func installWorkloads(o InstallOptions, tmp string, files map[string]string) error {
	if len(o.Workloads) == 0 {
		return nil
	}
	in := spec.Installed{Version: o.Version, Platform: o.Platform}
	// The directories made for the files are synced before the version
	// directory is renamed into place; its own sync covers only the top.
	dirs := map[string]bool{}
	for _, w := range o.Workloads {
		name := w.Workload.Spec.Name
		for _, f := range w.Workload.Files {
			rel := "workloads/" + name + "/" + f.Path
			dst := filepath.Join(tmp, filepath.FromSlash(rel))
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			for d := filepath.Dir(dst); d != tmp && !dirs[d]; d = filepath.Dir(d) {
				dirs[d] = true
			}
			src := InstallFile{SHA256: f.SHA256, Open: func() (io.ReadCloser, error) { return w.Open(f) }}
			sum, err := writeFrom(src, dst)
			if err != nil {
				return fmt.Errorf("workload %s: %s: %w", name, f.Path, err)
			}
			if err := os.Chmod(dst, os.FileMode(f.Perm())&os.ModePerm); err != nil {
				return err
			}
			files[rel] = sum
		}
		in.Workloads = append(in.Workloads, w.Workload)
	}
	for d := range dirs {
		if err := atomicfile.SyncDir(d); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	p := filepath.Join(tmp, filepath.Base(o.Home.WorkloadsFile(o.Version)))
	if err := atomicfile.WriteFile(p, b, 0o644); err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	files[filepath.Base(p)] = hex.EncodeToString(sum[:])
	return nil
}

func writeFrom(src InstallFile, dst string) (string, error) {
	r, err := src.Open()
	if err != nil {
		return "", err
	}
	defer r.Close()
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return "", err
	}
	hash := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, hash), io.LimitReader(r, pack.MaxArtifactSize+1))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	sum := hex.EncodeToString(hash.Sum(nil))
	if src.SHA256 != "" && sum != src.SHA256 {
		return "", fmt.Errorf("%w: got %s, want %s", pack.ErrHashMismatch, sum, src.SHA256)
	}
	return sum, nil
}

// copyFile copies src to dst through a temporary file and a rename.
func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	_ = os.Remove(tmp)
	if _, err := writeFrom(InstallFile{Open: func() (io.ReadCloser, error) { return io.NopCloser(in), nil }}, tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Chmod(tmp, perm); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(dst))
}

// LooksLikeHome reports whether dir holds a molt home (so uninstall never
// removes a directory that is something else).
func LooksLikeHome(h home.Home) bool {
	for _, p := range []string{h.ActivePath(), h.SupervisorBinary(), h.VersionsDir(), h.ConfigPath()} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// Uninstall removes the home's files: everything but logs/ and the
// workloads' data/ (their own state and configuration), or everything
// with purge. It refuses while an agent runs for the home. It returns the
// home-relative names it removed.
func Uninstall(h home.Home, purge bool) ([]string, error) {
	if d, ok := RunningDaemon(h); ok {
		return nil, fmt.Errorf("an agent still runs for this home (pid %d); stop it (molt-supervisor stop) first", d.Pid)
	}
	if !LooksLikeHome(h) {
		return nil, fmt.Errorf("%s does not look like a molt home (no state/active.json, bin/, versions/ or agent.yaml); nothing removed", h.Dir)
	}
	ents, err := os.ReadDir(h.Dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	kept := map[string]bool{filepath.Base(h.LogsDir()): true, filepath.Base(h.DataRoot()): true}
	for _, e := range ents {
		if kept[e.Name()] && !purge {
			continue
		}
		if err := os.RemoveAll(filepath.Join(h.Dir, e.Name())); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, e.Name())
	}
	if purge && len(errs) == 0 {
		if err := os.Remove(h.Dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}
