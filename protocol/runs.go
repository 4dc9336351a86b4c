package protocol

import (
	"time"
)

// Deployment states.
const (
	StatePending        = "pending"
	StateWaitingForHost = "waiting_for_host"
	StateRequested      = "requested"
	StateDownloading    = "downloading"
	StateStaged         = "staged"
	StateRestarting     = "restarting"
	StateWatching       = "watching"
	StateSucceeded      = "succeeded"
	StateFailed         = "failed"
	StateRolledBack     = "rolled_back"
	StateSkipped        = "skipped"
	StateCancelled      = "cancelled"
)

// DeploymentStates lists every state in order.
var DeploymentStates = []string{
	StatePending, StateWaitingForHost, StateRequested, StateDownloading, StateStaged,
	StateRestarting, StateWatching, StateSucceeded, StateFailed, StateRolledBack,
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
	State     string `json:"state"`
	Reason    string `json:"reason,omitempty"`
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
// (all must match) or All.
type Selection struct {
	AgentIDs []string          `json:"agent_ids,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	All      bool              `json:"all,omitempty"`
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
}
