// Package protocol holds the wire types of molt's HTTP/JSON API: the agent
// protocol (enroll, check-in, report, packs) and the operator API (tokens,
// agents, releases, settings, runs, deployments, history, events). Agent and
// server both import it, so a field changes in one place. The protocol is
// versioned by Version; fields are only ever added, never renamed.
package protocol

import (
	"fmt"
	"time"
	"unicode"
)

// Version is the agent protocol version this build speaks. An agent sends
// its own in every request; the server serves every version from
// MinVersion and marks agents below Version "upgrade required".
const (
	Version    = 1
	MinVersion = 1
)

// Request limits the server enforces (bytes of a request body).
const (
	MaxBodySize     = 1 << 20 // every JSON body
	MaxPackSize     = 2 << 30 // POST /v1/releases (a pack archive)
	MaxLabels       = 64      // labels per agent
	MaxStringLen    = 256     // any single string field
	MaxReportSteps  = 256     // steps in one report
	MaxHolds        = 32      // holds in one status
	MaxRunAgents    = 100000  // agent ids in one selection
	DefaultPollWait = 60 * time.Second
	// MaxPollSeconds bounds the agents.poll-seconds setting and a
	// check-in's wait_seconds.
	MaxPollSeconds = 600
	// MaxDeploymentSteps bounds the steps a deployment's DEPLOY report
	// keeps, the agent's and the server's: the server records no agent
	// step past it.
	MaxDeploymentSteps = 1000
)

// Header names.
const (
	// HeaderAuthorization carries "Bearer <token>": an API token, or an
	// agent credential on /v1/agent/* and /v1/packs/*.
	HeaderAuthorization = "Authorization"
)

// Error is the body of every non-2xx response.
type Error struct {
	// Error is one line for a human.
	Error string `json:"error"`
	// Code is stable and for programs (see the Code* constants).
	Code string `json:"code"`
}

// Error codes.
const (
	CodeBadRequest       = "bad_request"        // 400: malformed JSON or a field out of range
	CodeUnauthorized     = "unauthorized"       // 401: no or unknown token or credential
	CodeForbidden        = "forbidden"          // 403: the token's role is too low
	CodeNotFound         = "not_found"          // 404
	CodeMethodNotAllowed = "method_not_allowed" // 405
	CodeConflict         = "conflict"           // 409: the object's state forbids it
	CodeIdentityCloned   = "identity_cloned"    // 409: same agent id, another machine fingerprint: re-enroll
	CodeAgentRevoked     = "agent_revoked"      // 401: the credential was revoked: re-enroll
	CodeEnrollToken      = "enrollment_refused" // 401: enrollment token unknown, expired or used up
	CodeHostRefused      = "host_refused"       // 403: the machine of a revoked agent enrolls: an admin must allow it (molt agents allow)
	CodeProtocol         = "protocol_unsupported"
	CodeTooLarge         = "too_large"        // 413
	CodePackRejected     = "pack_rejected"    // 422: import refused (signature, manifest, files)
	CodeUnavailable      = "unavailable"      // 503: shutting down
	CodeInternal         = "internal"         // 500
	CodeBelowFloor       = "below_floor"      // 422: a target below an agent's floor
	CodeRevertNeedsRole  = "revert_forbidden" // 403: a revert needs the operator role
)

// Roles of API tokens, in increasing power. Each role may do what the
// lower ones may.
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
	RoleAdmin    = "admin"
)

