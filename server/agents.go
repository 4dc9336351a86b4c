package server

import (
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// agentView renders a. Call with s.mu held.
func (s *Server) agentView(a *agentRec, now time.Time) protocol.Agent {
	st := a.St
	return protocol.Agent{
		ID: a.ID, Name: st.Name, Hostname: st.Hostname, Platform: st.Platform, OSFamily: st.OSFamily, Version: st.Version,
		Supervised: st.Supervised, SupervisorVersion: st.SupervisorVersion, Labels: st.Labels, Cluster: st.Cluster,
		ProtocolVersion: st.ProtocolVersion, Status: s.connStatus(a, now), UpgradeStatus: s.upgradeStatus(a),
		TargetVersion: s.targetFor(st.Platform), Busy: st.Busy, Holds: st.Holds, PendingReboot: st.PendingReboot,
		FreeDiskBytes: st.FreeDiskBytes, Floor: s.floorOf(a), Enrolled: a.Enrolled, LastSeen: a.LastSeen, Revoked: a.Revoked,
		LastResult: st.LastResult, Workloads: st.Workloads,
	}
}

func (s *Server) handleAgentList(w http.ResponseWriter, r *http.Request, _ caller) error {
	q := r.URL.Query()
	platform, version := q.Get("platform"), q.Get("version")
	inactive := q.Get("inactive") == "1" || q.Get("inactive") == "true"
	now := s.clock.Now()
	out := protocol.Agents{Agents: []protocol.Agent{}}
	s.mu.Lock()
	for _, a := range s.agents {
		if (platform != "" && a.St.Platform != platform) || (version != "" && a.St.Version != version) {
			continue
		}
		v := s.agentView(a, now)
		if v.Status == protocol.AgentInactive && !inactive {
			continue
		}
		out.Agents = append(out.Agents, v)
	}
	s.mu.Unlock()
	sort.Slice(out.Agents, func(i, j int) bool {
		if out.Agents[i].Name != out.Agents[j].Name {
			return out.Agents[i].Name < out.Agents[j].Name
		}
		return out.Agents[i].ID < out.Agents[j].ID
	})
	writeJSON(w, 200, out)
	return nil
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
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.findAgent(r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, 200, s.agentView(a, s.clock.Now()))
	return nil
}

func (s *Server) handleAgentRevoke(w http.ResponseWriter, r *http.Request, _ caller) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.findAgent(r.PathValue("id"))
	if err != nil {
		return err
	}
	err = s.change(r.Context(), func(wr *writer) error {
		if _, err := wr.exec(`UPDATE agents SET revoked = 1 WHERE id = ?`, a.ID); err != nil {
			return err
		}
		wr.then(func() {
			a.Revoked = true
			s.notify(a.ID)
		})
		// A revoked agent never comes back under this identity: its open
		// deployment would hold its run forever.
		if d := s.open[a.ID]; d != nil {
			if err := wr.setState(d, protocol.StateCancelled, "agent revoked"); err != nil {
				return err
			}
		}
		return wr.event(event{ID: protocol.EvAgentRevoked, Agent: a.ID, Msg: fmt.Sprintf("agent %s (%s) revoked", a.ID, a.St.Name)})
	})
	if err != nil {
		return err
	}
	writeJSON(w, 200, s.agentView(a, s.clock.Now()))
	return nil
}
