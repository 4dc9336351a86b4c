package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moltfleet/molt/config"
	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/protocol"
)

// fakeControl records what the daemon tells the supervisor.
type fakeControl struct {
	mu   sync.Mutex
	msgs []string
	stop chan struct{}
}

func newFakeControl() *fakeControl { return &fakeControl{stop: make(chan struct{})} }

func (c *fakeControl) send(m string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
	return nil
}
func (c *fakeControl) Ready() error          { return c.send("ready") }
func (c *fakeControl) Busy() error           { return c.send("busy") }
func (c *fakeControl) Idle() error           { return c.send("idle") }
func (c *fakeControl) Stop() <-chan struct{} { return c.stop }
func (c *fakeControl) said() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// fakeUpdater records the calls; prepareErr fails Prepare.
type fakeUpdater struct {
	mu         sync.Mutex
	calls      []string
	prepareErr error
	switchedAt time.Time
	block      chan struct{} // Prepare waits for it when set
}

func (u *fakeUpdater) record(c string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls = append(u.calls, c)
}
func (u *fakeUpdater) Prepare(ctx context.Context, o Order) error {
	u.record("prepare " + o.Version)
	if u.block != nil {
		select {
		case <-u.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return u.prepareErr
}
func (u *fakeUpdater) Switch(_ context.Context, o Order) error {
	u.record("switch " + o.Version)
	u.mu.Lock()
	u.switchedAt = time.Now()
	u.mu.Unlock()
	return nil
}
func (u *fakeUpdater) Cleanup() ([]string, error)                   { u.record("cleanup"); return nil, nil }
func (u *fakeUpdater) InFlight() (*protocol.UpgradeProgress, error) { return nil, nil }
func (u *fakeUpdater) Finish(string) error                          { return nil }
func (u *fakeUpdater) got() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.calls)
}

// ordersFunc adapts a function to Orders.
type ordersFunc func(ctx context.Context, d *Daemon) error

func (f ordersFunc) Run(ctx context.Context, d *Daemon) error { return f(ctx, d) }

func newTestDaemon(t *testing.T, ctl *fakeControl, u *fakeUpdater, orders Orders) (*Daemon, home.Home) {
	t.Helper()
	h := home.New(t.TempDir())
	o := Options{
		Home: h, Config: &config.Config{}, Updater: u, Orders: orders,
		Fingerprint: func() (string, error) { return "fp", nil },
		Version:     "1.0.0", Poll: 10 * time.Millisecond, SwitchGrace: time.Second,
	}
	if ctl != nil {
		o.Control = ctl
	}
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return d, h
}

func runDaemon(t *testing.T, d *Daemon) (context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(cancel)
	return cancel, done
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("daemon did not return")
		return nil
	}
}

func TestDaemonReadyBeforeOrdersAndStop(t *testing.T) {
	ctl := newFakeControl()
	var saidAtOrders []string
	var idAtOrders Identity
	orders := ordersFunc(func(ctx context.Context, d *Daemon) error {
		saidAtOrders = ctl.said()
		idAtOrders = d.Identity()
		<-ctx.Done()
		return nil
	})
	d, h := newTestDaemon(t, ctl, &fakeUpdater{}, orders)
	_, done := runDaemon(t, d)
	waitFor(t, "daemon.json", func() bool { _, ok := RunningDaemon(h); return ok })
	close(ctl.stop)
	if err := result(t, done); err != nil {
		t.Fatalf("Run after stop = %v, want nil", err)
	}
	if !slices.Equal(saidAtOrders, []string{"ready"}) {
		t.Errorf("said before the check-in loop ran: %v, want [ready]", saidAtOrders)
	}
	if idAtOrders.ID == "" || idAtOrders.Fingerprint != "fp" {
		t.Errorf("identity at check-in = %+v", idAtOrders)
	}
	if _, err := os.Stat(DaemonPath(h)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state/daemon.json left behind: %v", err)
	}
}

