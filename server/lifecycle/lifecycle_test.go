package lifecycle

import (
	"errors"
	"slices"
	"testing"

	"github.com/moltfleet/molt/protocol"
)

func TestNextDeployment(t *testing.T) {
	legal := []struct {
		from string
		ev   Event
		to   string
	}{
		{protocol.StatePending, Defer, protocol.StatePending},
		{protocol.StateWaitingForHost, Defer, protocol.StatePending},
		{protocol.StateWaitingForWindow, Defer, protocol.StatePending},
		{protocol.StatePending, WaitForHost, protocol.StateWaitingForHost},
		{protocol.StateWaitingForHost, WaitForHost, protocol.StateWaitingForHost},
		{protocol.StateWaitingForWindow, WaitForHost, protocol.StateWaitingForHost},
		{protocol.StatePending, WaitForWindow, protocol.StateWaitingForWindow},
		{protocol.StateWaitingForHost, WaitForWindow, protocol.StateWaitingForWindow},
		{protocol.StateWaitingForWindow, WaitForWindow, protocol.StateWaitingForWindow},
		{protocol.StatePending, Start, protocol.StateRequested},
		{protocol.StateWaitingForHost, Start, protocol.StateRequested},
		{protocol.StateWaitingForWindow, Start, protocol.StateRequested},
		{protocol.StatePending, AlreadyAtTarget, protocol.StateSucceeded},
		{protocol.StateWaitingForHost, BelowFloor, protocol.StateFailed},
		{protocol.StateRequested, Download, protocol.StateDownloading},
		{protocol.StateStuck, Download, protocol.StateDownloading},
		{protocol.StateRequested, Stage, protocol.StateStaged},
		{protocol.StateDownloading, Stage, protocol.StateStaged},
		{protocol.StateStaged, Restart, protocol.StateRestarting},
		{protocol.StateRequested, Watch, protocol.StateWatching},
		{protocol.StateRestarting, Watch, protocol.StateWatching},
		{protocol.StateStuck, Watch, protocol.StateWatching},
		{protocol.StateStuck, Resume, protocol.StateRequested},
		{protocol.StateRequested, MarkStuck, protocol.StateStuck},
		{protocol.StateWatching, MarkStuck, protocol.StateStuck},
		{protocol.StateWatching, Succeed, protocol.StateSucceeded},
		{protocol.StateStuck, Succeed, protocol.StateSucceeded},
		{protocol.StateWatching, RollBack, protocol.StateRolledBack},
		{protocol.StateDownloading, Fail, protocol.StateFailed},
		{protocol.StateStuck, TimeOut, protocol.StateFailed},
		{protocol.StateRestarting, TimeOut, protocol.StateFailed},
		{protocol.StatePending, Skip, protocol.StateSkipped},
		{protocol.StateWaitingForWindow, Skip, protocol.StateSkipped},
		{protocol.StateStuck, Cancel, protocol.StateCancelled},
		{protocol.StatePending, CancelWithRun, protocol.StateCancelled},
		{protocol.StateRequested, CancelWithRun, protocol.StateCancelled},
		{protocol.StateWaitingForHost, Revoke, protocol.StateCancelled},
		{protocol.StateWatching, Revoke, protocol.StateCancelled},
		{protocol.StateStuck, Revoke, protocol.StateCancelled},
	}
	for _, c := range legal {
		t.Run(c.from+"/"+string(c.ev), func(t *testing.T) {
			got, err := Next(c.from, c.ev)
			if err != nil || got != c.to {
				t.Fatalf("Next(%s, %s) = %q, %v; want %q", c.from, c.ev, got, err, c.to)
			}
		})
	}
	illegal := []struct {
		from string
		ev   Event
	}{
		{protocol.StateDownloading, Start},                // started twice
		{protocol.StateWatching, Download},                // backwards
		{protocol.StateStaged, Stage},                     // not forward
		{protocol.StateRequested, Resume},                 // only from stuck
		{protocol.StateStuck, MarkStuck},                  // already stuck
		{protocol.StatePending, MarkStuck},                // not handed
		{protocol.StatePending, Succeed},                  // not handed
		{protocol.StateWaitingForHost, Fail},              // not handed
		{protocol.StateRequested, Skip},                   // the agent has it
		{protocol.StateDownloading, CancelWithRun},        // started: it finishes
		{protocol.StateWatching, Cancel},                  // only a stuck one
		{protocol.StatePending, Cancel},                   // skipped instead
		{protocol.StateStuck, Defer},                      // handed: not queued again
		{protocol.StateRequested, Event("no_such_event")}, // unknown
		{"no_such_state", Start},                          // unknown
		{protocol.StateSucceeded, Revoke},                 // ended
		{protocol.StateCancelled, Start},                  // ended
	}
	for _, c := range illegal {
		t.Run("illegal/"+c.from+"/"+string(c.ev), func(t *testing.T) {
			if got, err := Next(c.from, c.ev); !errors.Is(err, ErrIllegal) {
				t.Fatalf("Next(%s, %s) = %q, %v; want ErrIllegal", c.from, c.ev, got, err)
			}
		})
	}
}

