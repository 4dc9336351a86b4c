package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/faults"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/supervisor/runner"
	"github.com/moltfleet/molt/workload/spec"
)

// workload is one of the operator's workloads the supervisor keeps
// running next to the agent: the instance that runs (nil while a restart
// is pending) and what the reports say about it.
type workload struct {
	name     string
	version  string // the version directory its files come from
	work     spec.Workload
	identity string
	inst     *runner.Instance

	state    string
	restarts int
	lastExit string
	reason   string
	since    time.Time
	readyAt  time.Time
	// started is the current instance's start, for the backoff reset.
	started time.Time
	backoff time.Duration
	// restart is the timer of a pending restart; restartGen tells a
	// stale timer from the current one.
	restart    *time.Timer
	restartGen int
	// stopping: the supervisor stopped this instance on purpose (a
	// switch, an unhealthy check); its exit is no failure.
	stopping bool
}

// workloadEvent is a runner event of one instance, or a restart that is
// due (Kind 0).
type workloadEvent struct {
	w    *workload
	inst *runner.Instance
	gen  int
	ev   runner.Event
}

// workloadSet runs the workloads of the current version. It belongs to
// the supervisor's goroutine: only the forwarding goroutines and the
// restart timers run beside it, and they only send on events.
type workloadSet struct {
	s      *Supervisor
	byName map[string]*workload
	events chan workloadEvent
	// steps are the trial's steps (each workload's start and ready) for
	// result.json; reset at every reconcile under a trial.
	steps []home.Step
	// adopted counts the workloads taken over from the previous image
	// of this process (an exec in place).
	adopted int
	quit    chan struct{}
}

func newWorkloadSet(s *Supervisor) *workloadSet {
	return &workloadSet{s: s, byName: map[string]*workload{}, events: make(chan workloadEvent, 64), quit: make(chan struct{})}
}

// installed reads versions/<v>/workloads.json; a version without one has
// no workloads.
func (ws *workloadSet) installed(version string) ([]spec.Workload, error) {
	b, err := os.ReadFile(ws.s.h.WorkloadsFile(version))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	in, err := spec.ParseInstalled(b)
	if err != nil {
		return nil, err
	}
	return in.Workloads, nil
}

// reconcile makes the running workloads those of version: an unchanged
// workload (same identity) keeps running, a changed one is stopped and
// the new one started at once, one the version lacks is stopped, a new
// one is started. It returns an error only when version's workloads
// cannot be read; then nothing is changed.
func (ws *workloadSet) reconcile(version string, trial bool) error {
	want, err := ws.installed(version)
	if err != nil {
		return fmt.Errorf("versions/%s/workloads.json: %w", version, err)
	}
	if trial {
		ws.steps = nil
	}
	keep := map[string]bool{}
	for _, w := range want {
		keep[w.Spec.Name] = true
	}
	var stop []*workload
	for name, cur := range ws.byName {
		if !keep[name] {
			stop = append(stop, cur)
			delete(ws.byName, name)
		}
	}
	for _, w := range want {
		id := w.Identity()
		cur := ws.byName[w.Spec.Name]
		if cur != nil && cur.identity == id && (cur.inst != nil || cur.restart != nil) {
			if cur.inst != nil && cur.inst.Ready() {
				ws.step(trial, "workload "+cur.name+" unchanged", fmt.Sprintf("still runs from %s, pid %d", cur.version, cur.inst.Process().PID))
			}
			continue
		}
		if cur != nil {
			ws.stopOne(cur, "its version changed")
			// The old instance is gone and state/workloads.json still
			// records it; nothing of the new version runs yet.
			faults.Point("supervisor/workload-stopped")
		}
		nw := &workload{name: w.Spec.Name, version: version, work: w, identity: id}
		ws.byName[w.Spec.Name] = nw
		ws.start(nw, trial)
		// The new instance runs and state/workloads.json does not record
		// it yet (the first pass is a supervisor's first start of it).
		faults.Point("supervisor/workload-started")
	}
	ws.stopAll(stop, "not in version "+version)
	ws.save()
	return nil
}

