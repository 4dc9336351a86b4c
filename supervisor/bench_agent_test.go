//go:build linux

package supervisor_test

import (
	"bufio"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/e2etest"
)

var benchRestarts = flag.Int("restarts", 20, "restarts of the real agent measured by BenchmarkRealAgentRestart")

// BenchmarkRealAgentRestart measures the restart gap of the real
// molt-agent, enrolled with a real `molt serve` that the benchmark
// starts: the supervisor and agents of a home installed from a signed
// pack, upgraded back and forth between 1.0.0 and 1.1.0 with `molt-agent
// upgrade --pack --wait` (the running agent stages, switches, exits 11;
// the supervisor starts the other version and commits its trial). From
// supervisor.log: the gap from the old agent's exit to the new agent's
// ready, and the new agent's own start (its start to its ready). The
// sub-benchmark "exporter" carries examples/exporter in both packs (built
// at each version, so that it is restarted by every upgrade too).
func BenchmarkRealAgentRestart(b *testing.B) {
	b.Run("agent", func(b *testing.B) { realAgentRestarts(b, false) })
	b.Run("agent+exporter", func(b *testing.B) { realAgentRestarts(b, true) })
}

func realAgentRestarts(b *testing.B, withExporter bool) {
	versions := []string{"1.0.0", "1.1.0"}
	packs := map[string]string{}
	port := freePort(b)
	for _, v := range versions {
		o := e2etest.PackOptions{Version: v}
		if withExporter {
			o.Workloads = []e2etest.Workload{{Spec: exporterSpec(port, time.Second), Files: map[string]string{"exporter": e2etest.Exporter(b, v)}}}
		}
		packs[v] = e2etest.Pack(b, o)
	}
	s := e2etest.StartServer(b, e2etest.ServerOptions{Version: versions[0]})
	var h *e2etest.Host
	// After the host's own stop (cleanups run last registered first):
	// nothing run from the home outlives the benchmark, a workload
	// included, which runs in a process group of its own.
	b.Cleanup(func() {
		if h != nil {
			killUnder(h.Dir)
		}
	})
	h = s.NewHost(e2etest.HostOptions{
		Name: "bench", Version: versions[0], Supervised: true, EnrollToken: s.EnrollToken(1),
		Pack: packs[versions[0]], Watch: "500ms",
	})
	h.Start()
	h.WaitEnrolled(30 * time.Second)
	// The first check-ins are over before the measured restarts.
	time.Sleep(time.Second)

	var gaps, own []time.Duration
	for i := 1; i <= *benchRestarts; i++ {
		v := versions[i%2]
		before := len(supervisorLogLines(b, h))
		if r := h.AgentCLI("upgrade", "--pack", packs[v], "--wait", "--timeout", "60s"); r.Code != 0 {
			b.Fatalf("restart %d: %s", i, r)
		}
		var exited time.Time
		found := false
		for _, l := range supervisorLogLines(b, h)[before:] {
			switch {
			case l.Msg == "agent exited" && l.Code == 11:
				exited = l.TS
			case l.Msg == "agent ready" && l.AgentVersion == v && !exited.IsZero():
				gaps = append(gaps, l.TS.Sub(exited))
				own = append(own, time.Duration(l.After*float64(time.Second)))
				found = true
			}
		}
		if !found {
			b.Fatalf("restart %d: no exit 11 and ready of %s in supervisor.log", i, v)
		}
	}
	mg, pg, xg := quantiles(gaps)
	mo, po, xo := quantiles(own)
	b.ReportMetric(ms(mg), "gap-median-ms")
	b.ReportMetric(ms(pg), "gap-p90-ms")
	b.ReportMetric(ms(mo), "own-start-median-ms")
	what := "real agent"
	if withExporter {
		what = "real agent + examples/exporter"
	}
	b.Logf("restart gap of the %s, enrolled, over %d restarts: exit 11 to ready median %s, p90 %s, min %s, max %s; "+
		"the agent's own start (start to ready) median %s, p90 %s, max %s",
		what, len(gaps), mg.Round(100*time.Microsecond), pg.Round(100*time.Microsecond), gaps[0].Round(100*time.Microsecond),
		xg.Round(100*time.Microsecond), mo.Round(100*time.Microsecond), po.Round(100*time.Microsecond), xo.Round(100*time.Microsecond))
}

// svLine is one line of a home's supervisor.log as this benchmark reads it.
type svLine struct {
	TS           time.Time `json:"ts"`
	Msg          string    `json:"msg"`
	AgentVersion string    `json:"agent_version"`
	Code         int       `json:"code"`
	After        float64   `json:"after"`
}

func supervisorLogLines(b *testing.B, h *e2etest.Host) []svLine {
	f, err := os.Open(filepath.Join(h.Home.LogsDir(), "supervisor.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var out []svLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l svLine
		if strings.HasPrefix(sc.Text(), "{") && json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}

// killUnder kills (SIGKILL) every process whose executable lies under dir.
func killUnder(dir string) {
	prefix := dir + string(os.PathSeparator)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && strings.HasPrefix(exe, prefix) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
