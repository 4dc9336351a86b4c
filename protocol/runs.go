package protocol

import (
	"time"
)

// Deployment states.
const (
	StatePending        = "pending"
	StateWaitingForHost = "waiting_for_host"
	// StateWaitingForWindow: the host is free, the run has room, but the
	// deployment's maintenance window is closed.
	StateWaitingForWindow = "waiting_for_window"
	StateRequested        = "requested"
	StateDownloading      = "downloading"
	StateStaged           = "staged"
	StateRestarting       = "restarting"
	StateWatching         = "watching"
	// StateStuck: handed to the agent, then no progress for
	// deployments.stuck-after. It holds no slot of the run's
	// max-concurrent and has not ended: progress moves it back on, an
	// operator retries or cancels it, deployments.timeout fails it.
	StateStuck      = "stuck"
	StateSucceeded  = "succeeded"
	StateFailed     = "failed"
	StateRolledBack = "rolled_back"
	StateSkipped    = "skipped"
	StateCancelled  = "cancelled"
)

// DeploymentStates lists every state in order.
var DeploymentStates = []string{
	StatePending, StateWaitingForHost, StateWaitingForWindow, StateRequested, StateDownloading, StateStaged,
	StateRestarting, StateWatching, StateStuck, StateSucceeded, StateFailed, StateRolledBack,
	StateSkipped, StateCancelled,
}

// InProgress reports whether a deployment in state s counts toward a run's
// max-concurrent (it has been handed to the agent and has not ended).
func InProgress(s string) bool {
	switch s {
	case StateRequested, StateDownloading, StateStaged, StateRestarting, StateWatching:
		return true
	}
	return false
}

// Handed reports whether a deployment in state s was handed to its agent
// and has not ended: in progress or stuck. The agent keeps its order and
// its reports count.
func Handed(s string) bool {
	return InProgress(s) || s == StateStuck
}

// Queued reports whether a deployment in state s waits to be handed to
// its agent (pending, or waiting for its host or its window).
func Queued(s string) bool {
	return s == StatePending || s == StateWaitingForHost || s == StateWaitingForWindow
}

// Terminal reports whether s is an end state.
func Terminal(s string) bool {
	switch s {
	case StateSucceeded, StateFailed, StateRolledBack, StateSkipped, StateCancelled:
		return true
	}
	return false
}

// PhaseRank orders the in-progress states, so a late report never moves a
// deployment backwards.
func PhaseRank(s string) int {
	for i, st := range []string{StateRequested, StateDownloading, StateStaged, StateRestarting, StateWatching} {
		if st == s {
			return i + 1
		}
	}
	return 0
}

// Deployment kinds.
const (
	KindUpgrade    = "upgrade"    // part of a run
	KindRepair     = "repair"     // the agent came back with another version than its last successful target
	KindActivation = "activation" // upgrade on activation
)

// Deployment is one agent's upgrade.
type Deployment struct {
	ID        string `json:"id"`
	RunID     string `json:"run_id,omitempty"`
	AgentID   string `json:"agent_id"`
	AgentName string `json:"agent_name,omitempty"`
	Platform  string `json:"platform"`
	Kind      string `json:"kind"`
	From      string `json:"from,omitempty"`
	Target    string `json:"target"`
	Revert    bool   `json:"revert,omitempty"`
	// Wave is the run's wave it belongs to (0 when the run has one);
	// Canary, whether it was chosen as a canary (wave 0).
	Wave   int    `json:"wave,omitempty"`
	Canary bool   `json:"canary,omitempty"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Workload names the workload whose failure rolled the upgrade back
	// (TrialResult.Workload), empty when molt-agent failed.
	Workload string    `json:"workload,omitempty"`
	Done     int64     `json:"done,omitempty"`
	Total    int64     `json:"total,omitempty"`
	Created  time.Time `json:"created"`
	Started  time.Time `json:"started,omitempty"` // when it was requested from the agent
	Ended    time.Time `json:"ended,omitempty"`
	Updated  time.Time `json:"updated"`
}

// DeploymentReport is GET /v1/deployments/{id}: the deployment and its
// DEPLOY report (every step with its time, agent and server steps alike).
type DeploymentReport struct {
	Deployment Deployment `json:"deployment"`
	Steps      []Step     `json:"steps"`
}

// Run statuses.
const (
	RunRunning    = "running"
	RunPaused     = "paused"
	RunEndedOK    = "ended_ok"
	RunEndedNotOK = "ended_not_ok"
	RunCancelled  = "cancelled"
)

// Hook status values (MOLT_RUN_STATUS).
const (
	HookEndedOK    = "ENDED_OK"
	HookEndedNotOK = "ENDED_NOT_OK"
)

// Scopes of a run.
const (
	ScopeSupervised = "supervised"
	ScopeAll        = "all"
)

// Selection chooses the agents of a run: exactly one of AgentIDs, Labels
// (all must match), All or Filter (the agents GET /v1/agents lists for
// it when the run is created).
type Selection struct {
	AgentIDs []string          `json:"agent_ids,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	All      bool              `json:"all,omitempty"`
	Filter   *AgentFilter      `json:"filter,omitempty"`
}

// RunRequest is POST /v1/runs.
type RunRequest struct {
	Text      string    `json:"text,omitempty"`
	Selection Selection `json:"selection"`
	// Target is "latest" or a version; TargetFor overrides it per platform.
	Target    string            `json:"target"`
	TargetFor map[string]string `json:"target_for,omitempty"`
	Scope     string            `json:"scope,omitempty"` // supervised (default) | all
	// MaxConcurrent bounds deployments in progress (default 10, 1..10000).
	MaxConcurrent int `json:"max_concurrent,omitempty"`
	// FailureThreshold pauses the run when failed+rolled_back reach it (0: never).
	FailureThreshold int `json:"failure_threshold,omitempty"`
	// DryRun returns the plan (per platform: agents, target) and exclusions
	// without creating anything.
	DryRun bool `json:"dry_run,omitempty"`
	// Force includes agents whose target is quarantined for their
	// platform (they are left out otherwise).
	Force bool `json:"force,omitempty"`
	RunControls
}

