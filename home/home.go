// Package home is the host layout of one agent home (docs/design.md, "Host
// layout"): where every file lives, and the state files that the agent, the
// updater and the supervisor hand to each other (active.json, result.json).
// Every state file is written with internal/atomicfile.
package home

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/moltfleet/molt/internal/atomicfile"
	"github.com/moltfleet/molt/platform"
)

// Home is one agent home directory.
type Home struct{ Dir string }

// New returns the home at dir, or the platform default (MOLT_HOME, then the
// OS default) when dir is empty. The path is made absolute.
func New(dir string) Home {
	if dir == "" {
		dir = platform.DefaultHome()
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return Home{Dir: dir}
}

const (
	AgentExe      = "molt-agent"
	SupervisorExe = "molt-supervisor"
	ValidMarker   = ".valid"
)

func (h Home) path(elem ...string) string {
	return filepath.Join(append([]string{h.Dir}, elem...)...)
}

func (h Home) BinDir() string           { return h.path("bin") }
func (h Home) SupervisorBinary() string { return h.path("bin", SupervisorExe+platform.ExeSuffix()) }
func (h Home) VersionsDir() string      { return h.path("versions") }
func (h Home) VersionDir(v string) string {
	return h.path("versions", v)
}
func (h Home) AgentBinary(v string) string {
	return h.path("versions", v, AgentExe+platform.ExeSuffix())
}
func (h Home) StagedSupervisor(v string) string {
	return h.path("versions", v, SupervisorExe+platform.ExeSuffix())
}
func (h Home) ValidPath(v string) string { return h.path("versions", v, ValidMarker) }
func (h Home) StateDir() string          { return h.path("state") }
func (h Home) ActivePath() string        { return h.path("state", "active.json") }
func (h Home) IdentityPath() string      { return h.path("state", "identity.json") }
func (h Home) UpgradePath() string       { return h.path("state", "upgrade.json") }
func (h Home) ResultPath() string        { return h.path("state", "result.json") }
func (h Home) CacheDir() string          { return h.path("cache") }
func (h Home) LogsDir() string           { return h.path("logs") }
func (h Home) ConfigPath() string        { return h.path("agent.yaml") }

// IsValid reports whether versions/<v> is complete: its .valid marker exists.
func (h Home) IsValid(v string) bool {
	if v == "" {
		return false
	}
	_, err := os.Stat(h.ValidPath(v))
	return err == nil
}

// Active is state/active.json: which version runs, which ran before, and the
// trial of a freshly switched version.
type Active struct {
	Current  string `json:"current"`
	Previous string `json:"previous,omitempty"`
	Trial    *Trial `json:"trial,omitempty"`
}

// Trial is the watch over a version that was just switched to. The agent
// writes it with the switch; the supervisor sets Started when it first runs
// the version and counts Crashes; both persist so a restart of the
// supervisor or the host carries on with the same window.
type Trial struct {
	Version string `json:"version"`
	// Switched is when the agent (or the updater) switched to Version.
	Switched time.Time `json:"switched"`
	// Started is when the supervisor first started Version (zero before).
	Started time.Time `json:"started,omitempty"`
	Crashes int       `json:"crashes"`
	// WorkloadCrashes counts each workload's failures in the window.
	WorkloadCrashes map[string]int `json:"workload_crashes,omitempty"`
	// Ready is set once the version said ready at least once.
	Ready bool `json:"ready,omitempty"`
	// Order names the upgrade order (deployment) that caused the switch.
	Order string `json:"order,omitempty"`
}

// ErrNoActive means the home has no state/active.json: nothing is installed.
var ErrNoActive = errors.New("no active version (state/active.json missing)")

// ReadActive reads state/active.json.
func (h Home) ReadActive() (Active, error) {
	var a Active
	b, err := os.ReadFile(h.ActivePath())
	if errors.Is(err, fs.ErrNotExist) {
		return a, ErrNoActive
	}
	if err != nil {
		return a, err
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return a, fmt.Errorf("state/active.json: %w", err)
	}
	if a.Current == "" {
		return a, fmt.Errorf("state/active.json: no current version")
	}
	return a, nil
}

// WriteActive replaces state/active.json atomically.
func (h Home) WriteActive(a Active) error {
	if err := os.MkdirAll(h.StateDir(), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteJSON(h.ActivePath(), a, 0o644)
}

// Outcomes of a trial in result.json.
const (
	OutcomeCommitted  = "committed"
	OutcomeRolledBack = "rolled_back"
)

// Result is state/result.json: the outcome of the last trial, and of the
// supervisor's own upgrade that may follow a commit.
type Result struct {
	Outcome  string    `json:"outcome"`
	Version  string    `json:"version"`
	Previous string    `json:"previous,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Logs     string    `json:"logs,omitempty"`
	Order    string    `json:"order,omitempty"`
	At       time.Time `json:"at"`
	// Supervisor is the outcome of the supervisor's self-upgrade, if any.
	Supervisor *SupervisorResult `json:"supervisor,omitempty"`
	// Workload names the workload whose failure rolled the version back
	// (empty when molt-agent failed); WorkloadLogs is where that
	// workload's output of the failed version is kept.
	Workload     string `json:"workload,omitempty"`
	WorkloadLogs string `json:"workload_logs,omitempty"`
	// Steps are the trial's steps as the supervisor saw them (each
	// workload's start and ready, with times), for the DEPLOY report.
	Steps []Step `json:"steps,omitempty"`
}

// Step is one timed step of a trial.
type Step struct {
	At     time.Time `json:"at"`
	Name   string    `json:"name"`
	Detail string    `json:"detail,omitempty"`
}

// SupervisorResult records a self-upgrade attempt.
type SupervisorResult struct {
	From     string    `json:"from"`
	To       string    `json:"to"`
	Upgraded bool      `json:"upgraded"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
}

// ReadResult reads state/result.json; ok is false when there is none.
func (h Home) ReadResult() (r Result, ok bool, err error) {
	b, err := os.ReadFile(h.ResultPath())
	if errors.Is(err, fs.ErrNotExist) {
		return r, false, nil
	}
	if err != nil {
		return r, false, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, false, fmt.Errorf("state/result.json: %w", err)
	}
	return r, true, nil
}

// WriteResult replaces state/result.json atomically.
func (h Home) WriteResult(r Result) error {
	if err := os.MkdirAll(h.StateDir(), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteJSON(h.ResultPath(), r, 0o644)
}
