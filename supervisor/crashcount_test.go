package supervisor

import (
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
)

// Every crash of the agent is counted in state/workloads.json, where the
// agent reads it for its check-in (agent_restarts): the server's health
// watch compares it with the count before an upgrade.
func TestAgentCrashesCounted(t *testing.T) {
	h := home.New(t.TempDir())
	s := newTestSupervisor(t, h)
	for want := 1; want <= 3; want++ {
		s.failed("1.0.0", "crashed (exit status 2)", time.Second)
		st, err := h.ReadWorkloadState()
		if err != nil {
			t.Fatal(err)
		}
		if st.AgentRestarts != want {
			t.Fatalf("after crash %d: agent_restarts %d", want, st.AgentRestarts)
		}
	}
	// A clean restart asked for (exit 10) is no crash.
	s.quickRestart(time.Hour)
	if st, _ := h.ReadWorkloadState(); st.AgentRestarts != 3 {
		t.Errorf("after exit 10: agent_restarts %d, want 3", st.AgentRestarts)
	}
}
