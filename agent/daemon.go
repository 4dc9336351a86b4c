package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/moltfleet/molt/config"
	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/buildinfo"
	"github.com/moltfleet/molt/internal/faults"
	"github.com/moltfleet/molt/protocol"
)

// Sentinels of the daemon.
var (
	// ErrSwitched: an order switched active.json to a new version; the
	// process exits with control.ExitUpgrade so the supervisor starts it.
	ErrSwitched = errors.New("switched to a new version")
	// ErrBusy: another order or local request is being run.
	ErrBusy = errors.New("another upgrade is in progress")
)

// Control is the daemon's side of the supervisor's control channel
// (*control.Agent). Sends are best effort: a supervisor that went away is
// noticed through Stop, not through a failed send.
type Control interface {
	Ready() error
	Busy() error
	Idle() error
	// Stop is closed when the supervisor asks the agent to stop or goes
	// away.
	Stop() <-chan struct{}
}

// Orders is the check-in loop with the control server. Run works until ctx
// ends, calling back into d (see the package documentation); it returns
// nil when ctx ended and an error only when it cannot go on at all (which
// stops the daemon).
type Orders interface {
	Run(ctx context.Context, d *Daemon) error
}

// Updater runs the steps of an upgrade in the home. Each method is
// idempotent; Prepare resumes from state/upgrade.json.
type Updater interface {
	// Prepare checks, downloads, verifies and stages o.Version. It must
	// not touch active.json.
	Prepare(ctx context.Context, o Order) error
	// Switch makes the staged o.Version current, in trial.
	Switch(ctx context.Context, o Order) error
	// Cleanup removes installed versions other than the current, the
	// previous, a trial and the in-flight one, and stale cache files; it
	// returns the home-relative paths it removed.
	Cleanup() (removed []string, err error)
	// InFlight returns the order in flight (nil when none).
	InFlight() (*protocol.UpgradeProgress, error)
	// Finish marks a switched order done once its trial ended (committed
	// or rolled back) and drops its cache.
	Finish(orderID string) error
}

// Order is one upgrade for RunOrder.
type Order struct {
	// ID is the deployment id, or "local-..." for a manual upgrade.
	ID      string
	Version string
	// PackURL is the pack's base URL (PackURL+"/manifest.json" ...) for a
	// download, or PackFile a pack file on disk; exactly one is set.
	PackURL  string
	PackFile string
	// Revert marks a lower version than the running one as intended; it
	// is logged. The floor (checked by the updater), not this flag, bounds
	// how low an order may go.
	Revert bool
	// Progress, when set, receives every step. It must not block long.
	Progress func(Progress)
}

// Progress is one step of an order, for the DEPLOY report.
type Progress struct {
	At time.Time
	// Phase is a deployment state (protocol.StateDownloading, StateStaged,
	// StateRestarting) or empty when the step does not move it.
	Phase string
	// Step names the step: preflight, download, verify, stage, wait,
	// switch, exit.
	Step   string
	Detail string
	// Done and Total are download progress in bytes.
	Done, Total int64
}

// Options configure a Daemon.
type Options struct {
	Home   home.Home
	Config *config.Config
	Log    *zap.Logger
	// Control is the supervisor's channel; nil when not supervised.
	Control Control
	// SupervisorVersion is the supervisor's version (from the environment).
	SupervisorVersion string
	// Orders is the check-in loop; nil runs local-only.
	Orders  Orders
	Updater Updater
	// Fingerprint returns the machine fingerprint (Fingerprint by
	// default); ErrNotSupported means the OS has none.
	Fingerprint func() (string, error)
	// Version is this agent's version (buildinfo.Version by default).
	Version string
	// Now and Random default to time.Now and crypto/rand.
	Now    func() time.Time
	Random io.Reader
	// Poll is how often holds and local requests are looked at (1 s).
	Poll time.Duration
	// SwitchGrace is how long Orders.Run may take to return after a switch
	// (10 s).
	SwitchGrace time.Duration
	// Busy asks the workloads' busy probes while an order waits to
	// switch (default: those of versions/<current>/workloads.json).
	Busy BusyProber
	// ConfigFile is the agent.yaml Config was read from (default
	// <home>/agent.yaml): once the agent enrolled, the enrollment token it
	// used is removed from it (forgetEnrollmentToken).
	ConfigFile string
}

