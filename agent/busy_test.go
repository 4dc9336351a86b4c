package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/workload/spec"
)

// stageTestWorkloads writes versions/<v>/workloads.json and the workloads'
// files as the updater stages them, and makes v current.
func stageTestWorkloads(t *testing.T, h home.Home, v string, files map[string]map[string]string, specs ...spec.Spec) {
	t.Helper()
	in := spec.Installed{Version: v, Platform: "linux/amd64"}
	for _, s := range specs {
		w := spec.Workload{Spec: s}
		for p, content := range files[s.Name] {
			full := filepath.Join(h.WorkloadDir(v, s.Name), filepath.FromSlash(p))
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(full, []byte(content), 0o755); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256([]byte(content))
			w.Files = append(w.Files, spec.File{Path: p, Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:]), Mode: "0755"})
		}
		in.Workloads = append(in.Workloads, w)
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spec.ParseInstalled(b); err != nil {
		t.Fatalf("test workloads.json: %v", err)
	}
	if err := os.WriteFile(h.WorkloadsFile(v), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteActive(home.Active{Current: v}); err != nil {
		t.Fatal(err)
	}
}

func running() spec.Ready {
	return spec.Ready{Probe: spec.Probe{Running: spec.Duration(time.Second)}}
}

// TestBusyProbes runs real busy probes (a command that answers what the
// workload's data directory says): busy is a hold, idle none, and a
// failing probe counts as idle and is logged once until it changes.
func TestBusyProbes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the probe is a shell script")
	}
	h := home.New(t.TempDir())
	// The script sees the workload's environment: its data directory.
	script := "#!/bin/sh\ncat \"$MOLT_DATA_DIR/answer\"\n"
	stageTestWorkloads(t, h, "1.2.0",
		map[string]map[string]string{
			"exporter": {"bin/exporter": "#!/bin/sh\n", "bin/busy": script},
			"sensor":   {"bin/sensor": "#!/bin/sh\n"},
		},
		spec.Spec{Name: "exporter", Command: "bin/exporter", Ready: running(), Busy: &spec.Busy{Probe: spec.Probe{Command: []string{"bin/busy"}}}},
		spec.Spec{Name: "sensor", Command: "bin/sensor", Ready: running()},
	)
	if err := os.MkdirAll(h.DataDir("exporter"), 0o750); err != nil {
		t.Fatal(err)
	}
	answer := func(s string) {
		t.Helper()
		p := filepath.Join(h.DataDir("exporter"), "answer")
		if s == "" {
			os.Remove(p)
			return
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	core, logs := observer.New(zap.InfoLevel)
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	b := newBusyProbes(h, zap.New(core), func() time.Time { return now }, func() string { return "agent-1" })
	ctx := context.Background()

	answer("busy: 2 scans running\n")
	hs := b.Busy(ctx)
	if len(hs) != 1 || hs[0].Reason != "workload exporter is busy (busy probe)" || !hs[0].Created.Equal(now) {
		t.Fatalf("busy probe said busy: holds %+v, want one for exporter", hs)
	}
	now = now.Add(time.Minute)
	if hs := b.Busy(ctx); len(hs) != 1 || !hs[0].Created.Equal(now.Add(-time.Minute)) {
		t.Errorf("still busy: holds %+v, want the hold from the first busy answer", hs)
	}
	answer("idle\n")
	if hs := b.Busy(ctx); len(hs) != 0 {
		t.Errorf("idle: holds %+v, want none", hs)
	}
	answer("")
	for range 3 {
		if hs := b.Busy(ctx); len(hs) != 0 {
			t.Errorf("failing probe: holds %+v, want none (counted as idle)", hs)
		}
	}
	if n := logs.FilterMessage("busy probe failed; counted as idle").Len(); n != 1 {
		t.Errorf("a probe failing 3 times in the same way logged %d times, want once", n)
	}
	answer("maybe")
	b.Busy(ctx)
	if n := logs.FilterMessage("busy probe failed; counted as idle").Len(); n != 2 {
		t.Errorf("a probe failing another way: %d warnings, want 2", n)
	}
	answer("idle")
	b.Busy(ctx)
	if n := logs.FilterMessage("busy probe answers again").Len(); n != 1 {
		t.Errorf("recovery logged %d times, want once", n)
	}
}

// TestBusyProbesWithoutWorkloads: a home without workloads.json, or
// without active.json, has nothing to ask; a broken workloads.json is
// logged and asks nothing.
func TestBusyProbesWithoutWorkloads(t *testing.T) {
	h := home.New(t.TempDir())
	core, logs := observer.New(zap.InfoLevel)
	b := newBusyProbes(h, zap.New(core), time.Now, func() string { return "" })
	if hs := b.Busy(context.Background()); hs != nil {
		t.Errorf("no active.json: %v", hs)
	}
	if err := h.WriteActive(home.Active{Current: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	if hs := b.Busy(context.Background()); hs != nil {
		t.Errorf("no workloads.json: %v", hs)
	}
	os.MkdirAll(h.VersionDir("1.0.0"), 0o755)
	os.WriteFile(h.WorkloadsFile("1.0.0"), []byte(`{"version":"1.0.0","workloads":[{"spec":{"name":"../x"}}]}`), 0o644)
	if hs := b.Busy(context.Background()); hs != nil {
		t.Errorf("bad workloads.json: %v", hs)
	}
	if logs.FilterMessage("busy probes: cannot read the workloads; none asked").Len() != 1 {
		t.Errorf("a bad workloads.json is not logged: %v", logs.All())
	}
}

// fakeBusy is a BusyProber whose answer the test sets.
type fakeBusy struct {
	mu    sync.Mutex
	holds []Hold
	asked int
}

func (f *fakeBusy) Busy(context.Context) []Hold {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked++
	return slices.Clone(f.holds)
}

func (f *fakeBusy) set(hs []Hold) {
	f.mu.Lock()
	f.holds = hs
	f.mu.Unlock()
}

// TestRunOrderWaitsForBusyProbe: a workload that says busy holds the
// switch like a hold file, shows in the status, and the switch follows
// once it says idle.
func TestRunOrderWaitsForBusyProbe(t *testing.T) {
	u := &fakeUpdater{}
	fb := &fakeBusy{holds: []Hold{{ID: busyHoldPrefix + "exporter", Reason: BusyReason("exporter")}}}
	var mu sync.Mutex
	var details []string
	orders := ordersFunc(func(ctx context.Context, d *Daemon) error {
		_ = d.RunOrder(ctx, Order{ID: "dep-1", Version: "1.1.0", PackURL: "https://s/v1/packs/1.1.0",
			Progress: func(p Progress) {
				mu.Lock()
				details = append(details, p.Step+": "+p.Detail)
				mu.Unlock()
			}})
		<-d.Switched()
		return nil
	})
	ctl := newFakeControl()
	d, _ := newTestDaemon(t, ctl, u, orders)
	d.o.Busy = fb
	// Asked every busyEvery: a clock that moves on makes every poll ask.
	var clock sync.Mutex
	now := time.Now()
	d.o.Now = func() time.Time {
		clock.Lock()
		defer clock.Unlock()
		now = now.Add(busyEvery)
		return now
	}
	_, done := runDaemon(t, d)
	waitFor(t, "the wait for the busy probe", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(details, "wait: waiting for 1 hold(s): [workload exporter is busy (busy probe)]")
	})
	if st := d.Status(); !st.Busy || !slices.Contains(st.Holds, BusyReason("exporter")) {
		t.Errorf("status while the probe says busy: busy %v holds %v", st.Busy, st.Holds)
	}
	waitFor(t, "busy told to the supervisor", func() bool { return slices.Contains(ctl.said(), "busy") })
	if slices.Contains(u.got(), "switch 1.1.0") {
		t.Fatal("switched while a workload said busy")
	}
	fb.set(nil)
	if err := result(t, done); !errors.Is(err, ErrSwitched) {
		t.Fatalf("Run = %v, want ErrSwitched", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(details, "wait: holds released") {
		t.Errorf("steps %v: no release", details)
	}
}

// TestBusyProbeWithoutOrder: the busy probes are asked while no order
// runs too, so a busy workload shows in the status (and the server holds
// its order back as waiting_for_host), and its end clears it.
func TestBusyProbeWithoutOrder(t *testing.T) {
	fb := &fakeBusy{holds: []Hold{{ID: busyHoldPrefix + "exporter", Reason: BusyReason("exporter")}}}
	idle := ordersFunc(func(ctx context.Context, d *Daemon) error {
		<-ctx.Done()
		return nil
	})
	d, _ := newTestDaemon(t, newFakeControl(), &fakeUpdater{}, idle)
	d.o.Busy = fb
	var clock sync.Mutex
	now := time.Now()
	d.o.Now = func() time.Time {
		clock.Lock()
		defer clock.Unlock()
		now = now.Add(busyWatchEvery)
		return now
	}
	runDaemon(t, d)
	waitFor(t, "the busy probe's hold in the status", func() bool {
		st := d.Status()
		return st.Busy && slices.Contains(st.Holds, BusyReason("exporter"))
	})
	fb.set(nil)
	waitFor(t, "idle once the probe says so", func() bool { return !d.Status().Busy })
}
