package systemdtest

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/internal/nspawn"
)

// RoundsVar turns TestServiceTimesUnderSystemd on: how many rounds it
// measures (scripts/systemd-bench.sh sets it).
const RoundsVar = "MOLT_SYSTEMD_ROUNDS"

// The figures of docs/packaging.md, under a real systemd with the agent
// installed from its package: "systemctl start" until the agent says
// ready, and kill -9 of the supervisor until systemd has a new supervisor
// running and until its agent says ready; median, minimum and maximum
// over the rounds.
func TestServiceTimesUnderSystemd(t *testing.T) {
	rounds, _ := strconv.Atoi(os.Getenv(RoundsVar))
	if rounds <= 0 {
		t.Skipf("measures only with %s=N (scripts/systemd-bench.sh)", RoundsVar)
	}
	need(t, nspawn.Systemd)
	srv := e2etest.StartServer(t, e2etest.ServerOptions{Version: vA})
	h := installAgent(t, srv, nspawn.Systemd)
	var starts, restarts, restartReady []time.Duration
	for range rounds {
		h.run("systemctl", "stop", unit)
		n := h.count(supLog, `"agent ready"`)
		t0 := time.Now()
		h.run("systemctl", "start", unit)
		h.waitReady(n+1, 60*time.Second)
		starts = append(starts, time.Since(t0))
	}
	for range rounds {
		n := h.count(supLog, `"agent ready"`)
		old := h.one("molt-supervisor")
		t0 := time.Now()
		if err := syscall.Kill(old.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		restarts = append(restarts, waitFor(t, 10*time.Second, "a new supervisor", func() (bool, string) {
			for _, p := range h.procs("molt-supervisor") {
				if p.NSPID != old.NSPID {
					return true, ""
				}
			}
			return false, ""
		}))
		h.waitReady(n+1, 60*time.Second)
		restartReady = append(restartReady, time.Since(t0))
		if ps := h.procs("molt-agent"); len(ps) != 1 {
			t.Fatalf("%d agents after kill -9 of the supervisor: %s", len(ps), pids(ps))
		}
	}
	fmt.Printf("under systemd in systemd-nspawn, agent from its .deb, %d rounds:\n", rounds)
	stats("systemctl start -> agent ready", starts)
	stats("kill -9 supervisor -> new supervisor", restarts)
	stats("kill -9 supervisor -> agent ready", restartReady)
}

func stats(name string, ds []time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Printf("  %-38s median %7.1f ms   min %7.1f ms   max %7.1f ms   (n=%d)\n",
		name, ms(s[(len(s)-1)/2]), ms(s[0]), ms(s[len(s)-1]), len(s))
}
