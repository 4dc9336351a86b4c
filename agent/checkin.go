package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/internal/atomicfile"
	"github.com/moltfleet/molt/protocol"
)

// CheckinOptions configure the check-in loop. Zero durations take the
// defaults in brackets.
type CheckinOptions struct {
	Client *Client
	// MinBackoff and MaxBackoff bound the wait after a failed request
	// [1s, 60s]; it doubles per failure, with jitter.
	MinBackoff, MaxBackoff time.Duration
	// BusyPoll is the pause between check-ins while the server repeats
	// orders this agent is already running [5s].
	BusyPoll time.Duration
	// MaxJitter bounds the pause before an ordinary next check-in [2s];
	// it is never more than a tenth of the poll wait.
	MaxJitter time.Duration
	// Watch is how often local changes (holds, a trial result) are looked
	// at to cut a long poll short [1s].
	Watch time.Duration
	// ReportEvery bounds how often one order's progress is sent [1s].
	ReportEvery time.Duration
	// OrderAttempts is how many times an order that fails for a
	// transient reason is tried before it is reported failed [5].
	OrderAttempts int
	// Rand returns a number in [0, n) for jitter (math/rand/v2 by default).
	Rand func(n int64) int64
	// Now is the clock [time.Now].
	Now func() time.Time
}

// Checkin is the agent's side of the protocol: it enrolls, checks in by
// long poll, runs the orders it gets through the daemon and reports every
// step. It implements Orders; cmd/molt-agent sets it as Options.Orders when
// agent.yaml names a server:
//
//	hc, err := agent.NewHTTPClient(cfg, credential) // shared with the updater's downloads
//	cl, err := agent.NewClient(agent.ClientOptions{Server: cfg.Server, HTTP: hc})
//	d, err := agent.New(agent.Options{..., Orders: agent.NewCheckin(agent.CheckinOptions{Client: cl})})
type Checkin struct {
	o CheckinOptions

	mu      sync.Mutex
	running map[string]*orderRun
	ended   map[string]bool      // orders whose end was reported (or need none)
	retryAt map[string]time.Time // orders that failed transiently
	tries   map[string]int
	// repeated: the last check-in brought orders that run here already or
	// whose version is under watch; the server answers such check-ins at
	// once, so the next one waits BusyPoll.
	repeated bool
	wg       sync.WaitGroup
	wake     chan struct{}

	trialReported bool
}

// NewCheckin returns the check-in loop.
func NewCheckin(o CheckinOptions) *Checkin {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.MinBackoff, time.Second)
	def(&o.MaxBackoff, 60*time.Second)
	def(&o.BusyPoll, 5*time.Second)
	def(&o.MaxJitter, 2*time.Second)
	def(&o.Watch, time.Second)
	def(&o.ReportEvery, time.Second)
	if o.OrderAttempts <= 0 {
		o.OrderAttempts = 5
	}
	if o.Rand == nil {
		o.Rand = rand.Int64N
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Checkin{
		o: o, running: map[string]*orderRun{}, ended: map[string]bool{},
		retryAt: map[string]time.Time{}, tries: map[string]int{}, wake: make(chan struct{}, 1),
	}
}

// jitter returns a random duration in [0, d).
func (c *Checkin) jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(c.o.Rand(int64(d)))
}

// backoff is the wait after the n-th failure in a row (n >= 1): random
// between half of MinBackoff and min(MinBackoff*2^(n-1), MaxBackoff), so
// a fleet that lost its server comes back spread over an ever wider
// window, never in step, and never retries in a tight loop.
func (c *Checkin) backoff(n int) time.Duration {
	d := c.o.MinBackoff
	for i := 1; i < n && d < c.o.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.o.MaxBackoff)
	floor := c.o.MinBackoff / 2
	return floor + c.jitter(d-floor+1)
}

