//go:build linux

package faults

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/workload/spec"
)

// The workload every pack of the crash-point fleet carries:
// examples/exporter, built at the pack's version, so an upgrade changes
// it (its identity) and the supervisor must stop the old one and start
// the new one.
const (
	workloadName = "exporter"
	// listenFile, in each home's data/exporter/, holds the address its
	// exporter listens on: a pack's args are the same on every host, and
	// the hosts of a case share this machine's loopback.
	listenFile = "listen"
)

// workloadUp bounds how long after the host and the server agreed the
// workload may still take to be the one of the host's version, ready
// (its start after a rollback or a restarted supervisor).
const workloadUp = 30 * time.Second

// exporterWorkload is the exporter built at v: its address from its
// data directory, ready when it calls workload.Ready() after it listens
// (the "file" check: an http check names one URL for every host of the
// pack, and two hosts of a case cannot listen on one port; the test
// itself reads /metrics over HTTP).
func exporterWorkload(t *testing.T, v string) e2etest.Workload {
	t.Helper()
	d := func(s string) spec.Duration {
		x, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return spec.Duration(x)
	}
	return e2etest.Workload{
		Spec: spec.Spec{
			Name:    workloadName,
			Command: "run-exporter",
			Args:    []string{"-listen-file", listenFile, "-scan-every", "0"},
			Ready:   spec.Ready{Probe: spec.Probe{File: true}, Within: d("30s")},
			Stop:    spec.Stop{Grace: d("5s")},
			Restart: spec.Restart{BackoffMin: d("200ms")},
		},
		Files: map[string]string{
			"exporter":     e2etest.Exporter(t, v),
			"run-exporter": filepath.Join(e2etest.ModuleRoot(t), "faults", "testdata", "run-exporter"),
		},
	}
}

// workloadPack is the pack of version v carrying the exporter of v
// (agentMode: a broken agent, as PackOptions.AgentMode).
func workloadPack(t *testing.T, v, agentMode string) string {
	t.Helper()
	return e2etest.Pack(t, e2etest.PackOptions{Version: v, AgentMode: agentMode, Workloads: []e2etest.Workload{exporterWorkload(t, v)}})
}

// writeListenFile gives h's exporter a free loopback address and returns
// it.
func writeListenFile(t *testing.T, h *e2etest.Host) string {
	t.Helper()
	addr := e2etest.FreeAddr(t)
	dir := h.Home.DataDir(workloadName)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, listenFile), []byte(addr+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return addr
}

// wlProc is a process that runs a workload file of a home.
type wlProc struct {
	pid     int
	version string // versions/<version>/workloads/...
	exe     string
}

func (p wlProc) String() string { return fmt.Sprintf("pid %d (%s)", p.pid, p.exe) }

// workloadProcs lists the live processes (not zombies) whose executable
// is a file under versions/*/workloads/ of home h, found in /proc: what
// runs whatever state/workloads.json says.
func workloadProcs(h home.Home) []wlProc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	root := h.VersionsDir() + string(filepath.Separator)
	var out []wlProc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || !strings.HasPrefix(exe, root) {
			continue
		}
		v, rest, ok := strings.Cut(strings.TrimPrefix(exe, root), string(filepath.Separator))
		if !ok || !strings.HasPrefix(rest, "workloads"+string(filepath.Separator)) {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			continue
		}
		out = append(out, wlProc{pid: pid, version: v, exe: exe})
	}
	slices.SortFunc(out, func(a, b wlProc) int { return a.pid - b.pid })
	return out
}

// checkWorkload asserts, within workloadUp, that exactly one exporter
// process of h's home runs, from versions/want/, that it serves /metrics
// on addr as the exporter of want, and that state/workloads.json records
// that very process, ready, of want. It returns how long that took.
func checkWorkload(t *testing.T, h *e2etest.Host, addr, want string) time.Duration {
	t.Helper()
	start := time.Now()
	if why := workloadWrongWithin(h, addr, want, workloadUp); why != "" {
		t.Errorf("%s: the workload, %s after the host and the server agreed: %s", h.Name, workloadUp, why)
	}
	return time.Since(start)
}

// workloadWrong says what is not as checkWorkload wants ("" when all is).
func workloadWrong(h *e2etest.Host, addr, want string) string {
	procs := workloadProcs(h.Home)
	if len(procs) != 1 {
		return fmt.Sprintf("%d workload processes run, want 1: %v", len(procs), procs)
	}
	p := procs[0]
	if p.version != want || filepath.Base(p.exe) != "exporter" {
		return fmt.Sprintf("the workload process is %s, want versions/%s/workloads/%s/exporter", p, want, workloadName)
	}
	w, ok := h.Workload(workloadName)
	if !ok {
		return "state/workloads.json does not list " + workloadName
	}
	if w.Version != want || w.State != home.WorkloadReady || w.Process.PID != p.pid {
		return fmt.Sprintf("state/workloads.json says %s %s, pid %d (%s); the process that runs is %s",
			w.Version, w.State, w.Process.PID, w.Reason, p)
	}
	code, body := e2etest.Get("http://" + addr + "/metrics")
	if code != 200 || !strings.Contains(body, `exporter_build_info{version="`+want+`"`) {
		return fmt.Sprintf("GET http://%s/metrics: %d %.200q, want exporter_build_info of %s", addr, code, body, want)
	}
	return ""
}

// workloadWrongWithin waits up to d for workloadWrong to find nothing
// wrong, and returns what it found last.
func workloadWrongWithin(h *e2etest.Host, addr, want string, d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		why := workloadWrong(h, addr, want)
		if why == "" || time.Now().After(deadline) {
			return why
		}
		time.Sleep(100 * time.Millisecond)
	}
}
