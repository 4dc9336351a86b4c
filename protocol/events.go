package protocol

// Event ids. They are stable: a number is never reused or renumbered. 264,
// 277, 706 and 707 keep the numbers operators know from other agent
// platforms.
const (
	EvUpgradeRequested         = 264
	EvActivationUpgradeSkipped = 277
	EvUpgraded                 = 706
	EvUpgradeFailed            = 707

	EvRolledBack          = 708
	EvRepairScheduled     = 709
	EvSkippedByOperator   = 710
	EvCleanupRequested    = 711
	EvCleanupDone         = 712
	EvSupervisorUpgraded  = 713
	EvSupervisorFailed    = 714
	EvDeploymentWaiting   = 715
	EvDeploymentProgress  = 716
	EvDeploymentCancelled = 717
	EvBelowFloor          = 718
	EvAlreadyAtTarget     = 720
	EvWaitingForWindow    = 721
	EvDeploymentStuck     = 722
	EvDeploymentRetried   = 723

	EvRunStarted   = 800
	EvRunPaused    = 801
	EvRunResumed   = 802
	EvRunEnded     = 803
	EvRunCancelled = 804
	EvRunHalted    = 805
	EvWaveStarted  = 806
	EvWaveDone     = 807
	EvWaveApproval = 808
	EvRunPromoted  = 809
	EvRunScheduled = 810
	EvRunRollback  = 811

	EvAgentEnrolled     = 900
	EvCloneRefused      = 901
	EvAgentRevoked      = 902
	EvEnrollRefused     = 903
	EvAgentVersionSeen  = 904
	EvWorkloadLooping   = 905
	EvWorkloadSick      = 906
	EvWorkloadRecovered = 907
	EvHostRefused       = 908
	EvHostAllowed       = 909

	EvReleaseImported = 1000
	EvReleaseRejected = 1001
	EvReleaseRemoved  = 1002
	EvSettingChanged  = 1003
	EvTokenCreated    = 1004
	EvTokenRevoked    = 1005
	EvEnrollTokenMade = 1006
	EvQuarantined     = 1007
	EvUnquarantined   = 1008
	EvSignedIn        = 1009
	EvSignedOut       = 1010

	EvHookFailed = 1100
	EvHookRan    = 1101

	EvServerStarted = 1200
)