// start starts w's instance now; a failure to start counts as a crash.
func (ws *workloadSet) start(w *workload, trial bool) {
	w.cancelRestart()
	w.stopping = false
	inst, err := runner.Start(ws.config(w))
	now := ws.s.clock.Now()
	if err != nil {
		ws.s.log.Error("cannot start the workload", zap.String("workload", w.name), zap.String("workload_version", w.version), zap.Error(err))
		w.inst = nil
		w.set(home.WorkloadCrashed, "could not start: "+err.Error(), now)
		w.lastExit = "could not start"
		// Handled like a crash, from the supervisor's loop.
		go func() {
			select {
			case ws.events <- workloadEvent{w: w, ev: runner.Event{Kind: runner.Exited, At: now, Reason: "could not start: " + err.Error(), Code: -1}}:
			case <-ws.quit:
			}
		}()
		return
	}
	w.inst, w.started = inst, now
	w.set(home.WorkloadStarting, "", now)
	ws.step(trial, "workload "+w.name+" start", fmt.Sprintf("%s, pid %d", w.version, inst.Process().PID))
	ws.follow(w, inst)
}

// follow forwards inst's events to the supervisor's loop.
func (ws *workloadSet) follow(w *workload, inst *runner.Instance) {
	go func() {
		for ev := range inst.Events() {
			select {
			case ws.events <- workloadEvent{w: w, inst: inst, ev: ev}:
			case <-ws.quit:
				return
			}
		}
	}()
}

func (w *workload) set(state, reason string, at time.Time) {
	if w.state != state {
		w.since = at
	}
	w.state, w.reason = state, reason
}

func (w *workload) cancelRestart() {
	if w.restart != nil {
		w.restart.Stop()
		w.restart = nil
	}
	w.restartGen++
}

// stopOne stops w's instance (if any) and waits for its exit.
func (ws *workloadSet) stopOne(w *workload, why string) {
	ws.stopAll([]*workload{w}, why)
}

// stopAll stops the instances of ws at once and waits for all of them.
func (ws *workloadSet) stopAll(list []*workload, why string) {
	var wg sync.WaitGroup
	for _, w := range list {
		w.cancelRestart()
		if w.inst == nil {
			w.set(home.WorkloadStopped, why, ws.s.clock.Now())
			continue
		}
		w.stopping = true
		ws.s.log.Info("stopping the workload", zap.String("workload", w.name), zap.String("workload_version", w.version),
			zap.Int("pid", w.inst.Process().PID), zap.String("why", why))
		wg.Add(1)
		go func(inst *runner.Instance) {
			defer wg.Done()
			inst.Stop()
		}(w.inst)
	}
	wg.Wait()
	for _, w := range list {
		w.inst = nil
		w.set(home.WorkloadStopped, why, ws.s.clock.Now())
	}
}

// stopEverything stops every workload (the supervisor stops).
func (ws *workloadSet) stopEverything(why string) {
	var all []*workload
	for _, w := range ws.sorted() {
		all = append(all, w)
	}
	ws.stopAll(all, why)
	ws.save()
}

func (ws *workloadSet) sorted() []*workload {
	out := make([]*workload, 0, len(ws.byName))
	for _, w := range ws.byName {
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b *workload) int { return strings.Compare(a.name, b.name) })
	return out
}

// allReady reports whether every workload passed its ready check (a
// version without workloads is ready).
func (ws *workloadSet) allReady() bool {
	for _, w := range ws.byName {
		if w.inst == nil || !w.inst.Ready() {
			return false
		}
	}
	return true
}

// verdict is what a workload event means for a trial: a failure to count
// against the crash budget, or a rollback at once.
type verdict struct {
	workload string
	failure  string // counts against the crash budget
	rollback string // rolls back at once
}

