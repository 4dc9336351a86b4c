//go:build linux

package supervisor_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/workload/spec"
)

// benchUpgrade switches the home to a new version 1.0.<i> carrying the
// test agent and workload w, and waits for its commit.
func benchUpgrade(b *testing.B, h *testHome, i int, w spec.Workload) string {
	prev := h.active().Current
	v := fmt.Sprintf("1.0.%d", i)
	h.installedProgram(v, w.Spec, exporter)
	h.writeInstalled(v, []spec.Workload{w})
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

// exporterSpec is examples/exporter/pack.yaml's spec on port, without
// scans; scanFor (an argument that does nothing without scans) makes
// each release's workload another one.
func exporterSpec(port int, scanFor time.Duration) spec.Spec {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	return spec.Spec{
		Name:    "exporter",
		Command: "exporter",
		Args:    []string{"-listen", addr, "-scan-every", "0", "-scan-for", scanFor.String()},
		Ready:   spec.Ready{Probe: spec.Probe{HTTP: "http://" + addr + "/metrics"}, Within: spec.Duration(30 * time.Second)},
		Live:    &spec.Live{Probe: spec.Probe{HTTP: "http://" + addr + "/healthz"}, Interval: spec.Duration(10 * time.Second), Failures: 3},
		Stop:    spec.Stop{Signal: "SIGTERM", Grace: spec.Duration(10 * time.Second)},
	}
}

func quantiles(ds []time.Duration) (median, p90, max time.Duration) {
	slices.Sort(ds)
	q := func(p float64) time.Duration { return ds[int(p*float64(len(ds)-1)+0.5)] }
	return q(0.5), q(0.9), ds[len(ds)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// logLine is one line of supervisor.log, as far as the benchmark reads it.
type logLine struct {
	TS      time.Time `json:"ts"`
	Msg     string    `json:"msg"`
	Version string    `json:"workload_version"`
	After   float64   `json:"after"`
}

func (h *testHome) logLines() []logLine {
	var out []logLine
	for _, l := range strings.Split(h.supervisorLog(), "\n") {
		var ll logLine
		if json.Unmarshal([]byte(l), &ll) == nil {
			out = append(out, ll)
		}
	}
	return out
}

// BenchmarkWorkloadDowntime measures the example workload's downtime
// across upgrades (examples/exporter with its pack.yaml's checks). For an
// upgrade that changes it: from the supervisor's stop of the old instance
// to its seeing the new one ready (its log), of which the workload's own
// start is the part from the new instance's start to its ready; and, seen
// from outside, the longest stretch in which GET /metrics failed (polled
// every 2 ms). For an upgrade that does not change it: whether its pid
// stayed and whether any of those GETs failed.
func BenchmarkWorkloadDowntime(b *testing.B) {
	h := newHome(b)
	port := freePort(b)
	first := h.installedProgram("1.0.0", exporterSpec(port, time.Second), exporter)
	w := func(i int) spec.Workload {
		return spec.Workload{Spec: exporterSpec(port, time.Duration(i+1)*time.Second), Files: first.Files}
	}
	h.install("1.0.0 healthy")
	h.writeInstalled("1.0.0", []spec.Workload{first})
	h.setActive(home.Active{Current: "1.0.0"})
	h.start("--watch", "50ms", "--log-level", "info")
	h.waitReady("1.0.0", 1)
	h.waitFor("the exporter ready", 20*time.Second, func() bool {
		st, _ := h.ReadWorkloadState()
		return len(st.Workloads) == 1 && st.Workloads[0].State == home.WorkloadReady
	})

	// An outside view: the longest stretch of failed GETs per upgrade.
	var failing atomic.Int64 // unix ns of the first failure of the current stretch, 0 while up
	var longest atomic.Int64
	var probes, failures atomic.Int64
	stopc, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
		for {
			select {
			case <-stopc:
				return
			case <-time.After(2 * time.Millisecond):
			}
			probes.Add(1)
			now := time.Now().UnixNano()
			resp, err := c.Get(url)
			if err == nil {
				resp.Body.Close()
			}
			if err != nil || resp.StatusCode != 200 {
				failures.Add(1)
				failing.CompareAndSwap(0, now)
				continue
			}
			if f := failing.Swap(0); f != 0 && now-f > longest.Load() {
				longest.Store(now - f)
			}
		}
	}()
	outside := func() time.Duration { return time.Duration(longest.Swap(0)) }

	var downs, own, over, seen []time.Duration
	for i := 1; i <= *benchUpgrades; i++ {
		before := len(h.logLines())
		v := benchUpgrade(b, h, i, w(i))
		var stop, ready time.Time
		var after time.Duration
		for _, l := range h.logLines()[before:] {
			switch {
			case l.Msg == "stopping the workload" && stop.IsZero():
				stop = l.TS
			case l.Msg == "workload ready" && l.Version == v:
				ready, after = l.TS, time.Duration(l.After*float64(time.Second))
			}
		}
		if stop.IsZero() || ready.IsZero() {
			b.Fatalf("upgrade %d: no stop and ready of the exporter in supervisor.log", i)
		}
		downs = append(downs, ready.Sub(stop))
		own = append(own, after)
		over = append(over, ready.Sub(stop)-after)
		seen = append(seen, outside())
	}
	md, pd, xd := quantiles(downs)
	mo, po, _ := quantiles(own)
	mov, pov, _ := quantiles(over)
	ms2, ps2, xs2 := quantiles(seen)
	b.ReportMetric(ms(md), "changed-downtime-median-ms")
	b.ReportMetric(ms(mov), "changed-overhead-median-ms")
	b.ReportMetric(ms(ms2), "changed-outside-gap-median-ms")
	b.Logf("changed workload, %d upgrades: downtime (stop to ready) median %s (p90 %s, max %s); the exporter's own start (start to ready) median %s (p90 %s); molt's part median %s (p90 %s); seen from outside, GET /metrics failing for median %s (p90 %s, max %s)",
		len(downs), md, pd, xd, mo, po, mov, pov, ms2, ps2, xs2)

	// Upgrades that do not change it.
	pid := h.workloadPIDs()
	failures.Store(0)
	p0 := probes.Load()
	same := w(*benchUpgrades)
	for i := *benchUpgrades + 1; i <= 2**benchUpgrades; i++ {
		benchUpgrade(b, h, i, same)
	}
	close(stopc)
	<-done
	after := h.workloadPIDs()
	if len(pid) != 1 || len(after) != 1 || pid[0] != after[0] {
		b.Errorf("the unchanged workload's pid went from %v to %v", pid, after)
	}
	b.ReportMetric(float64(failures.Load()), "unchanged-failed-probes")
	b.Logf("unchanged workload, %d upgrades: pid %v before, %v after; %d of %d GETs failed (downtime 0 when none failed)",
		*benchUpgrades, pid, after, failures.Load(), probes.Load()-p0)
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
