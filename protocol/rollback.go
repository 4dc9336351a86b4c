package protocol

// RollbackTarget is the target of a run that rolls another back: each
// of its deployments has its own (the version its agent came from).
const RollbackTarget = "rollback"

// RollbackRequest is POST /v1/runs/{id}/rollback; every field is
// optional and an empty body is the zero request.
type RollbackRequest struct {
	// Text describes the new run ("rollback of r-N" when empty).
	Text string `json:"text,omitempty"`
	// DryRun returns the plan and who is left out, creating nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// Force includes agents whose earlier version is quarantined.
	Force bool `json:"force,omitempty"`
	// Rollout, when given, replaces the original run's limits and
	// controls as a whole; without it the new run keeps them (all but
	// start_at, which has passed).
	Rollout *RolloutSettings `json:"rollout,omitempty"`
}

// RolloutSettings are a run's limits and controls as a RunRequest gives
// them.
type RolloutSettings struct {
	MaxConcurrent    int `json:"max_concurrent,omitempty"`
	FailureThreshold int `json:"failure_threshold,omitempty"`
	RunControls
}
