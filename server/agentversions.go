package server

import "github.com/moltfleet/molt/protocol"

// agentVersions says which version an agent ran before its current one
// and which one it has on trial (switched to, not yet committed), from
// what it last said and its open deployment: the agent page shows
// current, previous and trial side by side. previous is known while a
// trial runs (the version it came from) and after a commit (the last
// trial's result); a rollback keeps none, as on the host. Call with s.mu
// held.
func (s *Server) agentVersions(a *agentRec) (previous, trial string) {
	st, d := &a.St, s.open[a.ID]
	restarting := protocol.PhaseRank(protocol.StateRestarting)
	switch {
	case st.Upgrade != nil && protocol.PhaseRank(st.Upgrade.Phase) >= restarting:
		trial = st.Upgrade.Version
	case d != nil && protocol.PhaseRank(d.State) >= restarting:
		trial = d.Target
	}
	if trial != "" && trial == st.Version {
		if d != nil && d.Target == trial && d.From != trial {
			return d.From, trial
		}
		return "", trial
	}
	if r := st.LastResult; r != nil && r.Outcome == protocol.TrialCommitted && r.Version == st.Version && r.Previous != st.Version {
		previous = r.Previous
	}
	return previous, trial
}
