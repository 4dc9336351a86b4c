package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/smallfile"
	"github.com/moltfleet/molt/workload/probe"
	"github.com/moltfleet/molt/workload/spec"
)

// Busy probes: a workload whose spec has a "busy" check is asked, every
// 15 s and every 5 s while the agent waits to switch, whether it does
// work that must not be interrupted (docs/workloads.md, "Busy: the hold API"). A busy answer is
// a hold like a file's; a probe that fails or answers neither busy nor
// idle counts as idle, so a broken probe cannot block upgrades forever.

// Bounds of the busy probes.
const (
	// busyEvery is how often the probes are asked while the agent waits;
	// the last answers count in between.
	busyEvery = 5 * time.Second
	// busyWatchEvery is how often they are asked while no order runs:
	// a busy answer then makes the server hold its order back
	// (waiting_for_host), like a hold file.
	busyWatchEvery = 15 * time.Second
	// maxBusyProbe bounds one probe whatever its spec's timeout says.
	maxBusyProbe = 30 * time.Second
	// maxWorkloadsFile bounds versions/<v>/workloads.json when read.
	maxWorkloadsFile = 64 << 20
)

// BusyProber asks the busy probes of the current version's workloads.
type BusyProber interface {
	// Busy returns a hold for each workload whose probe says busy.
	Busy(ctx context.Context) []Hold
}

// busyProbes is the BusyProber of a home: it reads versions/<current>/
// workloads.json and runs each busy check with workload/probe.
type busyProbes struct {
	home home.Home
	log  *zap.Logger
	now  func() time.Time
	// agentID is $MOLT_AGENT_ID of a command probe.
	agentID func() string
	// ask runs one probe (probe.Busy; tests replace it).
	ask func(ctx context.Context, b spec.Busy, t probe.Target) (bool, error)

	mu sync.Mutex
	// errs is each workload's last probe error, so that a failing probe
	// is logged when it starts or changes, not at every ask.
	errs map[string]string
	// since is when each workload's probe first said busy in a row.
	since map[string]time.Time
}

func newBusyProbes(h home.Home, log *zap.Logger, now func() time.Time, agentID func() string) *busyProbes {
	return &busyProbes{home: h, log: log, now: now, agentID: agentID, ask: probe.Busy,
		errs: map[string]string{}, since: map[string]time.Time{}}
}

// BusyReason is the hold reason of a workload whose busy probe says busy.
func BusyReason(name string) string { return "workload " + name + " is busy (busy probe)" }

// busyHoldPrefix starts the id of a busy probe's hold.
const busyHoldPrefix = "busy-probe."

// Busy asks every busy probe of the current version, at once, each
// bounded by its timeout (at most maxBusyProbe).
func (b *busyProbes) Busy(ctx context.Context) []Hold {
	v, ws, err := b.workloads()
	if err != nil {
		b.logErr("", err)
		return nil
	}
	type answer struct {
		busy bool
		err  error
	}
	answers := make([]answer, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		if w.Spec.Busy == nil {
			continue
		}
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, maxBusyProbe)
			defer cancel()
			t := probe.Target{Dir: b.home.WorkloadDir(v, w.Spec.Name), Env: b.env(v, w.Spec)}
			busy, err := b.ask(pctx, *w.Spec.Busy, t)
			answers[i] = answer{busy, err}
		})
	}
	wg.Wait()
	now := b.now().UTC()
	var out []Hold
	b.mu.Lock()
	defer b.mu.Unlock()
	seen := map[string]bool{}
	for i, w := range ws {
		name := w.Spec.Name
		if w.Spec.Busy == nil {
			continue
		}
		seen[name] = true
		a := answers[i]
		b.logErrLocked(name, a.err)
		if a.err != nil || !a.busy {
			delete(b.since, name)
			continue
		}
		if _, ok := b.since[name]; !ok {
			b.since[name] = now
		}
		out = append(out, Hold{ID: busyHoldPrefix + name, Reason: BusyReason(name), Created: b.since[name]})
	}
	for name := range b.since {
		if !seen[name] {
			delete(b.since, name)
		}
	}
	return out
}

// workloads reads the current version's workloads.json; a version
// without one has no workloads.
func (b *busyProbes) workloads() (string, []spec.Workload, error) {
	a, err := b.home.ReadActive()
	if errors.Is(err, home.ErrNoActive) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	raw, err := smallfile.Read(b.home.WorkloadsFile(a.Current), maxWorkloadsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return a.Current, nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	in, err := spec.ParseInstalled(raw)
	if err != nil {
		return "", nil, fmt.Errorf("versions/%s/workloads.json: %w", a.Current, err)
	}
	return a.Current, in.Workloads, nil
}

// env is a command probe's environment: the workload's own, as the
// supervisor gives it (docs/workloads.md), without molt's control
// variables.
func (b *busyProbes) env(v string, s spec.Spec) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(strings.ToUpper(kv), "MOLT_") {
			env = append(env, kv)
		}
	}
	for k, val := range s.Env {
		env = append(env, k+"="+val)
	}
	h := b.home
	return append(env,
		"MOLT_HOME="+h.Dir,
		"MOLT_WORKLOAD="+s.Name,
		"MOLT_WORKLOAD_VERSION="+v,
		"MOLT_WORKLOAD_DIR="+h.WorkloadDir(v, s.Name),
		"MOLT_DATA_DIR="+h.DataDir(s.Name),
		"MOLT_AGENT_ID="+b.agentID(),
		"MOLT_HOLDS_DIR="+h.HoldsDir(),
		"MOLT_READY_FILE="+h.ReadyFile(s.Name),
	)
}

func (b *busyProbes) logErr(name string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.logErrLocked(name, err)
}

// logErrLocked logs a probe's error when it differs from the last one,
// and its recovery once.
func (b *busyProbes) logErrLocked(name string, err error) {
	last, had := b.errs[name]
	switch {
	case err == nil && had:
		delete(b.errs, name)
		b.log.Info("busy probe answers again", zap.String("workload", name))
	case err != nil && (!had || last != err.Error()):
		b.errs[name] = err.Error()
		if name == "" {
			b.log.Warn("busy probes: cannot read the workloads; none asked", zap.Error(err))
			return
		}
		b.log.Warn("busy probe failed; counted as idle", zap.String("workload", name), zap.Error(err))
	}
}
