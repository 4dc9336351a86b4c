package protocol

import (
	"time"
	"unicode"
)

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
	// AgentRestarts is how many times the supervisor started molt-agent
	// again after it crashed, since the supervisor started
	// (state/workloads.json); the server's health watch compares it.
	AgentRestarts int `json:"agent_restarts,omitempty"`
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