// Daemon is a running molt-agent.
type Daemon struct {
	o     Options
	log   *zap.Logger
	holds *Holds

	mu       sync.Mutex
	identity Identity
	busy     bool // holds active, as last told to the supervisor
	holdList []Hold
	// probeHolds are the busy probes that said busy, asked while an
	// order waits to switch (none otherwise).
	probeHolds []Hold

	running  sync.Mutex // one order or request at a time
	switched chan struct{}
	once     sync.Once
}

// New checks o and returns a daemon. Nothing is written before Run.
func New(o Options) (*Daemon, error) {
	if o.Config == nil {
		return nil, errors.New("agent: no configuration")
	}
	if o.Updater == nil {
		return nil, errors.New("agent: no updater")
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Fingerprint == nil {
		o.Fingerprint = Fingerprint
	}
	if o.Version == "" {
		o.Version = buildinfo.Version
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Random == nil {
		o.Random = rand.Reader
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.SwitchGrace <= 0 {
		o.SwitchGrace = 10 * time.Second
	}
	if o.ConfigFile == "" {
		o.ConfigFile = o.Home.ConfigPath()
	}
	hs := HoldsOf(o.Home)
	hs.Now = o.Now
	d := &Daemon{o: o, log: o.Log, holds: hs, switched: make(chan struct{})}
	if d.o.Busy == nil {
		d.o.Busy = newBusyProbes(o.Home, o.Log, o.Now, func() string {
			if id := d.Identity(); id.Enrolled() {
				return id.ID
			}
			return ""
		})
	}
	return d, nil
}

// Config returns the resolved configuration. Callers must not modify it.
func (d *Daemon) Config() *config.Config { return d.o.Config }

// Home returns the agent home.
func (d *Daemon) Home() home.Home { return d.o.Home }

// Log returns the daemon's logger.
func (d *Daemon) Log() *zap.Logger { return d.log }

// Version returns the running agent's version.
func (d *Daemon) Version() string { return d.o.Version }

// Supervised reports whether a supervisor runs this agent.
func (d *Daemon) Supervised() bool { return d.o.Control != nil }

// Switched is closed once an order switched to a new version.
func (d *Daemon) Switched() <-chan struct{} { return d.switched }

// Identity returns the current identity.
func (d *Daemon) Identity() Identity {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.identity
}

// EnrollmentToken is the token to enroll with: agent.yaml's or
// MOLT_ENROLLMENT_TOKEN, until the agent enrolled with it.
func (d *Daemon) EnrollmentToken() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.o.Config.EnrollmentToken
}

// SetEnrolled stores the server-issued id and credential, then forgets
// the enrollment token.
func (d *Daemon) SetEnrolled(agentID, credential string) error {
	if agentID == "" || credential == "" {
		return errors.New("enrollment: empty agent id or credential")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	id := d.identity
	id.ID, id.Credential = agentID, credential
	id.Server = d.o.Config.Server
	id.EnrolledAt = d.o.Now().UTC()
	if err := WriteIdentity(d.o.Home, id); err != nil {
		return fmt.Errorf("store enrollment: %w", err)
	}
	d.identity = id
	d.log.Info("enrolled", zap.String("agent_id", agentID), zap.String("server", id.Server))
	d.forgetEnrollmentToken()
	return nil
}

// forgetEnrollmentToken drops the enrollment token once the agent
// enrolled, from agent.yaml and from memory, unless keep_enrollment_token
// is set: a token left on the host would let it enroll again on its own
// after an operator revoked it (the server refuses a revoked agent's
// host anyway, until an operator allows it). A golden image keeps
// working: each clone enrolls once with the token of its own copy of
// agent.yaml. A token from MOLT_ENROLLMENT_TOKEN cannot be taken out of
// the environment: the log says so. Call with d.mu held.
func (d *Daemon) forgetEnrollmentToken() {
	cfg := d.o.Config
	tok := cfg.EnrollmentToken
	if tok == "" || cfg.KeepEnrollmentToken {
		return
	}
	cfg.EnrollmentToken = ""
	file := zap.String("file", d.o.ConfigFile)
	changed, err := config.RemoveEnrollmentToken(d.o.ConfigFile, tok, d.o.Now())
	switch {
	case err != nil:
		d.log.Warn("enrolled, but the enrollment token could not be removed from agent.yaml: remove enrollment_token by hand", file, zap.Error(err))
	case changed:
		d.log.Info("enrollment token removed from agent.yaml (keep_enrollment_token: true keeps it)", file)
	default:
		d.log.Warn("the enrollment token used is not in this agent.yaml: if it comes from "+EnvEnrollmentToken+", the agent cannot remove it; take it out of the service's environment", file)
	}
}

// Reenroll drops the credential and makes a new placeholder id, so the
// next check-in enrolls afresh (the server revoked the credential, or
// refused the identity as a clone).
func (d *Daemon) Reenroll(reason string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	pid, err := NewPlaceholderID(d.o.Random)
	if err != nil {
		return err
	}
	id := Identity{ID: pid, Fingerprint: d.identity.Fingerprint, Created: d.o.Now().UTC()}
	if err := WriteIdentity(d.o.Home, id); err != nil {
		return fmt.Errorf("reset identity: %w", err)
	}
	d.log.Warn("identity dropped, enrolling again", zap.String("reason", reason),
		zap.String("old_id", d.identity.ID), zap.String("new_id", pid))
	d.identity = id
	return nil
}

// Holds returns the active holds as last seen by the watcher.
func (d *Daemon) Holds() []Hold {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Hold(nil), d.holdList...)
}

// Busy reports whether a hold is active.
func (d *Daemon) Busy() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.busy
}

// Run runs the daemon until ctx ends or the supervisor says stop (nil), an
// order switched (ErrSwitched), or something fails that it cannot go on
// without.
func (d *Daemon) Run(ctx context.Context) error {
	if err := d.loadIdentity(); err != nil {
		return err
	}
	if d.o.Control == nil {
		d.commitUnwatchedTrial()
	}
	d.finishTrial()
	if err := writeDaemonFile(d.o.Home, d.daemonInfo()); err != nil {
		return fmt.Errorf("state/daemon.json: %w", err)
	}
	defer removeDaemonFile(d.o.Home)
	if c := d.o.Control; c != nil {
		faults.Point("agent/before-ready")
		if err := c.Ready(); err != nil {
			d.log.Warn("control: ready", zap.Error(err))
		}
	}
	// After ready, so that the supervisor hears "busy" from an agent it
	// knows is up.
	if err := d.refreshHolds(); err != nil {
		d.log.Warn("holds", zap.Error(err))
	}
	d.log.Info("agent running", zap.String("home", d.o.Home.Dir),
		zap.String("agent_id", d.Identity().ID), zap.Bool("supervised", d.Supervised()),
		zap.String("server", d.o.Config.Server), zap.Int("holds", len(d.Holds())))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stop <-chan struct{}
	if d.o.Control != nil {
		stop = d.o.Control.Stop()
	}
	ordersCtx, cancelOrders := context.WithCancel(ctx)
	defer cancelOrders()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.watch(gctx) })
	g.Go(func() error { return d.serveRequests(gctx) })
	ordersDone := make(chan struct{})
	if d.o.Orders != nil {
		g.Go(func() error {
			defer close(ordersDone)
			err := d.o.Orders.Run(ordersCtx, d)
			if err != nil && ordersCtx.Err() == nil {
				return fmt.Errorf("check-in: %w", err)
			}
			return nil
		})
	} else {
		close(ordersDone)
	}
	g.Go(func() error {
		select {
		case <-gctx.Done():
			return nil
		case <-stop:
			d.log.Info("supervisor asked to stop")
			cancel()
			return nil
		case <-d.switched:
		}
		// Give the check-in loop time to report the switch before the
		// process exits.
		t := time.NewTimer(d.o.SwitchGrace)
		defer t.Stop()
		select {
		case <-ordersDone:
		case <-t.C:
			d.log.Warn("check-in loop did not return after the switch; stopping it")
		case <-stop:
		}
		cancel()
		return nil
	})
	err := g.Wait()
	select {
	case <-d.switched:
		return ErrSwitched
	default:
	}
	return err
}

