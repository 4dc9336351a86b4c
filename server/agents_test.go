package server

import (
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// TestRevokedAgentStatus: a revoked agent that checked in a moment ago is
// "revoked" in agents list and in agents show alike, not "online".
func TestRevokedAgentStatus(t *testing.T) {
	e := newEnv(t)
	a := e.newAgent("web-1", "1.0.0")
	e.must("POST", "/v1/agents/"+a.id+"/revoke", protocol.RoleAdmin, nil, nil)
	var one protocol.Agent
	e.must("GET", "/v1/agents/"+a.id, protocol.RoleViewer, nil, &one)
	var list protocol.Agents
	e.must("GET", "/v1/agents", protocol.RoleViewer, nil, &list)
	if len(list.Agents) != 1 || list.Agents[0].Status != protocol.AgentRevoked || one.Status != protocol.AgentRevoked || !one.Revoked {
		t.Fatalf("show %q, list %+v: want %q in both", one.Status, list.Agents, protocol.AgentRevoked)
	}
	// Long gone, it is hidden like any inactive agent, and listed with
	// --inactive.
	e.clock.Add(400 * 24 * time.Hour)
	e.must("GET", "/v1/agents", protocol.RoleViewer, nil, &list)
	if len(list.Agents) != 0 {
		t.Fatalf("a revoked agent long gone is listed without --inactive: %+v", list.Agents)
	}
	e.must("GET", "/v1/agents?inactive=1", protocol.RoleViewer, nil, &list)
	if len(list.Agents) != 1 || list.Agents[0].Status != protocol.AgentRevoked {
		t.Fatalf("with --inactive: %+v", list.Agents)
	}
}

// TestRevokedHostRefused: revoking an agent keeps its host (its machine
// fingerprint) out, even with a valid enrollment token, until an admin
// allows it; other hosts enroll with the same token meanwhile.
func TestRevokedHostRefused(t *testing.T) {
	e := newEnv(t)
	a := e.newAgent("web-1", "1.0.0")
	enroll := func(fp string) (int, protocol.Error) {
		return e.do("POST", "/v1/agent/enroll", "", protocol.EnrollRequest{ProtocolVersion: protocol.Version, EnrollmentToken: e.enroll,
			Name: "web-1", Hostname: "web-1", Platform: "linux/amd64", OSFamily: "linux", Version: "1.0.0", Fingerprint: fp}, nil)
	}
	count := func(id int) int {
		n := 0
		for _, ev := range e.events() {
			if ev.ID == id && ev.AgentID == a.id {
				n++
			}
		}
		return n
	}

	if code, pe := e.do("POST", "/v1/agents/"+a.id+"/allow", e.tokens[protocol.RoleAdmin], nil, nil); code != 409 {
		t.Fatalf("allow an agent not revoked: %d %+v", code, pe)
	}
	e.must("POST", "/v1/agents/"+a.id+"/revoke", protocol.RoleAdmin, nil, nil)
	for range 3 {
		if code, pe := enroll("fp-web-1"); code != 403 || pe.Code != protocol.CodeHostRefused {
			t.Fatalf("the revoked host enrolls again: %d %+v", code, pe)
		}
	}
	if n := count(protocol.EvHostRefused); n != 1 {
		t.Fatalf("%d host_refused events for 3 refusals in a row, want 1", n)
	}
	e.clock.Add(hostRefusedEvery)
	_, _ = enroll("fp-web-1")
	if n := count(protocol.EvHostRefused); n != 2 {
		t.Fatalf("%d host_refused events after %s, want 2", n, hostRefusedEvery)
	}
	if code, pe := enroll("fp-web-2"); code != 200 {
		t.Fatalf("another host: %d %+v", code, pe)
	}
	var one protocol.Agent
	e.must("GET", "/v1/agents/"+a.id, protocol.RoleViewer, nil, &one)
	if !one.HostRefused {
		t.Fatalf("show: host_refused not set: %+v", one)
	}

	if code, _ := e.do("POST", "/v1/agents/"+a.id+"/allow", e.tokens[protocol.RoleOperator], nil, nil); code != 403 {
		t.Fatalf("allow with the operator role: %d", code)
	}
	one = protocol.Agent{}
	e.must("POST", "/v1/agents/"+a.id+"/allow", protocol.RoleAdmin, nil, &one)
	if one.HostRefused || !one.Revoked || count(protocol.EvHostAllowed) != 1 {
		t.Fatalf("after allow: %+v, %d host_allowed events", one, count(protocol.EvHostAllowed))
	}
	// Allowing again changes nothing and records nothing.
	e.must("POST", "/v1/agents/"+a.id+"/allow", protocol.RoleAdmin, nil, nil)
	if n := count(protocol.EvHostAllowed); n != 1 {
		t.Fatalf("%d host_allowed events after a second allow", n)
	}
	if code, pe := enroll("fp-web-1"); code != 200 {
		t.Fatalf("the allowed host: %d %+v", code, pe)
	}
	// The refusal survives a restart: it is in the database.
	b := e.newAgent("db-1", "1.0.0")
	e.must("POST", "/v1/agents/"+b.id+"/revoke", protocol.RoleAdmin, nil, nil)
	e.restart()
	if code, pe := e.do("POST", "/v1/agent/enroll", "", protocol.EnrollRequest{ProtocolVersion: protocol.Version, EnrollmentToken: e.enroll,
		Name: "db-1", Platform: "linux/amd64", OSFamily: "linux", Version: "1.0.0", Fingerprint: "fp-db-1"}, nil); code != 403 || pe.Code != protocol.CodeHostRefused {
		t.Fatalf("after a restart: %d %+v", code, pe)
	}
}