func (c *Checkin) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run checks in until ctx ends or an order switched. See Orders.
func (c *Checkin) Run(ctx context.Context, d *Daemon) error {
	if c.o.Client == nil {
		return errors.New("check-in: no server client")
	}
	log := d.Log().With(zap.String("server", c.o.Client.Server()))
	defer c.wg.Wait()
	wait := protocol.DefaultPollWait
	failures := 0
	for {
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-d.Switched():
			// The order's goroutine sends the last report; Run returns
			// once it has (the daemon bounds this by SwitchGrace).
			return nil
		default:
		}
		var pause time.Duration
		err := c.once(ctx, d, log, &wait)
		switch {
		case err == nil:
			if failures > 0 {
				log.Info("server reachable again", zap.Int("failed_attempts", failures))
			}
			failures = 0
			pause = c.nextPause(wait)
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errPollCut):
			failures, pause = 0, 0
		case errors.Is(err, ErrCloned), errors.Is(err, ErrRevoked):
			reason := "identity_cloned"
			if errors.Is(err, ErrRevoked) {
				reason = "credential_refused"
			}
			log.Warn("server refused the identity; enrolling again", zap.Error(err))
			if rerr := d.Reenroll(reason); rerr != nil {
				return fmt.Errorf("re-enroll: %w", rerr)
			}
			failures++
			pause = c.backoff(failures)
		case errors.Is(err, ErrProtocol):
			log.Error("the server does not speak this agent's protocol; upgrade the agent by hand (molt-agent upgrade --pack)", zap.Error(err))
			pause = c.o.MaxBackoff * 10
		default:
			failures++
			pause = c.backoff(failures)
			// One warning when the server goes away, then one in ten, so
			// a long outage stays visible without flooding the log.
			lvl := log.Debug
			if failures%10 == 1 {
				lvl = log.Warn
			}
			lvl("check-in failed", zap.Error(err), zap.Int("attempt", failures), zap.Duration("retry_in", pause))
		}
		if !c.sleep(ctx, d, pause) {
			return nil
		}
	}
}

// nextPause is the pause before the next check-in after a good one: short
// while the server keeps repeating orders this agent runs (it answers at
// once then), else a little jitter.
func (c *Checkin) nextPause(wait time.Duration) time.Duration {
	c.mu.Lock()
	busy := len(c.running) > 0 || c.repeated
	c.mu.Unlock()
	if busy {
		return c.o.BusyPoll/2 + c.jitter(c.o.BusyPoll/2+1)
	}
	return c.jitter(min(c.o.MaxJitter, wait/10) + 1)
}

// sleep waits d, or less when the daemon switched, an order ended, or
// what the server must learn at once changed (see localKey); false means
// ctx ended.
func (c *Checkin) sleep(ctx context.Context, d *Daemon, dur time.Duration) bool {
	if dur <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(dur)
	defer t.Stop()
	watch := time.NewTicker(c.o.Watch)
	defer watch.Stop()
	key := localKey(d)
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-c.wake:
			return true
		case <-d.Switched():
			return true
		case <-watch.C:
			if localKey(d) != key {
				return true
			}
		}
	}
}

// errPollCut: a long poll was ended early because the status changed.
var errPollCut = errors.New("check-in cut short: status changed")

// once enrolls when needed, reports a trial's start or end, and checks in
// once, starting the orders it gets.
func (c *Checkin) once(ctx context.Context, d *Daemon, log *zap.Logger, wait *time.Duration) error {
	if !d.Identity().Enrolled() {
		if err := c.enroll(ctx, d, log, wait); err != nil {
			return err
		}
	}
	cred := d.Identity().Credential
	if err := c.reportTrial(ctx, d, log, cred); err != nil {
		return err
	}
	st := d.Status()
	holdUntil := c.adjustStatus(d, &st)
	key := localKey(d)
	pctx, cancel := context.WithCancel(ctx)
	cut := make(chan struct{})
	stopWatch := make(chan struct{})
	go func() {
		// Cut the long poll short when the server should learn at once:
		// a hold ended or began, or a trial committed or rolled back.
		t := time.NewTicker(c.o.Watch)
		defer t.Stop()
		for {
			select {
			case <-stopWatch:
				return
			case <-d.Switched():
				cancel()
				return
			case <-t.C:
				if localKey(d) != key || (!holdUntil.IsZero() && c.o.Now().After(holdUntil)) {
					close(cut)
					cancel()
					return
				}
			}
		}
	}()
	resp, err := c.o.Client.Checkin(pctx, cred, protocol.CheckinRequest{Status: st}, *wait)
	close(stopWatch)
	cancel()
	if err != nil {
		select {
		case <-cut:
			return errPollCut
		case <-d.Switched():
			return errPollCut
		default:
		}
		return err
	}
	if p := resp.Settings.PollSeconds; p > 0 && p <= protocol.MaxPollSeconds {
		*wait = time.Duration(p) * time.Second
	}
	repeated := false
	for _, o := range resp.Orders {
		repeated = c.start(ctx, d, log, cred, o) || repeated
	}
	c.mu.Lock()
	c.repeated = repeated
	c.mu.Unlock()
	return nil
}