// TestTable checks the tables against themselves and protocol: every
// state is known, terminal flags agree with protocol.Terminal, nothing
// leaves a terminal state, every state is reachable, events are unique.
func TestTable(t *testing.T) {
	check := func(t *testing.T, table []Transition, states []string, terminal func(string) bool, start string, exit Event) {
		seen := map[Event]bool{}
		reach := map[string]bool{start: true}
		for _, tr := range table {
			if seen[tr.Event] {
				t.Errorf("event %s has two rows", tr.Event)
			}
			seen[tr.Event] = true
			if !slices.Contains(states, tr.To) {
				t.Errorf("%s: unknown state %q", tr.Event, tr.To)
			}
			if tr.Terminal != terminal(tr.To) {
				t.Errorf("%s: to %s terminal %v, want %v", tr.Event, tr.To, tr.Terminal, terminal(tr.To))
			}
			if len(tr.From) == 0 {
				t.Errorf("%s: no from-state", tr.Event)
			}
			for _, f := range tr.From {
				if !slices.Contains(states, f) {
					t.Errorf("%s: unknown state %q", tr.Event, f)
				}
				if terminal(f) && tr.Event != exit {
					t.Errorf("%s leaves terminal state %s", tr.Event, f)
				}
			}
			reach[tr.To] = true
		}
		for _, s := range states {
			if !reach[s] {
				t.Errorf("state %s is unreachable", s)
			}
		}
	}
	t.Run("deployment", func(t *testing.T) {
		check(t, Deployment, protocol.DeploymentStates, protocol.Terminal, protocol.StatePending, "")
	})
	t.Run("run", func(t *testing.T) {
		terminal := func(s string) bool {
			return s == protocol.RunEndedOK || s == protocol.RunEndedNotOK || s == protocol.RunCancelled
		}
		check(t, Run, RunStatuses, terminal, protocol.RunRunning, RunEndCancelled)
	})
}

// TestTerminalFinal: no event moves a deployment out of an end state,
// and only RunEndCancelled (to itself) a run out of one.
func TestTerminalFinal(t *testing.T) {
	for _, st := range protocol.DeploymentStates {
		if !protocol.Terminal(st) {
			continue
		}
		for _, tr := range Deployment {
			if to, err := Next(st, tr.Event); !errors.Is(err, ErrIllegal) {
				t.Errorf("Next(%s, %s) = %q, %v; want ErrIllegal", st, tr.Event, to, err)
			}
		}
	}
	for _, st := range []string{protocol.RunEndedOK, protocol.RunEndedNotOK, protocol.RunCancelled} {
		for _, tr := range Run {
			to, err := NextRun(st, tr.Event)
			if st == protocol.RunCancelled && tr.Event == RunEndCancelled {
				if err != nil || to != protocol.RunCancelled {
					t.Errorf("NextRun(cancelled, %s) = %q, %v; want cancelled", tr.Event, to, err)
				}
				continue
			}
			if !errors.Is(err, ErrIllegal) {
				t.Errorf("NextRun(%s, %s) = %q, %v; want ErrIllegal", st, tr.Event, to, err)
			}
		}
	}
}

func TestNextRun(t *testing.T) {
	cases := []struct {
		from string
		ev   Event
		to   string // "" for illegal
	}{
		{protocol.RunRunning, RunPause, protocol.RunPaused},
		{protocol.RunPaused, RunPause, ""},
		{protocol.RunPaused, RunResume, protocol.RunRunning},
		{protocol.RunRunning, RunResume, ""},
		{protocol.RunRunning, RunHalt, protocol.RunPaused},
		{protocol.RunPaused, RunHalt, ""},
		{protocol.RunRunning, RunCancel, protocol.RunCancelled},
		{protocol.RunPaused, RunCancel, protocol.RunCancelled},
		{protocol.RunCancelled, RunCancel, ""},
		{protocol.RunRunning, RunEndOK, protocol.RunEndedOK},
		{protocol.RunPaused, RunEndNotOK, protocol.RunEndedNotOK},
		{protocol.RunCancelled, RunEndOK, ""},
		{protocol.RunCancelled, RunEndCancelled, protocol.RunCancelled},
		{protocol.RunRunning, RunEndCancelled, ""},
		{protocol.RunEndedOK, RunPause, ""},
		{protocol.RunRunning, Start, ""}, // a deployment's event
	}
	for _, c := range cases {
		t.Run(c.from+"/"+string(c.ev), func(t *testing.T) {
			got, err := NextRun(c.from, c.ev)
			if c.to == "" {
				if !errors.Is(err, ErrIllegal) {
					t.Fatalf("NextRun(%s, %s) = %q, %v; want ErrIllegal", c.from, c.ev, got, err)
				}
				return
			}
			if err != nil || got != c.to {
				t.Fatalf("NextRun(%s, %s) = %q, %v; want %q", c.from, c.ev, got, err, c.to)
			}
		})
	}
}

func TestRunEnd(t *testing.T) {
	cases := []struct {
		from string
		ok   bool
		want Event
	}{
		{protocol.RunRunning, true, RunEndOK},
		{protocol.RunPaused, false, RunEndNotOK},
		{protocol.RunCancelled, true, RunEndCancelled},
		{protocol.RunCancelled, false, RunEndCancelled},
	}
	for _, c := range cases {
		if got := RunEnd(c.from, c.ok); got != c.want {
			t.Errorf("RunEnd(%s, %v) = %s, want %s", c.from, c.ok, got, c.want)
		}
	}
}

func TestPhaseEvent(t *testing.T) {
	for _, phase := range []string{protocol.StateRequested, protocol.StateDownloading, protocol.StateStaged, protocol.StateRestarting, protocol.StateWatching} {
		ev, ok := PhaseEvent(phase)
		if !ok {
			t.Fatalf("PhaseEvent(%s): none", phase)
		}
		if to, err := Next(protocol.StateStuck, ev); err != nil || to != phase {
			t.Errorf("Next(stuck, %s) = %q, %v; want %s", ev, to, err, phase)
		}
	}
	if _, ok := PhaseEvent(protocol.StateSucceeded); ok {
		t.Error("PhaseEvent(succeeded): an end is not progress")
	}
}