// handle applies one event: state, restarts with the backoff, the
// reports. Under a trial it returns what the event means for it; the
// supervisor decides.
func (ws *workloadSet) handle(e workloadEvent, trial bool) verdict {
	w := e.w
	if ws.byName[w.name] != w {
		return verdict{} // replaced meanwhile
	}
	if e.ev.Kind == 0 { // a restart is due
		if e.gen != w.restartGen || w.inst != nil {
			return verdict{}
		}
		w.restart = nil
		w.restarts++
		ws.start(w, trial)
		ws.save()
		return verdict{}
	}
	if e.inst != w.inst {
		return verdict{} // an instance stopped on purpose
	}
	log := ws.s.log.With(zap.String("workload", w.name), zap.String("workload_version", w.version))
	now := e.ev.At
	var v verdict
	switch e.ev.Kind {
	case runner.Ready:
		w.readyAt = now
		w.set(home.WorkloadReady, "", now)
		ws.step(trial, "workload "+w.name+" ready", fmt.Sprintf("after %s", now.Sub(w.started).Round(time.Millisecond)))
	case runner.NotReady, runner.Unhealthy:
		reason := "workload " + w.name + " " + e.ev.Reason
		w.set(home.WorkloadUnhealthy, e.ev.Reason, now)
		if trial {
			v = verdict{workload: w.name, rollback: reason}
		}
		if w.work.Spec.Restart.Policy == spec.RestartNever && !trial {
			log.Warn("workload unhealthy; its restart policy is never, so it keeps running", zap.String("reason", e.ev.Reason))
			break
		}
		if trial {
			log.Warn("trial workload unhealthy; stopping it for the rollback", zap.String("reason", e.ev.Reason))
		} else {
			log.Warn("workload unhealthy; restarting it", zap.String("reason", e.ev.Reason))
		}
		w.stopping = true
		w.inst.Stop()
		w.inst = nil
		if v.rollback == "" {
			ws.scheduleRestart(w)
		}
	case runner.Exited:
		if w.stopping || e.ev.Asked {
			break
		}
		w.inst = nil
		w.lastExit = e.ev.Reason
		ran := now.Sub(w.started)
		log.Warn("workload exited", zap.String("status", e.ev.Reason), zap.Duration("ran", ran))
		sp := w.work.Spec.Defaults()
		if ran >= sp.Restart.StableAfter.D() {
			w.backoff = 0
		}
		w.set(home.WorkloadCrashed, "exited: "+e.ev.Reason, now)
		if trial {
			v = verdict{workload: w.name, failure: "workload " + w.name + " exited (" + e.ev.Reason + ")"}
		}
		switch {
		case sp.Restart.Policy == spec.RestartNever,
			sp.Restart.Policy == spec.RestartOnFailure && e.ev.Code == 0:
			w.set(home.WorkloadStopped, "exited: "+e.ev.Reason+"; restart policy "+sp.Restart.Policy, now)
			if trial {
				// It will not run again, so the version can never pass.
				v = verdict{workload: w.name, rollback: "workload " + w.name + " exited (" + e.ev.Reason + ") and its restart policy is " + sp.Restart.Policy}
			}
		default:
			ws.scheduleRestart(w)
		}
	}
	ws.save()
	return v
}

// scheduleRestart starts w again after its crash backoff.
func (ws *workloadSet) scheduleRestart(w *workload) {
	sp := w.work.Spec.Defaults()
	w.backoff = nextBackoff(w.backoff, sp.Restart.BackoffMin.D(), sp.Restart.BackoffMax.D())
	w.cancelRestart()
	gen := w.restartGen
	ws.s.log.Info("restarting the workload after a delay", zap.String("workload", w.name), zap.Duration("delay", w.backoff))
	w.restart = time.AfterFunc(w.backoff, func() {
		select {
		case ws.events <- workloadEvent{w: w, gen: gen}:
		case <-ws.quit:
		}
	})
}

func (ws *workloadSet) step(trial bool, name, detail string) {
	if trial {
		ws.steps = append(ws.steps, home.Step{At: ws.s.clock.Now().UTC(), Name: name, Detail: detail})
	}
}

// logRel is where w's output of version is kept.
func (ws *workloadSet) logRel(name, version string) string {
	return filepath.Join(ws.s.h.LogsDir(), home.WorkloadLogName(name, version))
}