// selfUpgradeWait is how long a committed trial result is held back from
// the server while the supervisor's self-upgrade, which follows the
// commit, has not yet added its outcome to state/result.json, so that the
// check-in ending the deployment usually carries it. A self-upgrade that
// takes longer is not lost: the server records the supervisor's outcome
// from whichever later check-in carries it.
const selfUpgradeWait = 20 * time.Second

// adjustStatus corrects what the daemon's status cannot know by itself
// and returns until when a check-in holds back a committed result (zero:
// it does not).
func (c *Checkin) adjustStatus(d *Daemon, st *protocol.Status) time.Time {
	lr := st.LastResult
	if lr == nil || lr.Version != d.Version() || lr.Outcome != protocol.TrialCommitted {
		return time.Time{}
	}
	if s := lr.Supervisor; s != nil {
		// A supervisor that upgraded itself in place kept this agent
		// running: the version it was started with is stale.
		if s.Upgraded && s.To != "" {
			st.SupervisorVersion = s.To
		}
		return time.Time{}
	}
	if !st.Supervised || st.SupervisorVersion == "" || st.SupervisorVersion == lr.Version {
		return time.Time{}
	}
	if _, err := os.Stat(d.Home().StagedSupervisor(lr.Version)); err != nil {
		return time.Time{}
	}
	until := lr.At.Add(selfUpgradeWait)
	if !c.o.Now().Before(until) {
		return time.Time{}
	}
	st.LastResult = nil
	return until
}

// localKey summarises what a check-in must not wait to tell: holds, the
// trial result file and the workloads' states.
func localKey(d *Daemon) string {
	k := fmt.Sprint(d.Busy(), Reasons(d.Holds()))
	if ws, err := d.Home().ReadWorkloadState(); err == nil {
		for _, w := range ws.Workloads {
			k += "|" + w.Name + ":" + w.State
		}
	}
	if fi, err := os.Stat(d.Home().ResultPath()); err == nil {
		k += fi.ModTime().String() + fmt.Sprint(fi.Size())
	}
	return k
}

func (c *Checkin) enroll(ctx context.Context, d *Daemon, log *zap.Logger, wait *time.Duration) error {
	token := d.EnrollmentToken()
	if token == "" {
		return errors.New("not enrolled and agent.yaml has no enrollment_token (the last one was removed once used): create one with molt enroll-token create")
	}
	st := d.Status()
	req := protocol.EnrollRequest{
		ProtocolVersion: protocol.Version, EnrollmentToken: token,
		Name: st.Name, Hostname: st.Hostname, Platform: st.Platform, OSFamily: st.OSFamily,
		Version: st.Version, Supervised: st.Supervised, SupervisorVersion: st.SupervisorVersion,
		Labels: st.Labels, Cluster: st.Cluster, Fingerprint: d.Identity().Fingerprint,
		PendingReboot: st.PendingReboot, FreeDiskBytes: st.FreeDiskBytes, Floor: st.Floor,
	}
	resp, err := c.o.Client.Enroll(ctx, req)
	if err != nil {
		return err
	}
	if err := d.SetEnrolled(resp.AgentID, resp.Credential); err != nil {
		return err
	}
	if p := resp.Settings.PollSeconds; p > 0 && p <= protocol.MaxPollSeconds {
		*wait = time.Duration(p) * time.Second
	}
	switch resp.Activation {
	case "requested":
		log.Info("upgrade on activation requested; the order follows on the first check-in")
	case "skipped":
		log.Info("upgrade on activation skipped", zap.String("reason", resp.ActivationReason))
	}
	return nil
}