// RunControls are how a run rolls out, beyond max_concurrent and
// failure_threshold; every one is optional (docs/rollouts.md).
type RunControls struct {
	// Canary upgrades this many agents first (wave 0), chosen to cover
	// every platform, OS family and value of the CanaryCover label keys;
	// the next wave waits for them to end and for CanarySoakSeconds.
	Canary            int      `json:"canary,omitempty"`
	CanaryCover       []string `json:"canary_cover,omitempty"`
	CanarySoakSeconds int      `json:"canary_soak_seconds,omitempty"`
	// Waves are cumulative shares of the selection ("5%", "25%", "100%");
	// WaveLabel orders waves by label value instead ("ring=early", ...;
	// agents with none of them form a last wave).
	Waves     []string `json:"waves,omitempty"`
	WaveLabel []string `json:"wave_label,omitempty"`
	// A wave is done once none of its deployments is in progress and
	// WaveDonePercent of them (default 90) succeeded; the next starts
	// WaveWaitSeconds later, or when promoted if WaveApprove.
	WaveWaitSeconds int  `json:"wave_wait_seconds,omitempty"`
	WaveApprove     bool `json:"wave_approve,omitempty"`
	WaveDonePercent int  `json:"wave_done_percent,omitempty"`
	// MaxConcurrentPercent bounds deployments in progress as a share of
	// the run's agents (at least 1), instead of MaxConcurrent.
	MaxConcurrentPercent float64 `json:"max_concurrent_percent,omitempty"`
	// MaxFailuresPercent halts the run when failed and rolled back
	// deployments reach this share of those ended, once MinSample ended.
	MaxFailuresPercent float64 `json:"max_failures_percent,omitempty"`
	MinSample          int     `json:"min_sample,omitempty"`
	// RatePerMinute bounds deployments started per minute; Ramp multiplies
	// it every minute (2: doubling), up to the concurrency limit.
	RatePerMinute int     `json:"rate_per_minute,omitempty"`
	Ramp          float64 `json:"ramp,omitempty"`
	// StartAt starts nothing before that time; SpreadSeconds spreads the
	// deployments' earliest starts evenly over that long after it.
	StartAt       time.Time `json:"start_at,omitempty"`
	SpreadSeconds int       `json:"spread_seconds,omitempty"`
	// Window is the maintenance window deployments start in (internal/window
	// syntax, e.g. "Mon-Fri 01:00-05:00 Europe/Berlin").
	Window string `json:"window,omitempty"`
	// Health-driven halt (docs/server.md): after its trial committed, an
	// upgraded agent is watched for HealthSoakSeconds (default 15 min);
	// the run halts when its workloads or check-ins do worse than before
	// the upgrade on HealthMinAgents (default 2) and HealthPercent
	// (default 10) of the soaking agents, or on any one crash loop.
	// NoHealthHalt turns the watch off.
	HealthSoakSeconds int     `json:"health_soak_seconds,omitempty"`
	HealthMinAgents   int     `json:"health_min_agents,omitempty"`
	HealthPercent     float64 `json:"health_percent,omitempty"`
	NoHealthHalt      bool    `json:"no_health_halt,omitempty"`
}

// WaveStatus is one wave of a run as GET /v1/runs/{id} shows it.
type WaveStatus struct {
	Wave   int            `json:"wave"`
	Name   string         `json:"name"` // "canary", "5%", "ring=early", "rest"
	Agents int            `json:"agents"`
	Counts map[string]int `json:"counts"`
	// State is waiting, open, done or approval (done, waiting for
	// molt runs promote).
	State string `json:"state"`
}

// PlanLine is one platform of a run.
type PlanLine struct {
	Platform string `json:"platform"`
	Agents   int    `json:"agents"`
	Target   string `json:"target"`
	Revert   int    `json:"revert,omitempty"` // how many of them go to a lower version
}

// Exclusion is a selected agent left out of a run, with why.
type Exclusion struct {
	AgentID   string `json:"agent_id"`
	AgentName string `json:"agent_name,omitempty"`
	Reason    string `json:"reason"`
}

// Run is an upgrade run.
type Run struct {
	ID               string            `json:"id"`
	Text             string            `json:"text,omitempty"`
	Status           string            `json:"status"`
	Target           string            `json:"target"`
	TargetFor        map[string]string `json:"target_for,omitempty"`
	Scope            string            `json:"scope"`
	MaxConcurrent    int               `json:"max_concurrent"`
	FailureThreshold int               `json:"failure_threshold,omitempty"`
	Selection        Selection         `json:"selection"`
	CreatedBy        string            `json:"created_by,omitempty"`
	Created          time.Time         `json:"created"`
	Ended            time.Time         `json:"ended,omitempty"`
	Reason           string            `json:"reason,omitempty"` // why it paused or ended
	Plan             []PlanLine        `json:"plan,omitempty"`
	Excluded         []Exclusion       `json:"excluded,omitempty"`
	// Counts maps a deployment state to how many deployments are in it.
	Counts map[string]int `json:"counts"`
	Total  int            `json:"total"`
	RunControls
	// Waves and the wave now open, with when the next may open (soak).
	WaveList []WaveStatus `json:"waves_status,omitempty"`
	Wave     int          `json:"wave"`
	NextWave time.Time    `json:"next_wave_at,omitempty"`
}