func TestDaemonBusyIdleFollowsHolds(t *testing.T) {
	ctl := newFakeControl()
	d, h := newTestDaemon(t, ctl, &fakeUpdater{}, nil)
	cancel, done := runDaemon(t, d)
	waitFor(t, "ready", func() bool { return len(ctl.said()) == 1 })
	hold, err := HoldsOf(h).Add("backup", 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "busy", func() bool { return d.Busy() && slices.Contains(ctl.said(), "busy") })
	if st := d.Status(); !st.Busy || !slices.Equal(st.Holds, []string{"backup"}) {
		t.Errorf("status busy %v holds %v", st.Busy, st.Holds)
	}
	HoldsOf(h).Release(hold.ID)
	waitFor(t, "idle", func() bool { return !d.Busy() && slices.Contains(ctl.said(), "idle") })
	cancel()
	if err := result(t, done); err != nil {
		t.Fatal(err)
	}
	if got := ctl.said(); !slices.Equal(got, []string{"ready", "busy", "idle"}) {
		t.Errorf("control messages %v, want ready busy idle", got)
	}
}

func TestRunOrderWaitsForHoldThenSwitches(t *testing.T) {
	u := &fakeUpdater{}
	var mu sync.Mutex
	var steps []string
	var orderErr error
	orders := ordersFunc(func(ctx context.Context, d *Daemon) error {
		orderErr = d.RunOrder(ctx, Order{ID: "dep-1", Version: "1.1.0", PackURL: "https://s/v1/packs/1.1.0",
			Progress: func(p Progress) {
				mu.Lock()
				steps = append(steps, p.Step)
				mu.Unlock()
			}})
		<-d.Switched()
		return nil
	})
	d, h := newTestDaemon(t, newFakeControl(), u, orders)
	hold, err := HoldsOf(h).Add("backup", 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, done := runDaemon(t, d)
	waitFor(t, "the wait step", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(steps, "wait")
	})
	time.Sleep(50 * time.Millisecond)
	if got := u.got(); slices.Contains(got, "switch 1.1.0") {
		t.Fatalf("switched during a hold: %v", got)
	}
	released := time.Now()
	HoldsOf(h).Release(hold.ID)
	if err := result(t, done); !errors.Is(err, ErrSwitched) {
		t.Fatalf("Run = %v, want ErrSwitched", err)
	}
	if orderErr != nil {
		t.Errorf("RunOrder = %v", orderErr)
	}
	if got := u.got(); !slices.Equal(got, []string{"prepare 1.1.0", "switch 1.1.0"}) {
		t.Errorf("updater calls %v", got)
	}
	if u.switchedAt.Before(released) {
		t.Errorf("switched at %v, before the hold was released at %v", u.switchedAt, released)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"stage", "wait", "wait", "switch"}; !slices.Equal(steps, want) {
		t.Errorf("steps %v, want %v", steps, want)
	}
}

