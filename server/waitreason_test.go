package server

import (
	"testing"

	"github.com/moltfleet/molt/protocol"
)

// TestWaitReasonsFollowTheHost checks that a waiting deployment's reason
// is what holds now, not what held when it was first given: in a running
// run, in a paused one, and in a run with no free slot.
func TestWaitReasonsFollowTheHost(t *testing.T) {
	const clusterBusy = "another agent of cluster db-east is upgrading"
	type world struct {
		e      *env
		agents map[string]*simAgent
		run    protocol.Run
	}
	dep := func(w *world, name string) protocol.Deployment {
		t.Helper()
		var ds protocol.Deployments
		w.e.must("GET", "/v1/deployments?agent="+w.agents[name].id, protocol.RoleViewer, nil, &ds)
		if len(ds.Deployments) == 0 {
			t.Fatalf("%s has no deployment", name)
		}
		return ds.Deployments[0]
	}
	expect := func(t *testing.T, w *world, name, state, reason string) {
		t.Helper()
		if d := dep(w, name); d.State != state || d.Reason != reason {
			t.Fatalf("%s: %s %q, want %s %q", name, d.State, d.Reason, state, reason)
		}
	}
	inCluster := func(r *protocol.EnrollRequest) { r.Cluster = "db-east" }
	// first returns the agent that got the order, and the order.
	first := func(t *testing.T, w *world, names ...string) (*simAgent, protocol.Order, string) {
		t.Helper()
		for _, n := range names {
			if o := upgradeOrder(w.agents[n].checkin()); o != nil {
				return w.agents[n], *o, n
			}
		}
		t.Fatal("no agent got an order")
		return nil, protocol.Order{}, ""
	}
	other := map[string]string{"c1": "c2", "c2": "c1"}
	cases := []struct {
		name   string
		agents map[string]func(*protocol.EnrollRequest)
		req    protocol.RunRequest
		check  func(t *testing.T, w *world)
	}{
		{
			name:   "running: the cluster reason goes when the other agent finished",
			agents: map[string]func(*protocol.EnrollRequest){"c1": inCluster, "c2": inCluster},
			req:    protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0"},
			check: func(t *testing.T, w *world) {
				w.e.schedule()
				a, o, n := first(t, w, "c1", "c2")
				expect(t, w, other[n], protocol.StateWaitingForHost, clusterBusy)
				a.complete(o)
				w.e.schedule()
				expect(t, w, other[n], protocol.StateRequested, "")
			},
		},
		{
			name:   "paused: the cluster reason goes, and a new one comes, while nothing starts",
			agents: map[string]func(*protocol.EnrollRequest){"c1": inCluster, "c2": inCluster},
			req:    protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0"},
			check: func(t *testing.T, w *world) {
				w.e.schedule()
				a, o, n := first(t, w, "c1", "c2")
				expect(t, w, other[n], protocol.StateWaitingForHost, clusterBusy)
				w.e.must("POST", "/v1/runs/"+w.run.ID+"/pause", protocol.RoleOperator, nil, nil)
				w.e.schedule()
				expect(t, w, other[n], protocol.StateWaitingForHost, clusterBusy)
				a.complete(o)
				w.e.schedule()
				expect(t, w, other[n], protocol.StatePending, "")
				b := w.agents[other[n]]
				b.st.Holds = []string{"backup running"}
				b.checkin()
				w.e.schedule()
				expect(t, w, other[n], protocol.StateWaitingForHost, "held: backup running")
				b.st.Holds = nil
				b.checkin()
				w.e.schedule()
				expect(t, w, other[n], protocol.StatePending, "")
				w.e.must("POST", "/v1/runs/"+w.run.ID+"/resume", protocol.RoleOperator, nil, nil)
				w.e.schedule()
				expect(t, w, other[n], protocol.StateRequested, "")
			},
		},
		{
			name:   "full: a host that became free waits for a slot without the old reason",
			agents: map[string]func(*protocol.EnrollRequest){"a": nil, "b": nil},
			req:    protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0", MaxConcurrent: 1},
			check: func(t *testing.T, w *world) {
				w.agents["b"].st.Busy = true
				w.agents["b"].checkin()
				w.e.schedule()
				a, o, n := first(t, w, "a", "b")
				if n != "a" {
					t.Fatalf("busy agent %s got an order", n)
				}
				expect(t, w, "b", protocol.StateWaitingForHost, "busy")
				w.agents["b"].st.Busy = false
				w.agents["b"].checkin()
				w.e.schedule()
				expect(t, w, "b", protocol.StatePending, "")
				a.complete(o)
				w.e.schedule()
				expect(t, w, "b", protocol.StateRequested, "")
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.importPack("1.0.0", "", "linux/amd64")
			e.importPack("2.0.0", "", "linux/amd64")
			w := &world{e: e, agents: map[string]*simAgent{}}
			for name, mod := range tc.agents {
				var mods []func(*protocol.EnrollRequest)
				if mod != nil {
					mods = append(mods, mod)
				}
				w.agents[name] = e.newAgent(name, "1.0.0", mods...)
			}
			w.run = e.createRun(tc.req)
			tc.check(t, w)
		})
	}
}