func (d *Daemon) loadIdentity() error {
	fp, err := d.o.Fingerprint()
	if err != nil {
		// Without a fingerprint the agent still runs (a host must not
		// drop out of management over it); only clone detection is off.
		d.log.Warn("no machine fingerprint: a cloned image keeps its identity; run reset-identity before capturing an image", zap.Error(err))
		fp = ""
	}
	old, _ := ReadIdentity(d.o.Home)
	id, change, err := EnsureIdentity(d.o.Home, fp, d.o.Now(), d.o.Random)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	switch change {
	case IdentityCreated:
		d.log.Info("identity created", zap.String("agent_id", id.ID))
	case IdentityReplaced:
		d.log.Warn("machine fingerprint changed (cloned image?): new identity, the agent enrolls again",
			zap.String("old_id", old.ID), zap.String("new_id", id.ID))
	}
	d.mu.Lock()
	d.identity = id
	d.mu.Unlock()
	return nil
}

// commitUnwatchedTrial commits a trial of the running version when no
// supervisor runs the agent: nothing else would ever commit it or roll it
// back, its deployment would never end, and a trial left open refuses the
// next upgrade. That this version started is all an unsupervised host can
// know; result.json says that it was not watched.
func (d *Daemon) commitUnwatchedTrial() {
	a, err := d.o.Home.ReadActive()
	if err != nil || a.Trial == nil || a.Trial.Version != d.o.Version || a.Current != d.o.Version {
		return
	}
	r := home.Result{
		Outcome: home.OutcomeCommitted, Version: a.Current, Previous: a.Previous, Order: a.Trial.Order, At: d.o.Now().UTC(),
		Reason: "not supervised: committed when it started, without a trial watch",
	}
	// result.json first: a crash in between leaves the trial open and
	// the next start commits it again, with the same result.
	if err := d.o.Home.WriteResult(r); err != nil {
		d.log.Warn("commit the unwatched trial: state/result.json", zap.Error(err))
		return
	}
	a.Trial = nil
	if err := d.o.Home.WriteActive(a); err != nil {
		d.log.Warn("commit the unwatched trial: state/active.json", zap.Error(err))
		return
	}
	d.log.Info("trial committed without a supervisor", zap.String("previous", a.Previous), zap.String("order", r.Order))
}