func TestRunOrderFailureKeepsRunning(t *testing.T) {
	u := &fakeUpdater{prepareErr: errors.New("sha256 mismatch")}
	errc := make(chan error, 1)
	orders := ordersFunc(func(ctx context.Context, d *Daemon) error {
		errc <- d.RunOrder(ctx, Order{ID: "dep-1", Version: "1.1.0", PackURL: "https://s/p"})
		<-ctx.Done()
		return nil
	})
	d, _ := newTestDaemon(t, nil, u, orders)
	cancel, done := runDaemon(t, d)
	err := <-errc
	if err == nil || !strings.Contains(err.Error(), "sha256 mismatch") {
		t.Errorf("RunOrder = %v, want the updater's error", err)
	}
	select {
	case err := <-done:
		t.Fatalf("daemon stopped after a failed order: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := result(t, done); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if slices.Contains(u.got(), "switch 1.1.0") {
		t.Error("switched after a failed prepare")
	}
}

func TestRunOrderOneAtATime(t *testing.T) {
	u := &fakeUpdater{block: make(chan struct{})}
	d, _ := newTestDaemon(t, nil, u, nil)
	first := make(chan error, 1)
	go func() { first <- d.RunOrder(context.Background(), Order{ID: "a", Version: "1.1.0", PackFile: "/p"}) }()
	waitFor(t, "the first prepare", func() bool { return len(u.got()) == 1 })
	if err := d.RunOrder(context.Background(), Order{ID: "b", Version: "1.2.0", PackFile: "/p"}); !errors.Is(err, ErrBusy) {
		t.Errorf("second RunOrder = %v, want ErrBusy", err)
	}
	close(u.block)
	if err := <-first; err != nil {
		t.Errorf("first RunOrder = %v", err)
	}
	if err := d.RunOrder(context.Background(), Order{ID: "c", Version: "1.3.0", PackFile: "/p"}); !errors.Is(err, ErrBusy) {
		t.Errorf("RunOrder after a switch = %v, want ErrBusy", err)
	}
}

func TestLocalRequestIsClaimedAndRun(t *testing.T) {
	u := &fakeUpdater{}
	d, h := newTestDaemon(t, newFakeControl(), u, nil)
	_, done := runDaemon(t, d)
	waitFor(t, "daemon.json", func() bool { _, ok := RunningDaemon(h); return ok })
	r := Request{ID: "local-test-1", Version: "1.1.0", PackFile: "/abs/p.pack", Requested: time.Now(), Pid: os.Getpid()}
	if err := SubmitRequest(h, r); err != nil {
		t.Fatal(err)
	}
	if err := result(t, done); !errors.Is(err, ErrSwitched) {
		t.Fatalf("Run = %v, want ErrSwitched", err)
	}
	if !RequestClaimed(h, r.ID) {
		t.Error("request not claimed")
	}
	st, err := ReadRequestStatus(h, r.ID)
	if err != nil || st.State != RequestSwitched || !st.Final() {
		t.Errorf("request status %+v, %v; want switched", st, err)
	}
	if ok, _ := WithdrawRequest(h, r.ID); ok {
		t.Error("withdrew a claimed request")
	}
	CollectRequest(h, r.ID)
	if ents, _ := os.ReadDir(RequestsDir(h)); len(ents) != 0 {
		t.Errorf("request files left: %v", ents)
	}
}

func TestLocalRequestRefusesRelativePack(t *testing.T) {
	u := &fakeUpdater{}
	d, h := newTestDaemon(t, nil, u, nil)
	cancel, done := runDaemon(t, d)
	r := Request{ID: "local-test-2", Version: "1.1.0", PackFile: "rel/p.pack"}
	SubmitRequest(h, r)
	waitFor(t, "a final status", func() bool { st, err := ReadRequestStatus(h, r.ID); return err == nil && st.Final() })
	st, _ := ReadRequestStatus(h, r.ID)
	if st.State != RequestFailed || !strings.Contains(st.Error, "not absolute") {
		t.Errorf("status %+v, want failed: not absolute", st)
	}
	cancel()
	if err := result(t, done); err != nil {
		t.Error(err)
	}
	if len(u.got()) != 0 {
		t.Errorf("updater called: %v", u.got())
	}
}

func TestSetEnrolledAndReenroll(t *testing.T) {
	d, h := newTestDaemon(t, nil, &fakeUpdater{}, nil)
	if err := d.loadIdentity(); err != nil {
		t.Fatal(err)
	}
	if err := d.SetEnrolled("agent-1", "cred"); err != nil {
		t.Fatal(err)
	}
	id, _ := ReadIdentity(h)
	if id.ID != "agent-1" || id.Credential != "cred" || id.Fingerprint != "fp" {
		t.Errorf("stored %+v", id)
	}
	if err := d.Reenroll("identity_cloned"); err != nil {
		t.Fatal(err)
	}
	id, _ = ReadIdentity(h)
	if id.Enrolled() || id.ID == "agent-1" || !strings.HasPrefix(id.ID, "local-") || d.Identity().ID != id.ID {
		t.Errorf("after Reenroll %+v", id)
	}
}

func TestDaemonBusyAtStartSaysReadyFirst(t *testing.T) {
	ctl := newFakeControl()
	d, h := newTestDaemon(t, ctl, &fakeUpdater{}, nil)
	if _, err := HoldsOf(h).Add("held before start", 0, time.Hour); err != nil {
		t.Fatal(err)
	}
	cancel, done := runDaemon(t, d)
	waitFor(t, "busy", func() bool { return len(ctl.said()) == 2 })
	cancel()
	if err := result(t, done); err != nil {
		t.Fatal(err)
	}
	if got := ctl.said(); !slices.Equal(got, []string{"ready", "busy"}) {
		t.Errorf("control messages %v, want ready busy", got)
	}
}

func TestRunningDaemonIgnoresReusedPid(t *testing.T) {
	h := home.New(t.TempDir())
	d, _ := newTestDaemon(t, nil, &fakeUpdater{}, nil)
	info := d.daemonInfo()
	if err := writeDaemonFile(h, info); err != nil {
		t.Fatal(err)
	}
	if _, ok := RunningDaemon(h); !ok {
		t.Fatal("this process is not seen as running")
	}
	if info.Process.PID == 0 {
		t.Skip("processes cannot be identified here")
	}
	// The same pid, but another process (another start time).
	info.Process.Start -= 1000
	writeDaemonFile(h, info)
	if _, ok := RunningDaemon(h); ok {
		t.Error("a daemon.json of another process with the same pid counts as running")
	}
}

func TestDaemonRunsWithoutFingerprint(t *testing.T) {
	ctl := newFakeControl()
	h := home.New(t.TempDir())
	d, err := New(Options{
		Home: h, Config: &config.Config{}, Updater: &fakeUpdater{}, Control: ctl,
		Fingerprint: func() (string, error) { return "", errors.New("permission denied") },
		Poll:        10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	cancel, done := runDaemon(t, d)
	waitFor(t, "ready", func() bool { return len(ctl.said()) > 0 })
	cancel()
	if err := result(t, done); err != nil {
		t.Fatal(err)
	}
	if id, err := ReadIdentity(h); err != nil || id.Fingerprint != "" {
		t.Errorf("identity %+v, %v; want one without a fingerprint", id, err)
	}
}

func TestUnsupervisedStartCommitsItsTrial(t *testing.T) {
	for _, tc := range []struct {
		name       string
		supervised bool
		trial      string
		committed  bool
	}{
		{"unsupervised, trial of this version", false, "1.0.0", true},
		{"supervised: the supervisor watches", true, "1.0.0", false},
		{"unsupervised, trial of another version", false, "1.1.0", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ctl *fakeControl
			if tc.supervised {
				ctl = newFakeControl()
			}
			d, h := newTestDaemon(t, ctl, &fakeUpdater{}, nil)
			act := home.Active{Current: tc.trial, Previous: "0.9.0", Trial: &home.Trial{Version: tc.trial, Order: "d-7"}}
			if err := h.WriteActive(act); err != nil {
				t.Fatal(err)
			}
			cancel, done := runDaemon(t, d)
			waitFor(t, "daemon.json", func() bool { _, err := os.Stat(filepath.Join(h.StateDir(), "daemon.json")); return err == nil })
			cancel()
			if err := result(t, done); err != nil {
				t.Fatal(err)
			}
			got, err := h.ReadActive()
			if err != nil {
				t.Fatal(err)
			}
			r, ok, _ := h.ReadResult()
			if !tc.committed {
				if got.Trial == nil || ok {
					t.Fatalf("trial touched: %+v, result %+v", got, r)
				}
				return
			}
			if got.Trial != nil || got.Current != "1.0.0" || got.Previous != "0.9.0" {
				t.Fatalf("active.json: %+v", got)
			}
			if !ok || r.Outcome != home.OutcomeCommitted || r.Version != "1.0.0" || r.Previous != "0.9.0" || r.Order != "d-7" || !strings.Contains(r.Reason, "not supervised") {
				t.Fatalf("result.json: %+v", r)
			}
		})
	}
}
