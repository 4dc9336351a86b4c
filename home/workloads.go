package home

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/moltfleet/molt/internal/atomicfile"
	"github.com/moltfleet/molt/internal/smallfile"
	"github.com/moltfleet/molt/platform"
)

// Paths of workloads (docs/workloads.md).

// WorkloadsFile is versions/<v>/workloads.json, staged before .valid.
func (h Home) WorkloadsFile(v string) string { return h.path("versions", v, "workloads.json") }

// WorkloadDir is where a workload's files are installed.
func (h Home) WorkloadDir(v, name string) string { return h.path("versions", v, "workloads", name) }

// DataDir is a workload's own state and configuration across versions:
// never inside a version directory, removed only by uninstall --purge.
func (h Home) DataDir(name string) string { return h.path("data", name) }

// DataRoot is data/.
func (h Home) DataRoot() string { return h.path("data") }

// HoldsDir is state/holds/: one JSON file per hold, written atomically
// by molt-agent hold or by any workload (the file protocol).
func (h Home) HoldsDir() string { return h.path("state", "holds") }

// WorkloadStatePath is state/workloads.json, the supervisor's account of
// the workloads it runs.
func (h Home) WorkloadStatePath() string { return h.path("state", "workloads.json") }

// ReadyFile is the file a workload with a "file" ready check creates to
// say it is ready ($MOLT_READY_FILE); the supervisor removes it before
// every start.
func (h Home) ReadyFile(name string) string { return h.path("state", "ready", name) }

// WorkloadLogName is the file name, under logs/, of a workload's output
// while it runs from version v.
func WorkloadLogName(name, v string) string { return "workload-" + name + "-" + v + ".log" }

// Workload states.
const (
	WorkloadStarting  = "starting"  // started, ready check not passed yet
	WorkloadReady     = "ready"     // ready check passed, live checks pass
	WorkloadUnhealthy = "unhealthy" // live check failed Failures times in a row
	WorkloadCrashed   = "crashed"   // exited without being asked; restart pending (backoff)
	WorkloadStopped   = "stopped"   // stopped (asked, or restart policy never)
)

// WorkloadStatus is one workload as the supervisor runs it.
type WorkloadStatus struct {
	Name string `json:"name"`
	// Version is the version directory the running files come from; it
	// can be older than the current version when a release did not
	// change the workload (it is not restarted then). Cleanup keeps it.
	Version  string `json:"version"`
	Identity string `json:"identity"`
	State    string `json:"state"`
	// Process identifies the running process (zero when none runs).
	Process  platform.ProcessIdentity `json:"process,omitzero"`
	Restarts int                      `json:"restarts"`
	// LastExit describes the last exit not asked for ("exit status 3",
	// "signal: killed").
	LastExit string `json:"last_exit,omitempty"`
	// Reason says why the state is what it is (the failed check).
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
	// ReadyAt is when the ready check last passed.
	ReadyAt time.Time `json:"ready_at,omitzero"`
}

// WorkloadState is state/workloads.json.
type WorkloadState struct {
	// Supervisor is the pid of the supervisor that wrote the file.
	Supervisor int              `json:"supervisor_pid"`
	Updated    time.Time        `json:"updated"`
	Workloads  []WorkloadStatus `json:"workloads"`
	// AgentRestarts is how many times this supervisor started molt-agent
	// again after it crashed (or failed to start); the agent reports it
	// and the server's health watch compares it with its baseline.
	AgentRestarts int `json:"agent_restarts,omitempty"`
}

// maxWorkloadState bounds state/workloads.json when read.
const maxWorkloadState = 1 << 20

// ReadWorkloadState reads state/workloads.json; a home without one has no
// workloads (a zero state and no error).
func (h Home) ReadWorkloadState() (WorkloadState, error) {
	var s WorkloadState
	b, err := smallfile.Read(h.WorkloadStatePath(), maxWorkloadState)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("state/workloads.json: %w", err)
	}
	return s, nil
}

// WriteWorkloadState replaces state/workloads.json atomically.
func (h Home) WriteWorkloadState(s WorkloadState) error {
	if err := os.MkdirAll(h.StateDir(), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteJSON(h.WorkloadStatePath(), s, 0o644)
}

// VersionsInUse returns the versions whose files running workloads use
// (state/workloads.json), which cleanup must keep besides current and
// previous.
func (h Home) VersionsInUse() ([]string, error) {
	s, err := h.ReadWorkloadState()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, w := range s.Workloads {
		if w.Version != "" && w.State != WorkloadStopped {
			out = append(out, w.Version)
		}
	}
	return out, nil
}