// checkinState is state/checkin.json: which trial result was reported, so
// a restart does not report it again.
type checkinState struct {
	ReportedResult string `json:"reported_result,omitempty"`
}

func checkinStatePath(d *Daemon) string { return filepath.Join(d.Home().StateDir(), "checkin.json") }

// reportTrial tells the server about the trial of this version (its
// start under the supervisor's watch) and about the last trial's end
// (state/result.json), each once, as steps with their times for the
// deployment's DEPLOY report. The end itself the server takes from the
// last_result of the check-in that follows.
func (c *Checkin) reportTrial(ctx context.Context, d *Daemon, log *zap.Logger, cred string) error {
	h := d.Home()
	if !c.trialReported {
		if a, err := h.ReadActive(); err == nil && a.Trial != nil && a.Trial.Order != "" && a.Trial.Version == d.Version() {
			at := a.Trial.Started
			if at.IsZero() {
				at = c.o.Now()
			}
			_, err := c.o.Client.Report(ctx, cred, protocol.ReportRequest{
				OrderID: a.Trial.Order, Phase: protocol.StateWatching,
				Steps: []protocol.Step{{At: at.UTC(), Name: "start", Detail: fmt.Sprintf("%s started by the supervisor, under watch until the trial commits", d.Version())}},
			})
			if err != nil && Transient(err) {
				return err
			}
			if err != nil {
				log.Info("trial start not recorded by the server", zap.Error(err))
			}
		}
		c.trialReported = true
	}
	r, ok, err := h.ReadResult()
	if err != nil || !ok || r.Order == "" {
		return nil
	}
	// The supervisor adds its self-upgrade to the result after the
	// commit: that makes a new key, and its step is sent then.
	key := fmt.Sprintf("%s/%s/%s/%t", r.Order, r.Outcome, r.At.UTC().Format(time.RFC3339Nano), r.Supervisor != nil)
	var cs checkinState
	_ = readJSON(checkinStatePath(d), &cs)
	if cs.ReportedResult == key {
		return nil
	}
	step := protocol.Step{At: r.At.UTC()}
	switch r.Outcome {
	case protocol.TrialCommitted:
		step.Name, step.Detail = "commit", r.Version+" committed after its watch"
	case protocol.TrialRolledBack:
		step.Name = "rollback"
		step.Detail = fmt.Sprintf("%s rolled back to %s: %s", r.Version, r.Previous, r.Reason)
		if r.Logs != "" {
			step.Detail += " (logs: " + r.Logs + ")"
		}
	default:
		return nil
	}
	if r.WorkloadLogs != "" {
		step.Detail += " (workload logs: " + r.WorkloadLogs + ")"
	}
	// The trial's own steps (each workload's start and ready) first, in
	// their order, then its end.
	steps := append(trialSteps(r.Steps), step)
	if s := r.Supervisor; s != nil {
		name, detail := "supervisor", fmt.Sprintf("supervisor %s -> %s", s.From, s.To)
		if s.Upgraded {
			detail += " upgraded"
		} else {
			detail += " not upgraded: " + s.Reason
		}
		steps = append(steps, protocol.Step{At: s.At.UTC(), Name: name, Detail: detail})
	}
	// No end here: the server ends the deployment from the check-in's
	// last_result, which carries the whole result (the supervisor's
	// self-upgrade too) for its events.
	_, err = c.o.Client.Report(ctx, cred, protocol.ReportRequest{OrderID: r.Order, Steps: steps})
	if err != nil && Transient(err) {
		return err
	}
	if err != nil {
		// 404/409: the server ended the deployment already (from the
		// check-in status) or does not know it; nothing to retry.
		log.Info("trial result not recorded by the server", zap.String("order", r.Order), zap.Error(err))
	} else {
		log.Info("trial result reported", zap.String("order", r.Order), zap.String("outcome", r.Outcome))
	}
	cs.ReportedResult = key
	if err := atomicfile.WriteJSON(checkinStatePath(d), cs, 0o644); err != nil {
		log.Warn("state/checkin.json", zap.Error(err))
	}
	return nil
}