// save writes state/workloads.json: the reports read it, and a
// supervisor that starts after a kill -9 finds the processes to stop.
func (ws *workloadSet) save() {
	st := home.WorkloadState{Supervisor: os.Getpid(), Updated: ws.s.clock.Now().UTC(), Workloads: []home.WorkloadStatus{}, AgentRestarts: ws.s.crashes}
	for _, w := range ws.sorted() {
		ws := home.WorkloadStatus{Name: w.name, Version: w.version, Identity: w.identity, State: w.state,
			Restarts: w.restarts, LastExit: w.lastExit, Reason: w.reason, Since: w.since.UTC(), ReadyAt: w.readyAt.UTC()}
		if w.inst != nil {
			ws.Process = w.inst.Process()
		}
		st.Workloads = append(st.Workloads, ws)
	}
	if err := ws.s.h.WriteWorkloadState(st); err != nil {
		ws.s.log.Error("write state/workloads.json", zap.Error(err))
	}
}

// stopStale stops the workloads a supervisor that died without stopping
// them (kill -9, a crash) left running, so that exactly one instance of
// each runs once this supervisor starts them. Each is recognised by pid,
// start time and executable: a reused pid is never signalled.
func (ws *workloadSet) stopStale() {
	st, err := ws.s.h.ReadWorkloadState()
	if err != nil {
		ws.s.log.Warn("ignoring state/workloads.json", zap.Error(err))
	}
	var found []runner.Found
	for _, r := range st.Workloads {
		if r.Process.PID > 0 {
			found = append(found, runner.Found{Name: r.Name, Version: r.Version, Process: r.Process})
		}
	}
	ws.stopFound(found)
	// A supervisor killed between a start and its record left an
	// instance that state/workloads.json does not name; where the OS
	// shows the environment, it is found by its MOLT_HOME.
	more, err := runner.Unrecorded(ws.s.h.Dir)
	if err != nil && !errors.Is(err, platform.ErrNotSupported) {
		ws.s.log.Warn("look for workloads of a previous supervisor", zap.Error(err))
	}
	for _, f := range more {
		ws.s.log.Warn("a workload of a previous supervisor runs that state/workloads.json does not record",
			zap.String("workload", f.Name), zap.String("workload_version", f.Version), zap.Int("pid", f.Process.PID))
	}
	ws.stopFound(more)
}

// stopFound stops the instances of a previous supervisor at once, each
// with the stop signal and grace of its version's spec.
func (ws *workloadSet) stopFound(list []runner.Found) {
	var wg sync.WaitGroup
	for _, r := range list {
		sig, grace := "SIGTERM", spec.DefaultStopGrace
		if all, err := ws.installed(r.Version); err == nil {
			for _, w := range all {
				if w.Spec.Name == r.Name {
					d := w.Spec.Defaults()
					sig, grace = d.Stop.Signal, d.Stop.Grace.D()
				}
			}
		}
		wg.Add(1)
		go func(r runner.Found) {
			defer wg.Done()
			if err := runner.StopStale(r.Process, sig, grace, ws.s.log.With(zap.String("workload", r.Name))); err != nil {
				ws.s.log.Warn("stop a workload of a previous supervisor", zap.String("workload", r.Name), zap.Error(err))
			}
		}(r)
	}
	wg.Wait()
}

// workloadEnv is the supervisor's environment without molt's own control
// variables; the runner adds the workload's.
func (s *Supervisor) workloadEnv() []string {
	var env []string
	for _, kv := range s.agentEnv() {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(strings.ToUpper(k), "MOLT_") {
			env = append(env, kv)
		}
	}
	return env
}

// agentID is the enrolled agent's id ("" before enrollment).
func (s *Supervisor) agentID() string {
	b, err := os.ReadFile(s.h.IdentityPath())
	if err != nil || len(b) > 64<<10 {
		return ""
	}
	var id struct {
		ID         string `json:"id"`
		Credential string `json:"credential"`
	}
	if json.Unmarshal(b, &id) != nil || id.Credential == "" {
		return ""
	}
	return id.ID
}

// close ends the forwarding of events and the pending restarts; the
// instances themselves were stopped (or handed to the next image).
func (ws *workloadSet) close() {
	for _, w := range ws.byName {
		w.cancelRestart()
	}
	close(ws.quit)
}

