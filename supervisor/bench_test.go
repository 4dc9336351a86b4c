//go:build linux

package supervisor_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
)

var (
	benchUpgrades = flag.Int("upgrades", 20, "upgrades measured by BenchmarkRestartGap")
	benchIdle     = flag.Duration("idle", 60*time.Second, "idle period measured by BenchmarkIdleFootprint")
)

// BenchmarkRestartGap measures, over a series of upgrades of the test
// agent, the time from the old agent's exit (11) to the new agent's
// ready, as the agents record them.
func BenchmarkRestartGap(b *testing.B) {
	h := newHome(b)
	old := h.install("1.0.0 healthy")
	h.setActive(home.Active{Current: old})
	sv := h.start("--watch", "50ms")
	h.waitReady(old, 1)
	fds := func() int {
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", sv.Process.Pid))
		return len(ents)
	}
	fds0 := fds()
	var gaps []time.Duration
	for i := 1; i <= *benchUpgrades; i++ {
		prev := h.active().Current
		v := fmt.Sprintf("1.0.%d", i)
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
		var exit, ready time.Time
		for _, e := range h.events() {
			if e.pid == pids[0] && e.what == "exit-11" {
				exit = e.at
			}
			if !exit.IsZero() && e.pid != pids[0] && e.what == "ready" {
				ready = e.at
			}
		}
		if exit.IsZero() || ready.IsZero() {
			b.Fatalf("upgrade %d: no exit/ready pair in the events", i)
		}
		gaps = append(gaps, ready.Sub(exit))
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	q := func(p float64) time.Duration { return gaps[int(p*float64(len(gaps)-1)+0.5)] }
	b.ReportMetric(ms(q(0.5)), "gap-median-ms")
	b.ReportMetric(ms(q(0.9)), "gap-p90-ms")
	b.ReportMetric(ms(gaps[len(gaps)-1]), "gap-max-ms")
	b.Logf("restart gap over %d upgrades: median %s, p90 %s, min %s, max %s",
		len(gaps), q(0.5), q(0.9), gaps[0], gaps[len(gaps)-1])
	b.Logf("supervisor's open files: %d before the upgrades, %d after", fds0, fds())
}

// BenchmarkIdleFootprint measures the supervisor's resident memory and
// CPU time while a healthy agent runs and nothing happens.
func BenchmarkIdleFootprint(b *testing.B) {
	h := newHome(b)
	v := h.install("1.0.0 healthy")
	h.setActive(home.Active{Current: v})
	sv := h.start("--log-level", "info")
	h.waitReady(v, 1)
	time.Sleep(time.Second)
	pid := sv.Process.Pid
	cpu0 := cpuTime(b, pid)
	time.Sleep(*benchIdle)
	cpu := cpuTime(b, pid) - cpu0
	rss, hwm := procStatusKB(b, pid, "VmRSS:"), procStatusKB(b, pid, "VmHWM:")
	b.ReportMetric(float64(rss)/1024, "rss-MB")
	b.ReportMetric(float64(hwm)/1024, "peak-rss-MB")
	b.ReportMetric(cpu.Seconds(), "cpu-s")
	b.Logf("supervisor idle for %s: RSS %.1f MB (peak %.1f MB), CPU time %s",
		*benchIdle, float64(rss)/1024, float64(hwm)/1024, cpu)
}

// cpuTime is the CPU time of all of pid's threads, summed from
// /proc/<pid>/task/*/schedstat (nanoseconds; /proc/<pid>/stat counts in
// 10 ms ticks, too coarse for an idle process).
func cpuTime(b *testing.B, pid int) time.Duration {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		b.Fatalf("no threads of %d: %v", pid, err)
	}
	var total int64
	for _, t := range tasks {
		st, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended
		}
		f := strings.Fields(string(st))
		ns, _ := strconv.ParseInt(f[0], 10, 64)
		total += ns
	}
	return time.Duration(total)
}

func procStatusKB(b *testing.B, pid int, key string) int64 {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if strings.HasPrefix(line, key) {
			f := strings.Fields(line)
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	b.Fatalf("no %s in /proc/%d/status", key, pid)
	return 0
}