// RoleRank orders roles; 0 is not a role.
func RoleRank(role string) int {
	switch role {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// OS families for activation upgrade settings.
const (
	FamilyLinux   = "linux"
	FamilyWindows = "windows"
	FamilyUnix    = "unix"
)

// ----- agent protocol -----

// EnrollRequest is POST /v1/agent/enroll. The enrollment token is in the
// body, not in Authorization.
type EnrollRequest struct {
	ProtocolVersion   int               `json:"protocol_version"`
	EnrollmentToken   string            `json:"enrollment_token"`
	Name              string            `json:"name"`
	Hostname          string            `json:"hostname"`
	Platform          string            `json:"platform"`  // goos/goarch
	OSFamily          string            `json:"os_family"` // linux | windows | unix
	Version           string            `json:"version"`
	Supervised        bool              `json:"supervised"`
	SupervisorVersion string            `json:"supervisor_version,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Cluster           string            `json:"cluster,omitempty"`
	Fingerprint       string            `json:"fingerprint"`
	PendingReboot     bool              `json:"pending_reboot,omitempty"`
	FreeDiskBytes     int64             `json:"free_disk_bytes,omitempty"`
	// Floor is the highest pack floor the agent has seen.
	Floor string `json:"floor,omitempty"`
}

// EnrollResponse answers an enrollment. The agent stores AgentID and
// Credential in state/identity.json (0600); the credential is never shown
// again.
type EnrollResponse struct {
	AgentID    string `json:"agent_id"`
	Credential string `json:"credential"`
	// Activation is what upgrade on activation decided: "requested" (an
	// upgrade order follows on the first check-in), "skipped" (Reason says
	// why) or "" (nothing to do).
	Activation       string        `json:"activation,omitempty"`
	ActivationReason string        `json:"activation_reason,omitempty"`
	Settings         AgentSettings `json:"settings"`
}

// Status is what an agent says about itself on every check-in.
type Status struct {
	ProtocolVersion   int               `json:"protocol_version"`
	Fingerprint       string            `json:"fingerprint"`
	Name              string            `json:"name,omitempty"`
	Hostname          string            `json:"hostname,omitempty"`
	Platform          string            `json:"platform"`
	OSFamily          string            `json:"os_family"`
	Version           string            `json:"version"`
	Supervised        bool              `json:"supervised"`
	SupervisorVersion string            `json:"supervisor_version,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Cluster           string            `json:"cluster,omitempty"`
	Busy              bool              `json:"busy"`
	// Holds name reasons the agent must not be upgraded now (maintenance
	// windows, a hold file); any hold makes it wait like a busy agent.
	Holds         []string `json:"holds,omitempty"`
	FreeDiskBytes int64    `json:"free_disk_bytes,omitempty"`
	PendingReboot bool     `json:"pending_reboot,omitempty"`
	Floor         string   `json:"floor,omitempty"`
	// Upgrade is the order in flight, if any.
	Upgrade *UpgradeProgress `json:"upgrade,omitempty"`
	// LastResult is the outcome of the last trial (state/result.json).
	LastResult *TrialResult `json:"last_result,omitempty"`
	// Workloads are the operator's workloads the supervisor runs
	// (state/workloads.json), at most MaxWorkloads.
	Workloads []Workload `json:"workloads,omitempty"`
}

// Unsafe reports whether r is a character a terminal acts on: the C0 and
// C1 controls (ESC starts terminal sequences) and the bidi overrides that
// reorder what an operator reads. The server refuses agent strings with
// one; the agent makes its workloads' words printable before sending.
func Unsafe(r rune) bool {
	return unicode.IsControl(r) || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069')
}

// MaxWorkloads bounds Status.Workloads.
const MaxWorkloads = 16

// Workload states (home.Workload*).
const (
	WorkloadStarting  = "starting"
	WorkloadReady     = "ready"
	WorkloadUnhealthy = "unhealthy"
	WorkloadCrashed   = "crashed"
	WorkloadStopped   = "stopped"
)

// Workload is one workload as an agent reports it.
type Workload struct {
	Name     string    `json:"name"`
	Version  string    `json:"version"`
	State    string    `json:"state"` // starting | ready | unhealthy | crashed | stopped
	Restarts int       `json:"restarts"`
	LastExit string    `json:"last_exit,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Since    time.Time `json:"since"`
}

// UpgradeProgress is an order in flight on the agent.
type UpgradeProgress struct {
	OrderID string `json:"order_id"`
	Version string `json:"version"`
	// Phase is a deployment state: downloading, staged, restarting, watching.
	Phase string `json:"phase"`
	Done  int64  `json:"done,omitempty"`  // bytes downloaded
	Total int64  `json:"total,omitempty"` // bytes to download
}

// Trial outcomes (state/result.json).
const (
	TrialCommitted  = "committed"
	TrialRolledBack = "rolled_back"
)

// TrialResult mirrors state/result.json.
type TrialResult struct {
	Outcome  string    `json:"outcome"` // committed | rolled_back
	Version  string    `json:"version"`
	Previous string    `json:"previous,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Logs     string    `json:"logs,omitempty"`
	OrderID  string    `json:"order_id,omitempty"`
	At       time.Time `json:"at"`
	// Supervisor is the supervisor's self-upgrade, if one was attempted.
	Supervisor *SupervisorResult `json:"supervisor,omitempty"`
	// Workload names the workload whose failure rolled the version back;
	// WorkloadLogs is where its output of the failed version is kept.
	Workload     string `json:"workload,omitempty"`
	WorkloadLogs string `json:"workload_logs,omitempty"`
}

// SupervisorResult is a supervisor self-upgrade outcome.
type SupervisorResult struct {
	From     string    `json:"from"`
	To       string    `json:"to"`
	Upgraded bool      `json:"upgraded"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
}

// CheckinRequest is POST /v1/agent/checkin (agent credential). The server
// holds the request until an order waits for the agent or the poll wait
// (about 60 s) passes; the agent adds jitter before the next one.
type CheckinRequest struct {
	Status Status `json:"status"`
	// WaitSeconds is the longest the agent waits for the answer (1 to
	// MaxPollSeconds; its own deadline adds a margin). The server holds the
	// request for the smaller of it and agents.poll-seconds, so a raised
	// setting never outlasts an agent's deadline: the agent learns the new
	// setting from the answer and waits that long from the next check-in
	// on. 0 (agents that do not send it) counts as DefaultPollWait.
	WaitSeconds int `json:"wait_seconds,omitempty"`
}

// CheckinResponse carries the orders for the agent, oldest first.
type CheckinResponse struct {
	Orders     []Order       `json:"orders,omitempty"`
	Settings   AgentSettings `json:"settings"`
	ServerTime time.Time     `json:"server_time"`
}

// AgentSettings are server-side settings the agent follows.
type AgentSettings struct {
	// PollSeconds is agents.poll-seconds: the long-poll wait the server
	// uses when the agent's wait_seconds allows it. The agent sends it as
	// wait_seconds from then on and sets its deadline above it.
	PollSeconds int `json:"poll_seconds"`
}

// Order kinds.
const (
	OrderUpgrade = "upgrade"
	OrderCleanup = "cleanup"
)

// Order is work for the agent. An order is delivered on every check-in
// until the agent reports its end, so the agent must treat a known ID as
// the same order (resume, not restart).
type Order struct {
	// ID is the deployment id for upgrades; cleanup orders have their own.
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Upgrade fields.
	Version string `json:"version,omitempty"`
	// PackURL is the base URL of the pack: PackURL+"/manifest.json",
	// PackURL+"/manifest.json.sig", PackURL+"/"+artifact path.
	PackURL string `json:"pack_url,omitempty"`
	Repair  bool   `json:"repair,omitempty"`
	Revert  bool   `json:"revert,omitempty"`
	// Cleanup fields: the versions to keep; every other installed version
	// may be removed.
	Keep []string `json:"keep,omitempty"`
}

// ReportRequest is POST /v1/agent/report: steps of one order (the DEPLOY
// report), progress, and its end. Reports are idempotent: a step already
// recorded (same name and time) is not recorded twice.
type ReportRequest struct {
	OrderID string `json:"order_id"`
	// Phase moves the deployment: downloading, staged, restarting, watching.
	Phase string `json:"phase,omitempty"`
	Steps []Step `json:"steps,omitempty"`
	Done  int64  `json:"done,omitempty"`
	Total int64  `json:"total,omitempty"`
	End   *End   `json:"end,omitempty"`
}

// Step is one line of the DEPLOY report.
type Step struct {
	At     time.Time `json:"at"`
	Name   string    `json:"name"` // e.g. download, verify, stage, switch, exit, start, ready, commit, cleanup
	Detail string    `json:"detail,omitempty"`
}

// End outcomes an agent reports.
const (
	EndSucceeded  = "succeeded"
	EndFailed     = "failed"
	EndRolledBack = "rolled_back"
)

// End is the end of an order.
type End struct {
	Outcome string `json:"outcome"` // succeeded | failed | rolled_back
	Reason  string `json:"reason,omitempty"`
	Version string `json:"version,omitempty"` // version running now
}

// ReportResponse acknowledges a report; Cancelled tells the agent to drop
// an order the operator cancelled before it switched.
type ReportResponse struct {
	State     string `json:"state"`
	Cancelled bool   `json:"cancelled,omitempty"`
}

// ----- deployments and runs -----

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

// RunReport is GET /v1/runs/{id}/report: the run and every deployment with
// its end (the CAU report).
type RunReport struct {
	Run         Run          `json:"run"`
	Deployments []Deployment `json:"deployments"`
}

// ----- agents -----

// Agent connection statuses.
const (
	AgentOnline   = "online"
	AgentOffline  = "offline"
	AgentInactive = "inactive"
	// AgentRevoked is shown for a revoked agent whatever its last
	// check-in: it no longer connects.
	AgentRevoked = "revoked"
)

// Upgrade statuses of an agent.
const (
	UpgradeUpToDate       = "up_to_date"
	UpgradeRecommended    = "upgrade_recommended"
	UpgradeRequired       = "upgrade_required"        // protocol version too old
	UpgradeManualRequired = "manual_upgrade_required" // unsupervised, or below agents.min-auto-upgrade-version
)

// Agent is an enrolled agent as operators see it.
type Agent struct {
	ID                string            `json:"id"`
	Name              string            `json:"name"`
	Hostname          string            `json:"hostname"`
	Platform          string            `json:"platform"`
	OSFamily          string            `json:"os_family"`
	Version           string            `json:"version"`
	Supervised        bool              `json:"supervised"`
	SupervisorVersion string            `json:"supervisor_version,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Cluster           string            `json:"cluster,omitempty"`
	ProtocolVersion   int               `json:"protocol_version"`
	Status            string            `json:"status"`         // online | offline | inactive | revoked
	UpgradeStatus     string            `json:"upgrade_status"` // up_to_date | upgrade_recommended | ...
	TargetVersion     string            `json:"target_version,omitempty"`
	Busy              bool              `json:"busy"`
	Holds             []string          `json:"holds,omitempty"`
	PendingReboot     bool              `json:"pending_reboot,omitempty"`
	FreeDiskBytes     int64             `json:"free_disk_bytes,omitempty"`
	Floor             string            `json:"floor,omitempty"`
	Enrolled          time.Time         `json:"enrolled"`
	LastSeen          time.Time         `json:"last_seen,omitempty"`
	Revoked           bool              `json:"revoked,omitempty"`
	LastResult        *TrialResult      `json:"last_result,omitempty"`
	Workloads         []Workload        `json:"workloads,omitempty"`
	// HostRefused: the agent is revoked and its host (its machine
	// fingerprint) may not enroll again until an admin allows it
	// (POST /v1/agents/{id}/allow).
	HostRefused bool `json:"host_refused,omitempty"`
}

// ----- tokens -----

// TokenRequest is POST /v1/tokens.
type TokenRequest struct {
	Role string `json:"role"`
	Name string `json:"name,omitempty"`
}

// Token describes an API token (never its secret).
type Token struct {
	ID       string    `json:"id"`
	Name     string    `json:"name,omitempty"`
	Role     string    `json:"role"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitempty"`
	Revoked  bool      `json:"revoked,omitempty"`
}

// TokenCreated answers POST /v1/tokens; Secret is shown only here.
type TokenCreated struct {
	Token  Token  `json:"token"`
	Secret string `json:"secret"`
}

// EnrollTokenRequest is POST /v1/enroll-tokens.
type EnrollTokenRequest struct {
	Name string `json:"name,omitempty"`
	// ExpiresIn in seconds (default 86400; at most one year).
	ExpiresIn int64 `json:"expires_in,omitempty"`
	// Uses is how many enrollments it allows (default 1; 0 is not allowed;
	// at most 1,000,000).
	Uses int `json:"uses,omitempty"`
}

// EnrollToken describes an enrollment token.
type EnrollToken struct {
	ID      string    `json:"id"`
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Uses    int       `json:"uses"`
	Used    int       `json:"used"`
	Revoked bool      `json:"revoked,omitempty"`
}

// EnrollTokenCreated answers POST /v1/enroll-tokens; Secret is shown only here.
type EnrollTokenCreated struct {
	Token  EnrollToken `json:"token"`
	Secret string      `json:"secret"`
}

// ----- releases and settings -----

// Release is an imported pack.
type Release struct {
	Version   string    `json:"version"`
	Released  time.Time `json:"released"`
	Floor     string    `json:"floor,omitempty"`
	Platforms []string  `json:"platforms"`
	Imported  time.Time `json:"imported"`
	Size      int64     `json:"size"`
}

// Setting is one key and its value.
type Setting struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	// Default is true when the value is the built-in default.
	Default bool `json:"default,omitempty"`
}

// SettingRequest is PUT /v1/settings/{key}.
type SettingRequest struct {
	Value string `json:"value"`
}

// ServerInfo is GET /v1/server.
type ServerInfo struct {
	Version         string    `json:"version"`
	ProtocolVersion int       `json:"protocol_version"`
	Time            time.Time `json:"time"`
	Role            string    `json:"role"` // the caller's role
}

// ----- events -----

// Event is one entry of the event log.
type Event struct {
	// Seq orders events; use it as after_id to page or follow.
	Seq          int64             `json:"seq"`
	ID           int               `json:"id"` // the stable event id, e.g. 264
	Name         string            `json:"name"`
	At           time.Time         `json:"at"`
	AgentID      string            `json:"agent_id,omitempty"`
	RunID        string            `json:"run_id,omitempty"`
	DeploymentID string            `json:"deployment_id,omitempty"`
	Message      string            `json:"message"`
	Fields       map[string]string `json:"fields,omitempty"`
}

// Events is GET /v1/events.
type Events struct {
	Events []Event `json:"events"`
	// Next is the after_id for the next page or follow request.
	Next int64 `json:"next"`
}

// Listing wrappers (every list answer is an object, so fields can be added).
type (
	Agents struct {
		Agents []Agent `json:"agents"`
	}
	Runs struct {
		Runs []Run `json:"runs"`
	}
	Deployments struct {
		Deployments []Deployment `json:"deployments"`
	}
	Releases struct {
		Releases []Release `json:"releases"`
	}
	Settings struct {
		Settings []Setting `json:"settings"`
	}
	Tokens struct {
		Tokens []Token `json:"tokens"`
	}
	EnrollTokens struct {
		Tokens []EnrollToken `json:"tokens"`
	}
)

// PackPath is the URL path of a file of a pack.
func PackPath(version, file string) string { return fmt.Sprintf("/v1/packs/%s/%s", version, file) }
