package protocol

import "time"

// RunReport is GET /v1/runs/{id}/report: the run and every deployment with
// its end (the CAU report), and the summary an operator reads first.
type RunReport struct {
	Run         Run          `json:"run"`
	Deployments []Deployment `json:"deployments"`
	Summary     RunSummary   `json:"summary"`
}

// RunSummary is what a run over many agents comes to: how many ended how,
// which versions moved, why the failures failed, wave by wave, and where
// the time went.
type RunSummary struct {
	Total int `json:"total"`
	// States counts the deployments by state.
	States map[string]int `json:"states"`
	// Versions counts the deployments by version moved, most first.
	Versions []VersionMove `json:"versions"`
	// Failures groups the failed and rolled back deployments by their
	// normalised reason (see docs/api.md), most first.
	Failures []FailureGroup `json:"failures"`
	// Waves summarises each wave of the run, in order.
	Waves []WaveSummary `json:"waves"`
	// Stages says how long each stage took, from the server's steps, in
	// the order of a deployment's life.
	Stages []StageStats `json:"stages"`
	// Health lists the times the run halted on the health of the agents
	// it upgraded (events 805 with a health_* signal), oldest first.
	Health []HealthHalt `json:"health,omitempty"`
}

// HealthHalt is one health-driven halt of a run: the signal
// (health_crash_loop, health_unhealthy, health_workload_restarts,
// health_silent) and the reason, which names up to 5 hosts.
type HealthHalt struct {
	At     time.Time `json:"at"`
	Signal string    `json:"signal"`
	Reason string    `json:"reason"`
}

// VersionMove is how many deployments went From → To, and how many of
// them succeeded.
type VersionMove struct {
	From      string `json:"from"`
	To        string `json:"to"`
	Count     int    `json:"count"`
	Succeeded int    `json:"succeeded"`
}

// FailureGroup is the failures of one state whose reasons are the same
// but for numbers and ids.
type FailureGroup struct {
	State  string `json:"state"`
	Reason string `json:"reason"` // normalised: numbers shown as <n>, durations as <duration>, ...
	Count  int    `json:"count"`
	// Examples are up to 5 deployments of the group, lowest id first,
	// each with its reason as the agent gave it.
	Examples []ReportAgent `json:"examples"`
}

// ReportAgent names one deployment of a run report.
type ReportAgent struct {
	DeploymentID string  `json:"deployment_id"`
	AgentID      string  `json:"agent_id"`
	AgentName    string  `json:"agent_name,omitempty"`
	Reason       string  `json:"reason,omitempty"`
	Seconds      float64 `json:"seconds,omitempty"` // how long its stage took (StageStats.Slowest)
}

// WaveSummary is one wave of a run.
type WaveSummary struct {
	Wave     int            `json:"wave"`
	Total    int            `json:"total"`
	States   map[string]int `json:"states"`
	Failures int            `json:"failures"`
	// Started is when its first deployment was requested from its agent,
	// Ended when its last one ended (zero while one has not).
	Started time.Time `json:"started,omitzero"`
	Ended   time.Time `json:"ended,omitzero"`
}

// Report stages, in the order of a deployment's life.
const (
	StageQueue    = "queue"    // created → requested
	StageDownload = "download" // downloading (else requested) → staged
	StageStage    = "stage"    // staged → restarting
	StageRestart  = "restart"  // restarting → watching: the gap while the agent restarts
	StageWatch    = "watch"    // watching → end
	StageTotal    = "total"    // requested → end
)

// ReportStages lists the stages in order.
var ReportStages = []string{StageQueue, StageDownload, StageStage, StageRestart, StageWatch, StageTotal}

// StageStats is how long one stage took over the deployments that went
// through it (both its ends recorded): Count of them, the 50th and 95th
// percentile (nearest rank) and the slowest 5, slowest first.
type StageStats struct {
	Stage      string        `json:"stage"`
	Count      int           `json:"count"`
	P50Seconds float64       `json:"p50_seconds"`
	P95Seconds float64       `json:"p95_seconds"`
	MaxSeconds float64       `json:"max_seconds"`
	Slowest    []ReportAgent `json:"slowest"`
}