// EventInfo describes one event id.
type EventInfo struct {
	ID          int    `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
}

// Catalogue is GET /v1/events/catalogue: every event id the server
// records, with its name and meaning, ordered by id.
type Catalogue struct {
	Events []EventInfo `json:"events"`
}

// EventCatalogue lists every event, ordered by id. docs/events.md is made
// from it.
var EventCatalogue = []EventInfo{
	{EvUpgradeRequested, "upgrade_requested", "An upgrade was handed to the agent: by a run, a repair or upgrade on activation. Fields: from, to, kind."},
	{EvActivationUpgradeSkipped, "activation_upgrade_skipped", "The agent was eligible for upgrade on activation but was not upgraded. Fields: from, to, reason (not supervised; platform not supported; agent too old for automatic upgrade: manual upgrade required; pending reboot; not enough disk; no pack for its platform; release V is quarantined for the platform: the quarantine's reason, when no release that is not quarantined is newer than the agent's version: to is then the quarantined release)."},
	{EvUpgraded, "upgraded", "The agent runs the target version and its trial was committed."},
	{EvUpgradeFailed, "upgrade_failed", "The upgrade did not succeed. Fields: reason."},
	{EvRolledBack, "rolled_back", "The new version was unhealthy and the supervisor went back to the previous one. Fields: reason, logs."},
	{EvRepairScheduled, "repair_scheduled", "The agent came back with another version than its last successful target; a REPAIR deployment was created."},
	{EvSkippedByOperator, "skipped_by_operator", "An operator skipped a deployment before the agent started it."},
	{EvCleanupRequested, "cleanup_requested", "After a success the server ordered the agent to remove versions other than current and previous."},
	{EvCleanupDone, "cleanup_done", "The agent reported the cleanup done."},
	{EvSupervisorUpgraded, "supervisor_upgraded", "The supervisor upgraded itself to the version that came with the agent. Fields: from, to."},
	{EvSupervisorFailed, "supervisor_upgrade_failed", "The supervisor's self-upgrade failed; the agent upgrade stands. Fields: reason."},
	{EvDeploymentWaiting, "waiting_for_host", "The deployment waits for its agent: offline, never connected, busy or held. Fields: reason."},
	{EvDeploymentProgress, "deployment_phase", "The agent moved the deployment to another phase (downloading, staged, restarting, watching)."},
	{EvDeploymentCancelled, "deployment_cancelled", "The deployment was cancelled with its run, or an operator cancelled it while it was stuck."},
	{EvBelowFloor, "below_floor", "The target is below the floor of the newest pack the agent ran; the deployment failed without being sent."},
	{EvAlreadyAtTarget, "already_at_target", "The agent already runs the target version; its deployment ended without an upgrade."},
	{EvWaitingForWindow, "waiting_for_window", "The deployment's host is free but outside its maintenance window; it starts when the window opens. Fields: window, opens."},
	{EvDeploymentStuck, "deployment_stuck", "The deployment, handed to its agent, made no progress for deployments.stuck-after (in watching at least the supervisor's trial bound) and is now stuck: its slot in the run is freed and it counts as a failure until the agent's progress moves it on, an operator retries or cancels it, or deployments.timeout fails it. Fields: state (the one it was stuck in), last_heard (the last step of its report and its time), after (how long without progress)."},
	{EvDeploymentRetried, "deployment_retried", "An operator retried a stuck or failed deployment: a new deployment (the event's) of the same agent to the same target was queued in the same run and wave; a stuck one was cancelled (\"retried as d-N\"). Fields: retry_of, by."},
	{EvRunStarted, "run_started", "An upgrade run was created. Fields: target, scope, max_concurrent, agents."},
	{EvRunPaused, "run_paused", "The run was paused by an operator or because failures reached its threshold. Fields: reason."},
	{EvRunResumed, "run_resumed", "An operator resumed the run."},
	{EvRunEnded, "run_ended", "Every deployment of the run ended. Fields: status (ENDED_OK or ENDED_NOT_OK)."},
	{EvRunCancelled, "run_cancelled", "An operator cancelled the run; deployments not yet started were cancelled."},
	{EvRunHalted, "run_halted", "The run stopped starting deployments on its own: its failure rate passed the limit, or agents it upgraded do measurably worse than before (health). Resume or roll back. Fields: signal, reason, agents (for a health halt: the names of the agents that regressed, up to 50)."},
	{EvWaveStarted, "wave_started", "A wave of the run (the canaries are wave 0) may start its deployments. Fields: wave, agents."},
	{EvWaveDone, "wave_done", "A wave reached its done share with all its started deployments ended. Fields: wave, succeeded, failed, not_done."},
	{EvWaveApproval, "wave_waiting_for_approval", "The wave is done and the next waits for an operator (molt runs promote). Fields: wave."},
	{EvRunPromoted, "run_promoted", "An operator promoted the run to its next wave. Fields: wave."},
	{EvRunScheduled, "run_scheduled", "A run was created to start at a later time. Fields: start_at."},
	{EvRunRollback, "run_rollback", "A run was created to bring back the agents another run moved, each to the version it came from. Fields: of, agents."},
	{EvAgentEnrolled, "agent_enrolled", "An agent enrolled. Fields: version, platform."},
	{EvCloneRefused, "clone_refused", "A check-in used an agent's identity from another machine (same id, another fingerprint); it was refused and the clone must re-enroll."},
	{EvAgentRevoked, "agent_revoked", "An agent's credential was revoked."},
	{EvEnrollRefused, "enrollment_refused", "An enrollment was refused. Fields: reason."},
	{EvAgentVersionSeen, "agent_version_changed", "An agent checked in with another version than before. Fields: from, to."},
	{EvWorkloadLooping, "workload_crash_looping", "Outside a trial, a workload of the agent is crashed and was restarted since the check-in before. Recorded once until it is ready again. Fields: workload, version, restarts, last_exit, reason."},
	{EvWorkloadSick, "workload_unhealthy", "Outside a trial, a workload of the agent turned unhealthy (its live check failed). Recorded once until it is ready again. Fields: workload, version, restarts, reason."},
	{EvWorkloadRecovered, "workload_recovered", "A workload that was crash-looping or unhealthy is ready again. Fields: workload, version, was."},
	{EvHostRefused, "host_refused", "An enrollment came from the host of a revoked agent (its machine fingerprint) and was refused: the host stays out until an admin allows it again (molt agents allow). Recorded at most every 10 minutes per host. Fields: revoked_agent, name, hostname."},
	{EvHostAllowed, "host_allowed", "An admin allowed the host of a revoked agent to enroll again. Fields: by."},
	{EvReleaseImported, "release_imported", "A pack was verified and imported."},
	{EvReleaseRejected, "release_rejected", "A pack import was refused. Fields: reason."},
	{EvReleaseRemoved, "release_removed", "A release was removed."},
	{EvSettingChanged, "setting_changed", "A setting was changed. Fields: key, value."},
	{EvTokenCreated, "token_created", "An API token was created. Fields: role."},
	{EvTokenRevoked, "token_revoked", "An API token was revoked."},
	{EvEnrollTokenMade, "enrollment_token_created", "An enrollment token was created. Fields: uses, expires."},
	{EvQuarantined, "release_quarantined", "A release was quarantined for a platform: by rollbacks on its agents (automatic: releases.quarantine-after of them, or one canary; the event names the deployment whose rollback decided it) or by an operator (molt release quarantine). Upgrade on activation passes it over there, agents are not recommended it, and no run goes to it there without --force. Fields: version, platform, reason, automatic."},
	{EvUnquarantined, "release_unquarantined", "An operator lifted a release's quarantine for a platform (molt release unquarantine); rollbacks count towards releases.quarantine-after afresh from then. Fields: version, platform."},
	{EvSignedIn, "console_signed_in", "A console session was opened with an API token or a one-time sign-in link made from one; it acts with the token's role. Fields: token, token_name, role, with (token or link)."},
	{EvSignedOut, "console_signed_out", "A console session was ended by its user (sign-out). Fields: token, token_name."},
	{EvHookFailed, "hook_failed", "A hook command failed, timed out or could not be queued. Fields: hook, reason."},
	{EvHookRan, "hook_ran", "A hook command ended successfully. Fields: hook."},
	{EvServerStarted, "server_started", "The control server started. Fields: version."},
}

var eventNames = func() map[int]string {
	m := make(map[int]string, len(EventCatalogue))
	for _, e := range EventCatalogue {
		m[e.ID] = e.Name
	}
	return m
}()

// EventName returns the name of event id, or "" for an unknown id.
func EventName(id int) string { return eventNames[id] }
