//go:build unix

package e2e

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/internal/pgtest"
	"github.com/moltfleet/molt/internal/s3test"
	"github.com/moltfleet/molt/protocol"
)

// TestReplicas: three molt serve replicas on one PostgreSQL behind a load
// balancer, twelve supervised agents spread over them. A run to a new
// version completes although its leader is killed with SIGKILL mid-run:
// another replica leads within 10 s, no deployment is started twice and
// every agent ends on the new version. Then a run back completes although
// PostgreSQL restarts in its middle.
func TestReplicas(t *testing.T) {
	needBuild(t)
	parallel(t)
	pg := pgtest.Start(t)
	dsn := pg.CreateDB(t, "molt")
	s3 := s3test.Start(t)
	r := e2etest.StartReplicas(t, 3, dsn, e2etest.ServerOptions{
		Version:   newVersion,
		Artifacts: "s3://" + s3.Bucket(t, "packs") + "/molt?region=us-east-1&endpoint=" + s3.Endpoint(),
		Env:       []string{"AWS_ACCESS_KEY_ID=" + s3.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3.SecretKey},
	})
	if l := r.Leader(); l != 0 {
		t.Fatalf("replica %d leads, want the first", l)
	}
	front := r.Front
	front.Import(e2etest.Pack(t, e2etest.PackOptions{Version: newVersion}))
	front.Import(e2etest.Pack(t, e2etest.PackOptions{Version: oldVersion}))
	token := front.EnrollToken(12)
	var hosts []*e2etest.Host
	for i := range 12 {
		h := front.NewHost(e2etest.HostOptions{Name: fmt.Sprintf("h%02d", i), Version: oldVersion, Supervised: true, EnrollToken: token})
		h.Start()
		hosts = append(hosts, h)
	}
	e2etest.Eventually(t, 90*time.Second, "12 agents enrolled through the balancer", func() (bool, string) {
		ags := front.Agents()
		n := 0
		for _, a := range ags {
			if a.Status == protocol.AgentOnline && a.Version == oldVersion {
				n++
			}
		}
		return n == 12, fmt.Sprintf("%d online on %s", n, oldVersion)
	})

	// Run 1: the leader dies mid-run.
	run := front.Upgrade("--target", newVersion, "--all", "--max-concurrent", "3")
	e2etest.Eventually(t, 60*time.Second, "the run under way", func() (bool, string) {
		rr := front.RunReport(run.ID)
		done := rr.Run.Counts[protocol.StateSucceeded]
		return done >= 2, fmt.Sprintf("%+v", rr.Run.Counts)
	})
	old := r.Leader()
	r.Servers[old].Kill9()
	killed := time.Now()
	next := r.WaitLeader(old, 15*time.Second)
	failover := time.Since(killed)
	t.Logf("replica %d leads %v after replica %d was killed", next, failover.Round(time.Millisecond), old)
	if failover > 10*time.Second {
		t.Errorf("failover took %v, want at most 10s", failover)
	}
	if got := front.WaitRun(run.ID, 3*time.Minute); got.Status != protocol.RunEndedOK {
		t.Fatalf("run 1: %+v", got)
	}
	checkOnce(t, front, run.ID, 12, newVersion)

	// Run 2: PostgreSQL restarts mid-run.
	run = front.Upgrade("--target", oldVersion, "--all", "--max-concurrent", "3")
	e2etest.Eventually(t, 60*time.Second, "run 2 under way", func() (bool, string) {
		rr := front.RunReport(run.ID)
		return rr.Run.Counts[protocol.StateSucceeded] >= 2, fmt.Sprintf("%+v", rr.Run.Counts)
	})
	// The leader cannot commit while PostgreSQL is down: it stops, to
	// start again from what the database holds (its service manager
	// restarts it; here the third replica takes over). Operators meanwhile
	// get "retry" answers, never a wrong one.
	pg.Stop()
	time.Sleep(3 * time.Second)
	pg.Start()
	e2etest.Eventually(t, 4*time.Minute, "run 2 ended", func() (bool, string) {
		res := front.Molt("runs", "show", run.ID, "--json")
		if res.Code != 0 {
			return false, res.Stderr
		}
		var got protocol.Run
		if err := json.Unmarshal([]byte(res.Stdout), &got); err != nil {
			return false, err.Error()
		}
		if got.Status != protocol.RunRunning && got.Status != protocol.RunEndedOK {
			t.Fatalf("run 2: %+v", got)
		}
		if got.Status == protocol.RunEndedOK {
			return true, ""
		}
		h := front.Molt("history", "--run", run.ID, "--json")
		return false, fmt.Sprintf("%s %v\n%s", got.Status, got.Counts, h.Stdout)
	})
	checkOnce(t, front, run.ID, 12, oldVersion)
	for _, h := range hosts {
		h.Stop()
	}
}

// checkOnce checks from the events that run started exactly one upgrade
// per agent (no deployment started twice across leaders), that all n
// succeeded, and that every agent runs version.
func checkOnce(t *testing.T, front *e2etest.Server, run string, n int, version string) {
	t.Helper()
	requested := map[string]int{}
	for _, e := range front.Events() {
		if e.ID == protocol.EvUpgradeRequested && e.RunID == run {
			requested[e.DeploymentID]++
		}
	}
	if len(requested) != n {
		t.Errorf("run %s: %d deployments requested, want %d", run, len(requested), n)
	}
	for d, k := range requested {
		if k != 1 {
			t.Errorf("deployment %s requested %d times", d, k)
		}
	}
	rr := front.RunReport(run)
	if rr.Run.Counts[protocol.StateSucceeded] != n {
		t.Errorf("run %s: %+v, want %d succeeded", run, rr.Run.Counts, n)
	}
	for _, a := range front.Agents() {
		if a.Version != version {
			t.Errorf("agent %s runs %s, want %s", a.Name, a.Version, version)
		}
	}
}
