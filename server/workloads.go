package server

import (
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/workload/spec"
)

// Bounds of what an agent says about its workloads (docs/api.md).
const (
	maxWorkloadRestarts = 1_000_000_000
	maxWorkloadLastExit = 256
	maxWorkloadReason   = 1024
)

// workloadStates are the states a workload can be reported in, in the
// order /metrics lists them.
var workloadStates = []string{protocol.WorkloadStarting, protocol.WorkloadReady, protocol.WorkloadUnhealthy, protocol.WorkloadCrashed, protocol.WorkloadStopped}

// checkWorkloads validates the workloads of a status beyond their
// strings (checkStatus checks those with every other string, checkText):
// names, versions, states and counts.
func checkWorkloads(ws []protocol.Workload) error {
	if len(ws) > protocol.MaxWorkloads {
		return badRequest("workloads: more than %d", protocol.MaxWorkloads)
	}
	seen := make(map[string]bool, len(ws))
	for i, w := range ws {
		if !spec.ValidName(w.Name) {
			return badRequest("workloads[%d].name %q is not a workload name (1 to 32 of a-z 0-9 _ -)", i, w.Name)
		}
		if seen[w.Name] {
			return badRequest("workloads[%d].name %q is reported twice", i, w.Name)
		}
		seen[w.Name] = true
		field := func(f string) string { return fmt.Sprintf("workloads[%d] (%s).%s", i, w.Name, f) }
		if !pack.ValidVersion(w.Version) {
			return badRequest("%s %q is not a valid version", field("version"), w.Version)
		}
		switch w.State {
		case protocol.WorkloadStarting, protocol.WorkloadReady, protocol.WorkloadUnhealthy, protocol.WorkloadCrashed, protocol.WorkloadStopped:
		default:
			return badRequest("%s %q is not one of %s", field("state"), w.State, strings.Join(workloadStates, ", "))
		}
		if w.Restarts < 0 || w.Restarts > maxWorkloadRestarts {
			return badRequest("%s %d is not from 0 to %d", field("restarts"), w.Restarts, maxWorkloadRestarts)
		}
	}
	return nil
}

// Alerts the server raised about a workload, kept per agent (agents.
// workload_alerts) so that an event is recorded on the transition only,
// not on every check-in, and not again after a server restart.
const (
	alertLooping   = "crash_looping"
	alertUnhealthy = "unhealthy"
)

// inTrial says whether a check-in belongs to a trial: the agent's
// deployment is switching or watching, or the agent says so. Crashes
// then are the trial's business: it rolls back and the deployment says
// why.
func inTrial(d *depRec, st protocol.Status) bool {
	if d != nil && protocol.Handed(d.State) &&
		(protocol.PhaseRank(d.State) >= protocol.PhaseRank(protocol.StateRestarting) || (st.Version == d.Target && st.Version != d.From)) {
		return true
	}
	u := st.Upgrade
	return u != nil && protocol.PhaseRank(u.Phase) >= protocol.PhaseRank(protocol.StateRestarting)
}

// workloadAlerts compares a check-in's workloads with the previous
// check-in's and returns the alerts that hold now and the events of the
// transitions:
//
//   - crashed, and restarted since the previous check-in (its restarts
//     went up): crash-looping (905);
//   - unhealthy: unhealthy (906);
//   - ready again after either: recovered (907).
//
// An alert stays until the workload is ready or no longer reported; a
// workload starting or stopped keeps it, so a crash loop seen as
// crashed, starting, crashed is one event.
func workloadAlerts(agentID, agentName string, prev, cur []protocol.Workload, alerts map[string]string) (map[string]string, []event) {
	before := make(map[string]protocol.Workload, len(prev))
	for _, w := range prev {
		before[w.Name] = w
	}
	next := map[string]string{}
	var evs []event
	for _, w := range cur {
		was := alerts[w.Name]
		now := was
		p, seen := before[w.Name]
		switch {
		case w.State == protocol.WorkloadReady:
			now = ""
		case w.State == protocol.WorkloadUnhealthy:
			now = alertUnhealthy
		case w.State == protocol.WorkloadCrashed && seen && w.Restarts > p.Restarts:
			now = alertLooping
		}
		if now != "" {
			next[w.Name] = now
		}
		if now == was {
			continue
		}
		f := map[string]string{"workload": w.Name, "version": w.Version}
		switch now {
		case alertLooping:
			f["restarts"], f["last_exit"], f["reason"] = strconv.Itoa(w.Restarts), w.LastExit, w.Reason
			msg := fmt.Sprintf("workload %s of agent %s is crash-looping (%d restarts)", w.Name, agentName, w.Restarts)
			if w.LastExit != "" {
				msg += ": " + w.LastExit
			}
			evs = append(evs, event{ID: protocol.EvWorkloadLooping, Agent: agentID, Msg: msg, Fields: f})
		case alertUnhealthy:
			f["restarts"], f["reason"] = strconv.Itoa(w.Restarts), w.Reason
			msg := fmt.Sprintf("workload %s of agent %s is unhealthy", w.Name, agentName)
			if w.Reason != "" {
				msg += ": " + w.Reason
			}
			evs = append(evs, event{ID: protocol.EvWorkloadSick, Agent: agentID, Msg: msg, Fields: f})
		default:
			f["was"] = was
			evs = append(evs, event{ID: protocol.EvWorkloadRecovered, Agent: agentID,
				Msg: fmt.Sprintf("workload %s of agent %s is ready again (was %s)", w.Name, agentName, strings.ReplaceAll(was, "_", "-")), Fields: f})
		}
	}
	return next, evs
}

// workloadEvents records the workload transitions of a check-in outside
// a trial and keeps the alerts durable with them. Call inside s.change.
func workloadEvents(wr *writer, a *agentRec, prev, cur []protocol.Workload, name string) error {
	next, evs := workloadAlerts(a.ID, name, prev, cur, a.alerts)
	for _, e := range evs {
		if err := wr.event(e); err != nil {
			return err
		}
	}
	if maps.Equal(next, a.alerts) {
		return nil
	}
	if err := wr.tx.SetWorkloadAlerts(a.ID, next); err != nil {
		return err
	}
	wr.then(func() { a.alerts = next })
	return nil
}
