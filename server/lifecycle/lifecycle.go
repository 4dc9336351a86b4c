// Package lifecycle is the state machine of molt's deployments and runs:
// their states, the events that move one state to another, and which
// states are final. It only decides: no I/O, no locks. The server asks
// Next before it writes a state and refuses what Next refuses, so a
// transition missing from the tables below cannot reach the database.
package lifecycle

import (
	"errors"
	"fmt"

	"github.com/moltfleet/molt/protocol"
)

// ErrIllegal is returned for an event that does not apply to the state
// it is given: a bug in its caller, or a race it lost.
var ErrIllegal = errors.New("illegal transition")

// Event is what happens to a deployment.
type Event string

// Deployment events. Each moves to one state (Deployment has the table).
const (
	// Defer puts a queued deployment back in the queue: not its time yet
	// (wave, spread, rate), or its run is paused or full.
	Defer Event = "defer"
	// WaitForHost: its host cannot take it (offline, busy, held, its
	// cluster upgrading); the reason may change while it waits.
	WaitForHost Event = "wait_for_host"
	// WaitForWindow: its run's maintenance window is closed.
	WaitForWindow Event = "wait_for_window"
	// Start hands it to its agent.
	Start Event = "start"
	// AlreadyAtTarget ends it at its start: the agent runs the target.
	AlreadyAtTarget Event = "already_at_target"
	// BelowFloor ends it at its start: the target is below the floor of
	// the newest pack the agent ran.
	BelowFloor Event = "below_floor"
	// Download, Stage, Restart and Watch are the agent's progress (its
	// check-ins and reports); they also move a stuck deployment on.
	Download Event = "download"
	Stage    Event = "stage"
	Restart  Event = "restart"
	Watch    Event = "watch"
	// Resume moves a deployment stuck in requested back to requested on
	// the first sign of life from its agent.
	Resume Event = "resume"
	// MarkStuck: handed to the agent, then no progress for
	// deployments.stuck-after.
	MarkStuck Event = "mark_stuck"
	// Succeed: the trial committed. RollBack: the supervisor rolled it
	// back. Fail: the agent reported a failure.
	Succeed  Event = "succeed"
	RollBack Event = "roll_back"
	Fail     Event = "fail"
	// TimeOut: no progress for deployments.timeout, stuck or not.
	TimeOut Event = "time_out"
	// Skip: an operator skipped it before the agent had it.
	Skip Event = "skip"
	// Cancel: an operator cancelled or retried it while it was stuck.
	Cancel Event = "cancel"
	// CancelWithRun: its run was cancelled before its agent started it.
	CancelWithRun Event = "cancel_with_run"
	// Revoke: its agent was revoked; it would hold its run forever.
	Revoke Event = "revoke"
)

// Transition is one row of a state machine: event Event moves a
// deployment (or a run) in any of From to To; Terminal says To is final.
type Transition struct {
	Event    Event
	From     []string
	To       string
	Terminal bool
}

var (
	queued   = []string{protocol.StatePending, protocol.StateWaitingForHost, protocol.StateWaitingForWindow}
	handed   = []string{protocol.StateRequested, protocol.StateDownloading, protocol.StateStaged, protocol.StateRestarting, protocol.StateWatching, protocol.StateStuck}
	progress = []string{protocol.StateRequested, protocol.StateDownloading, protocol.StateStaged, protocol.StateRestarting, protocol.StateWatching}
	open     = append(append([]string{}, queued...), handed...)
)

// earlier lists the in-progress phases before phase, and stuck: progress
// only moves a deployment forward (protocol.PhaseRank).
func earlier(phase string) []string {
	var from []string
	for _, s := range progress {
		if protocol.PhaseRank(s) < protocol.PhaseRank(phase) {
			from = append(from, s)
		}
	}
	return append(from, protocol.StateStuck)
}

// Deployment is the deployments' state machine. docs/design.md shows it
// (a test keeps the two equal).
var Deployment = []Transition{
	{Defer, queued, protocol.StatePending, false},
	{WaitForHost, queued, protocol.StateWaitingForHost, false},
	{WaitForWindow, queued, protocol.StateWaitingForWindow, false},
	{Start, queued, protocol.StateRequested, false},
	{AlreadyAtTarget, queued, protocol.StateSucceeded, true},
	{BelowFloor, queued, protocol.StateFailed, true},
	{Download, earlier(protocol.StateDownloading), protocol.StateDownloading, false},
	{Stage, earlier(protocol.StateStaged), protocol.StateStaged, false},
	{Restart, earlier(protocol.StateRestarting), protocol.StateRestarting, false},
	{Watch, earlier(protocol.StateWatching), protocol.StateWatching, false},
	{Resume, []string{protocol.StateStuck}, protocol.StateRequested, false},
	{MarkStuck, progress, protocol.StateStuck, false},
	{Succeed, handed, protocol.StateSucceeded, true},
	{RollBack, handed, protocol.StateRolledBack, true},
	{Fail, handed, protocol.StateFailed, true},
	{TimeOut, handed, protocol.StateFailed, true},
	{Skip, queued, protocol.StateSkipped, true},
	{Cancel, []string{protocol.StateStuck}, protocol.StateCancelled, true},
	{CancelWithRun, append(append([]string{}, queued...), protocol.StateRequested), protocol.StateCancelled, true},
	{Revoke, open, protocol.StateCancelled, true},
}

// Next is the state event ev moves a deployment in state from to, or
// ErrIllegal.
func Next(from string, ev Event) (string, error) {
	return next(Deployment, from, ev)
}

// PhaseEvent is the event of progress to phase, as an agent reports it
// (requested: a stuck deployment's agent is alive again).
func PhaseEvent(phase string) (Event, bool) {
	switch phase {
	case protocol.StateRequested:
		return Resume, true
	case protocol.StateDownloading:
		return Download, true
	case protocol.StateStaged:
		return Stage, true
	case protocol.StateRestarting:
		return Restart, true
	case protocol.StateWatching:
		return Watch, true
	}
	return "", false
}

func next(table []Transition, from string, ev Event) (string, error) {
	for _, t := range table {
		if t.Event != ev {
			continue
		}
		for _, f := range t.From {
			if f == from {
				return t.To, nil
			}
		}
		return "", fmt.Errorf("%s from %s: %w", ev, from, ErrIllegal)
	}
	return "", fmt.Errorf("unknown event %q: %w", ev, ErrIllegal)
}
