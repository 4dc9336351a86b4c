//go:build linux

package supervisor_test

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/workload/spec"
)

// benchUpgradeWith switches the home to a new version 1.0.<i> carrying
// the test agent and workload sp, and waits for its commit.
func benchUpgradeWith(b *testing.B, h *testHome, i int, sp spec.Spec) string {
	prev := h.active().Current
	v := fmt.Sprintf("1.0.%d", i)
	h.installWorkload(v, sp)
	h.copy(agents["1.0.0 healthy"], h.AgentBinary(v))
	if err := os.WriteFile(h.ValidPath(v), nil, 0o644); err != nil {
		b.Fatal(err)
	}
	pids := h.agentPIDs()
	if len(pids) != 1 {
		b.Fatalf("agents %v", pids)
	}
	h.setActive(home.Active{Current: v, Previous: prev, Trial: &home.Trial{Version: v, Switched: time.Now()}})
	if err := syscall.Kill(pids[0], syscall.SIGHUP); err != nil {
		b.Fatal(err)
	}
	h.waitFor("commit of "+v, 20*time.Second, func() bool {
		r, ok := h.result()
		return ok && r.Version == v && r.Outcome == home.OutcomeCommitted
	})
	return v
}

func quantiles(ds []time.Duration) (median, p90, max time.Duration) {
	slices.Sort(ds)
	q := func(p float64) time.Duration { return ds[int(p*float64(len(ds)-1)+0.5)] }
	return q(0.5), q(0.9), ds[len(ds)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkWorkloadDowntime measures the workload's downtime across
// upgrades: for an upgrade that changes it, from the old instance's stop
// (it receives SIGTERM) to the new one's ready (its ready endpoint first
// answers 200, to the supervisor's probe), and the part of it that is the
// workload's own start (its start to its ready); for an upgrade that does
// not change it, whether its pid stayed and whether any probe of its
// ready endpoint failed meanwhile.
func BenchmarkWorkloadDowntime(b *testing.B) {
	h := newHome(b)
	port := freePort(b)
	sp := func(tag string) spec.Spec { return workloadSpec(port, "-tag", tag) }
	old := h.installWith("1.0.0 healthy", sp("t0"))
	h.setActive(home.Active{Current: old})
	h.start("--watch", "50ms", "--log-level", "info")
	h.waitReady(old, 1)
	h.waitWorkloadState(home.WorkloadReady, 10*time.Second)

	var downs, own []time.Duration
	for i := 1; i <= *benchUpgrades; i++ {
		tag := fmt.Sprintf("t%d", i)
		before := h.wevents()
		benchUpgradeWith(b, h, i, sp(tag))
		var stop, start, ready time.Time
		for _, e := range h.wevents()[len(before):] {
			switch {
			case e.what == "stop-terminated" && stop.IsZero():
				stop = e.at
			case e.tag == tag && e.what == "start":
				start = e.at
			case e.tag == tag && e.what == "ready":
				ready = e.at
			}
		}
		if stop.IsZero() || start.IsZero() || ready.IsZero() {
			b.Fatalf("upgrade %d: no stop/start/ready in the workload's events", i)
		}
		downs = append(downs, ready.Sub(stop))
		own = append(own, ready.Sub(start))
	}
	md, pd, xd := quantiles(downs)
	mo, _, _ := quantiles(own)
	over := make([]time.Duration, len(downs))
	for i := range downs {
		over[i] = downs[i] - own[i]
	}
	mov, pov, _ := quantiles(over)
	b.ReportMetric(ms(md), "changed-downtime-median-ms")
	b.ReportMetric(ms(mov), "changed-overhead-median-ms")
	b.Logf("changed workload, %d upgrades: downtime median %s (p90 %s, max %s); its own start median %s; molt's part median %s (p90 %s)",
		len(downs), md, pd, xd, mo, mov, pov)

	// Upgrades that do not change it.
	pid := h.workloadPIDs()
	var probes, failures atomic.Int64
	stopc, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		c := &http.Client{Timeout: time.Second}
		for {
			select {
			case <-stopc:
				return
			case <-time.After(5 * time.Millisecond):
			}
			probes.Add(1)
			resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/ready", port))
			if err != nil || resp.StatusCode != 200 {
				failures.Add(1)
			}
			if err == nil {
				resp.Body.Close()
			}
		}
	}()
	same := sp(fmt.Sprintf("t%d", *benchUpgrades))
	for i := *benchUpgrades + 1; i <= 2**benchUpgrades; i++ {
		benchUpgradeWith(b, h, i, same)
	}
	close(stopc)
	<-done
	after := h.workloadPIDs()
	if len(pid) != 1 || len(after) != 1 || pid[0] != after[0] {
		b.Errorf("the unchanged workload's pid went from %v to %v", pid, after)
	}
	b.ReportMetric(float64(failures.Load()), "unchanged-failed-probes")
	b.Logf("unchanged workload, %d upgrades: pid %v before, %v after; %d of %d probes failed (downtime 0 when none failed)",
		*benchUpgrades, pid, after, failures.Load(), probes.Load())
}

// BenchmarkWorkloadFootprint measures the supervisor's resident memory
// with one agent and three workloads running, after a quiet period.
func BenchmarkWorkloadFootprint(b *testing.B) {
	h := newHome(b)
	v := h.install("1.0.0 healthy")
	var ws []spec.Workload
	for _, n := range []string{"a", "b", "c"} {
		sp := workloadSpec(freePort(b))
		sp.Name = n
		h.installWorkload(v, sp)
		ws = append(ws, h.installedWorkload(v, sp))
	}
	h.writeInstalled(v, ws)
	h.setActive(home.Active{Current: v})
	sv := h.start("--log-level", "info")
	h.waitReady(v, 1)
	h.waitFor("three workloads ready", 20*time.Second, func() bool { return len(h.wfind("", "ready")) >= 3 })
	time.Sleep(*benchIdle)
	pid := sv.Process.Pid
	rss, hwm := procStatusKB(b, pid, "VmRSS:"), procStatusKB(b, pid, "VmHWM:")
	b.ReportMetric(float64(rss)/1024, "rss-MB")
	b.Logf("supervisor with one agent and three workloads (live checks every 100ms), after %s: RSS %.1f MB (peak %.1f MB)",
		*benchIdle, float64(rss)/1024, float64(hwm)/1024)
}