// workloadHandoff carries one workload across the supervisor's exec in
// place: the running instance (Process.PID 0 when a restart was pending)
// and what the reports say about it.
type workloadHandoff struct {
	runner.Handoff
	State    string        `json:"state"`
	Restarts int           `json:"restarts"`
	LastExit string        `json:"last_exit,omitempty"`
	Reason   string        `json:"reason,omitempty"`
	Since    time.Time     `json:"since"`
	ReadyAt  time.Time     `json:"ready_at,omitzero"`
	Backoff  time.Duration `json:"backoff"`
}

// handoff describes the workloads for the next image and returns the
// descriptors that must survive the exec.
func (ws *workloadSet) handoff() ([]workloadHandoff, []*os.File) {
	var out []workloadHandoff
	var files []*os.File
	for _, w := range ws.sorted() {
		h := workloadHandoff{State: w.state, Restarts: w.restarts, LastExit: w.lastExit, Reason: w.reason,
			Since: w.since, ReadyAt: w.readyAt, Backoff: w.backoff}
		h.Name, h.Version, h.Identity = w.name, w.version, w.identity
		if w.inst != nil {
			rh, fs := w.inst.Handoff()
			h.Handoff = rh
			files = append(files, fs...)
		}
		out = append(out, h)
	}
	return out, files
}

// adopt takes over the workloads of the previous image of this process.
// A workload whose files or spec cannot be read any more is stopped; one
// that had a restart pending is started.
func (ws *workloadSet) adopt(list []workloadHandoff) {
	for _, h := range list {
		log := ws.s.log.With(zap.String("workload", h.Name), zap.String("workload_version", h.Version))
		var found *spec.Workload
		if all, err := ws.installed(h.Version); err == nil {
			for i := range all {
				if all[i].Spec.Name == h.Name && all[i].Identity() == h.Identity {
					found = &all[i]
				}
			}
		}
		if found == nil {
			log.Error("cannot adopt the workload: its version's workloads.json does not name it any more")
			if h.Process.PID > 0 {
				_ = runner.StopStale(h.Process, "SIGTERM", spec.DefaultStopGrace, log)
			}
			continue
		}
		w := &workload{name: h.Name, version: h.Version, work: *found, identity: h.Identity,
			state: h.State, restarts: h.Restarts, lastExit: h.LastExit, reason: h.Reason,
			since: h.Since, readyAt: h.ReadyAt, backoff: h.Backoff, started: h.Started}
		ws.byName[h.Name] = w
		if h.Process.PID <= 0 {
			ws.scheduleRestart(w)
			continue
		}
		inst, err := runner.Adopt(ws.config(w), h.Handoff)
		if err != nil {
			log.Error("cannot adopt the workload; starting it again", zap.Error(err))
			_ = runner.StopStale(h.Process, found.Spec.Defaults().Stop.Signal, found.Spec.Defaults().Stop.Grace.D(), log)
			ws.start(w, false)
			continue
		}
		w.inst = inst
		if inst.Ready() && w.state == home.WorkloadStarting {
			// It passed its ready check before the previous image's loop
			// took the Ready event, which was lost with that image; the
			// adopted instance runs only its live checks and never says
			// ready again.
			now := ws.s.clock.Now()
			w.readyAt = now
			w.set(home.WorkloadReady, "", now)
		}
		ws.adopted++
		log.Info("adopted the running workload", zap.Int("pid", h.Process.PID))
		ws.follow(w, inst)
	}
	ws.save()
}

func (ws *workloadSet) config(w *workload) runner.Config {
	return runner.Config{
		Home: ws.s.h, Version: w.version, Workload: w.work, AgentID: ws.s.agentID(),
		BaseEnv: ws.s.workloadEnv(), Log: ws.s.log,
	}
}

// resume reads the workloads' output again after an exec in place that
// failed.
func (ws *workloadSet) resume() {
	for _, w := range ws.byName {
		if w.inst != nil {
			w.inst.Resume()
		}
	}
}
