package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/server/lifecycle"
)

// agentStatus is an agent's status as operators see it, in the list, in
// show and in --json alike: revoked, whatever its last check-in (a
// revoked agent no longer connects), else its connection status. Call
// with s.mu held.
func (s *Server) agentStatus(a *agentRec, now time.Time) string {
	if a.Revoked {
		return protocol.AgentRevoked
	}
	return s.connStatus(a, now)
}

// agentView renders a; refused says whether its host is refused at
// enrollment (refusedHosts). Call with s.mu held.
func (s *Server) agentView(a *agentRec, now time.Time, refused bool) protocol.Agent {
	st := a.St
	previous, trial := s.agentVersions(a)
	return protocol.Agent{
		ID: a.ID, Name: st.Name, Hostname: st.Hostname, Platform: st.Platform, OSFamily: st.OSFamily, Version: st.Version,
		Supervised: st.Supervised, SupervisorVersion: st.SupervisorVersion, Labels: st.Labels, Cluster: st.Cluster,
		ProtocolVersion: st.ProtocolVersion, Status: s.agentStatus(a, now), UpgradeStatus: s.upgradeStatus(a),
		TargetVersion: s.targetFor(st.Platform), Busy: st.Busy, Holds: st.Holds, PendingReboot: st.PendingReboot,
		FreeDiskBytes: st.FreeDiskBytes, Floor: s.floorOf(a), Enrolled: a.Enrolled, LastSeen: a.LastSeen, Revoked: a.Revoked,
		LastResult: st.LastResult, Workloads: st.Workloads, HostRefused: a.Revoked && refused,
		PreviousVersion: previous, TrialVersion: trial, Upgrade: st.Upgrade,
	}
}

// refusedHosts returns the revoked agents whose host enrollment refuses
// (agents.host_refused).
func (s *Server) refusedHosts(ctx context.Context) (map[string]bool, error) {
	ids, err := s.st.RefusedHostAgents(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// findAgent finds an agent by id or by a unique name. Call with s.mu held.
func (s *Server) findAgent(ref string) (*agentRec, error) {
	if a, ok := s.agents[ref]; ok {
		return a, nil
	}
	var found *agentRec
	for _, a := range s.agents {
		if a.St.Name == ref {
			if found != nil {
				return nil, conflict("more than one agent is named %q: use its id", ref)
			}
			found = a
		}
	}
	if found == nil {
		return nil, notFound("no agent %q", ref)
	}
	return found, nil
}

func (s *Server) handleAgentShow(w http.ResponseWriter, r *http.Request, _ caller) error {
	refused, err := s.refusedHosts(r.Context())
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.findAgent(r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, 200, s.agentView(a, s.clock.Now(), refused[a.ID]))
	return nil
}

// handleAgentRevoke revokes an agent's credential and refuses its host
// (its machine fingerprint) at enrollment until an admin allows it: a
// host that still holds an enrollment token must not come back on its
// own a second later (docs/server.md).
func (s *Server) handleAgentRevoke(w http.ResponseWriter, r *http.Request, _ caller) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.findAgent(r.PathValue("id"))
	if err != nil {
		return err
	}
	err = s.change(r.Context(), func(wr *writer) error {
		if err := wr.tx.RevokeAgent(a.ID); err != nil {
			return err
		}
		wr.then(func() {
			a.Revoked = true
			s.notify(a.ID)
		})
		// A revoked agent never comes back under this identity: its open
		// deployment would hold its run forever.
		if d := s.open[a.ID]; d != nil {
			if err := wr.setState(d, lifecycle.Revoke, "agent revoked"); err != nil {
				return err
			}
		}
		return wr.event(event{ID: protocol.EvAgentRevoked, Agent: a.ID, Msg: fmt.Sprintf("agent %s (%s) revoked; its host may not enroll again until allowed (molt agents allow %s)", a.ID, a.St.Name, a.ID)})
	})
	if err != nil {
		return err
	}
	writeJSON(w, 200, s.agentView(a, s.clock.Now(), a.Fingerprint != ""))
	return nil
}

// handleAgentAllow lets the host of a revoked agent enroll again: every
// revoked agent of its machine fingerprint stops refusing it. The agent
// itself stays revoked; the host comes back as a new agent. Allowing a
// host that is not refused changes nothing.
func (s *Server) handleAgentAllow(w http.ResponseWriter, r *http.Request, c caller) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.findAgent(r.PathValue("id"))
	if err != nil {
		return err
	}
	if !a.Revoked {
		return conflict("agent %s is not revoked: its host is not refused (only the host of a revoked agent is)", a.ID)
	}
	err = s.change(r.Context(), func(wr *writer) error {
		n, err := wr.tx.AllowHost(a.Fingerprint)
		if err != nil || n == 0 {
			return err
		}
		by := tokenName(c)
		return wr.event(event{ID: protocol.EvHostAllowed, Agent: a.ID, Msg: fmt.Sprintf("the host of revoked agent %s (%s) may enroll again (allowed by %s)", a.ID, a.St.Name, by),
			Fields: map[string]string{"by": by}})
	})
	if err != nil {
		return err
	}
	writeJSON(w, 200, s.agentView(a, s.clock.Now(), false))
	return nil
}