// finishTrial closes the books on a switched order whose trial has ended
// (the supervisor committed it or rolled it back before this start).
func (d *Daemon) finishTrial() {
	up, err := d.o.Updater.InFlight()
	if err != nil || up == nil || (up.Phase != protocol.StateRestarting && up.Phase != protocol.StateWatching) {
		return
	}
	a, err := d.o.Home.ReadActive()
	if err != nil || (a.Trial != nil && a.Trial.Order == up.OrderID) {
		return
	}
	r, ok, _ := d.o.Home.ReadResult()
	outcome := "unknown"
	if ok && r.Order == up.OrderID {
		outcome = r.Outcome
	}
	if err := d.o.Updater.Finish(up.OrderID); err != nil {
		d.log.Warn("finish order", zap.String("order", up.OrderID), zap.Error(err))
		return
	}
	d.log.Info("upgrade order ended", zap.String("order", up.OrderID), zap.String("target", up.Version),
		zap.String("outcome", outcome), zap.String("running", d.o.Version))
}

// watch polls the holds and the trial until ctx ends, and asks the
// workloads' busy probes every busyWatchEvery, so that a busy workload
// keeps a deployment waiting for the host before any order reaches it.
func (d *Daemon) watch(ctx context.Context) error {
	t := time.NewTicker(d.o.Poll)
	defer t.Stop()
	var asked time.Time
	var asking atomic.Bool
	for {
		// A probe may take its timeout: it is asked beside the loop, one
		// round at a time.
		if now := d.o.Now(); (asked.IsZero() || now.Sub(asked) >= busyWatchEvery || now.Before(asked)) && asking.CompareAndSwap(false, true) {
			asked = now
			go func() {
				defer asking.Store(false)
				d.setProbeHolds(d.o.Busy.Busy(ctx))
			}()
		}
		if err := d.refreshHolds(); err != nil {
			d.log.Warn("holds", zap.Error(err))
		}
		// The trial of the version now running ends while it runs.
		d.finishTrial()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// refreshHolds lists the holds, with the busy probes' last answers, and
// tells the supervisor when the agent turns busy or idle.
func (d *Daemon) refreshHolds() error {
	hs, err := d.holds.List()
	if err != nil {
		return err
	}
	d.mu.Lock()
	hs = append(hs, d.probeHolds...)
	busy := len(hs) > 0
	changed := busy != d.busy
	d.busy, d.holdList = busy, hs
	d.mu.Unlock()
	if !changed {
		return nil
	}
	if busy {
		d.log.Info("busy: holding off restarts", zap.Strings("holds", Reasons(hs)))
	} else {
		d.log.Info("idle: no hold")
	}
	if c := d.o.Control; c != nil {
		if busy {
			err = c.Busy()
		} else {
			err = c.Idle()
		}
		if err != nil {
			d.log.Warn("control: busy/idle", zap.Error(err))
		}
	}
	return nil
}
