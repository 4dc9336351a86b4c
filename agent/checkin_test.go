package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moltfleet/molt/config"
	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/updater/pack"
)

// ckServer is a control server speaking the agent protocol, scripted by
// the test.
type ckServer struct {
	t  *testing.T
	mu sync.Mutex
	// enrolls counts enrollments; creds are the credentials issued.
	enrolls  []protocol.EnrollRequest
	creds    []string
	checkins []ckCheckin
	reports  []protocol.ReportRequest
	// checkin answers a check-in (nil: no orders after a short wait).
	checkin func(n int, cred string, req protocol.CheckinRequest) (int, any)
	// report answers a report (nil: 200 {}).
	report func(req protocol.ReportRequest) (int, any)
}

type ckCheckin struct {
	At   time.Time
	Cred string
	Req  protocol.CheckinRequest
}

func (s *ckServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cred := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	switch r.URL.Path {
	case "/v1/agent/enroll":
		var req protocol.EnrollRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			s.t.Errorf("enroll body: %v", err)
		}
		s.mu.Lock()
		s.enrolls = append(s.enrolls, req)
		n := len(s.enrolls)
		cred := fmt.Sprintf("molta_cred%d", n)
		s.creds = append(s.creds, cred)
		s.mu.Unlock()
		reply(200, protocol.EnrollResponse{AgentID: fmt.Sprintf("agent-%d", n), Credential: cred, Settings: protocol.AgentSettings{PollSeconds: 1}})
	case "/v1/agent/checkin":
		var req protocol.CheckinRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			s.t.Errorf("checkin body: %v", err)
		}
		s.mu.Lock()
		s.checkins = append(s.checkins, ckCheckin{At: time.Now(), Cred: cred, Req: req})
		n := len(s.checkins)
		f := s.checkin
		s.mu.Unlock()
		if f == nil {
			time.Sleep(20 * time.Millisecond)
			reply(200, protocol.CheckinResponse{Settings: protocol.AgentSettings{PollSeconds: 1}})
			return
		}
		reply(f(n, cred, req))
	case "/v1/agent/report":
		var req protocol.ReportRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			s.t.Errorf("report body: %v", err)
		}
		s.mu.Lock()
		f := s.report
		s.reports = append(s.reports, req)
		s.mu.Unlock()
		if f == nil {
			reply(200, protocol.ReportResponse{State: "ok"})
			return
		}
		reply(f(req))
	default:
		reply(404, protocol.Error{Error: "no route", Code: protocol.CodeNotFound})
	}
}

func (s *ckServer) snapshot() (enrolls int, checkins []ckCheckin, reports []protocol.ReportRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.enrolls), append([]ckCheckin(nil), s.checkins...), append([]protocol.ReportRequest(nil), s.reports...)
}

// ckUpdater is a hand-written Updater: Prepare reports download progress
// and returns prepareErr.
type ckUpdater struct {
	mu         sync.Mutex
	prepareErr error
	prepared   []string
	cleaned    int
	block      chan struct{} // when set, Prepare waits for it or ctx
	aborted    int           // Prepares that ended with their ctx
}

func (u *ckUpdater) Prepare(ctx context.Context, o Order) error {
	u.mu.Lock()
	u.prepared = append(u.prepared, o.ID)
	err, block := u.prepareErr, u.block
	u.mu.Unlock()
	o.Progress(Progress{Phase: protocol.StateDownloading, Step: "download", Done: 10, Total: 100})
	o.Progress(Progress{Phase: protocol.StateDownloading, Step: "download", Done: 50, Total: 100})
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			u.mu.Lock()
			u.aborted++
			u.mu.Unlock()
			return ctx.Err()
		}
	}
	if err != nil {
		return err
	}
	o.Progress(Progress{Phase: protocol.StateDownloading, Step: "download", Done: 100, Total: 100})
	o.Progress(Progress{Step: "verify", Detail: "signature and sha256 ok"})
	return nil
}

func (u *ckUpdater) Switch(context.Context, Order) error { return nil }
func (u *ckUpdater) Cleanup() ([]string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.cleaned++
	return []string{"versions/1.2.0"}, nil
}
func (u *ckUpdater) Finish(string) error                          { return nil }
func (u *ckUpdater) InFlight() (*protocol.UpgradeProgress, error) { return nil, nil }

type ckAgent struct {
	srv  *ckServer
	hs   *httptest.Server
	home home.Home
	upd  *ckUpdater
	cfg  *config.Config
	ck   *Checkin
}

func newCkAgent(t *testing.T, srv *ckServer) *ckAgent {
	t.Helper()
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	a := &ckAgent{srv: srv, hs: hs, home: home.New(t.TempDir()), upd: &ckUpdater{},
		cfg: &config.Config{Server: hs.URL, EnrollmentToken: "enroll-secret", Name: "web-1", Labels: map[string]string{"env": "test"}}}
	return a
}

func (a *ckAgent) checkinOpts() CheckinOptions {
	cl, err := NewClient(ClientOptions{Server: a.hs.URL})
	if err != nil {
		panic(err)
	}
	return CheckinOptions{Client: cl, MinBackoff: 20 * time.Millisecond, MaxBackoff: 160 * time.Millisecond,
		BusyPoll: 30 * time.Millisecond, MaxJitter: 5 * time.Millisecond, Watch: 20 * time.Millisecond, ReportEvery: 10 * time.Millisecond}
}

// run runs a daemon with the check-in loop until it returns, until()
// holds (checked every 10ms; nil: never) or timeout passes.
func (a *ckAgent) run(t *testing.T, o CheckinOptions, timeout time.Duration, until func() bool) error {
	t.Helper()
	a.ck = NewCheckin(o)
	// Supervised: the trials these tests lay out are a supervisor's to end
	// (an unsupervised start commits its own trial).
	d, err := New(Options{Home: a.home, Config: a.cfg, Updater: a.upd, Orders: a.ck, Version: "1.4.0", Control: newFakeControl(),
		Fingerprint: func() (string, error) { return "fp-1", nil }, Poll: 10 * time.Millisecond, SwitchGrace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if until != nil {
		go func() {
			for ctx.Err() == nil && !until() {
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
		}()
	}
	return d.Run(ctx)
}

// reported is an until condition: the server got the end of order id.
func (s *ckServer) reported(id string) func() bool {
	return func() bool {
		_, _, reports := s.snapshot()
		return endOf(reports, id) != nil
	}
}

// checkedIn is an until condition: at least n check-ins arrived.
func (s *ckServer) checkedIn(n int) func() bool {
	return func() bool {
		_, checkins, _ := s.snapshot()
		return len(checkins) >= n
	}
}

func stepNames(reports []protocol.ReportRequest, order string) []string {
	var names []string
	for _, r := range reports {
		if r.OrderID != order {
			continue
		}
		for _, s := range r.Steps {
			names = append(names, s.Name)
		}
	}
	return names
}

func endOf(reports []protocol.ReportRequest, order string) *protocol.End {
	for _, r := range reports {
		if r.OrderID == order && r.End != nil {
			return r.End
		}
	}
	return nil
}

func TestEnrollCheckinUpgrade(t *testing.T) {
	srv := &ckServer{t: t}
	srv.checkin = func(n int, cred string, req protocol.CheckinRequest) (int, any) {
		return 200, protocol.CheckinResponse{Orders: []protocol.Order{{ID: "dep-1", Kind: protocol.OrderUpgrade, Version: "1.5.0", PackURL: "http://x/v1/packs/1.5.0"}},
			Settings: protocol.AgentSettings{PollSeconds: 1}}
	}
	a := newCkAgent(t, srv)
	err := a.run(t, a.checkinOpts(), 10*time.Second, nil)
	if !errors.Is(err, ErrSwitched) {
		t.Fatalf("Run: %v, want ErrSwitched", err)
	}
	enrolls, checkins, reports := srv.snapshot()
	if enrolls != 1 {
		t.Fatalf("%d enrollments, want 1", enrolls)
	}
	e := srv.enrolls[0]
	if e.EnrollmentToken != "enroll-secret" || e.Name != "web-1" || e.Version != "1.4.0" || e.Fingerprint != "fp-1" || e.Labels["env"] != "test" || e.Platform == "" || e.OSFamily == "" || e.ProtocolVersion != protocol.Version {
		t.Errorf("enroll request %+v", e)
	}
	if len(checkins) == 0 || checkins[0].Cred != "molta_cred1" {
		t.Fatalf("check-ins %+v", checkins)
	}
	if checkins[0].Req.Status.Version != "1.4.0" || checkins[0].Req.Status.Fingerprint != "fp-1" {
		t.Errorf("status %+v", checkins[0].Req.Status)
	}
	id, err := ReadIdentity(a.home)
	if err != nil || id.ID != "agent-1" || id.Credential != "molta_cred1" {
		t.Fatalf("identity %+v %v", id, err)
	}
	if fi, err := os.Stat(a.home.IdentityPath()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file mode %v %v", fi.Mode(), err)
	}
	got := strings.Join(stepNames(reports, "dep-1"), ",")
	// Two progress calls below 100% give one "download" step; the last
	// (done == total) another.
	want := "order,preflight,download,download,verify,stage,switch,exit"
	if !strings.Contains(got, "order") || !strings.HasSuffix(got, "stage,switch,exit") || strings.Count(got, "download") != 2 {
		t.Errorf("steps %s, want like %s", got, want)
	}
	var phases []string
	var sawProgress bool
	for _, r := range reports {
		for _, s := range r.Steps {
			if s.At.IsZero() {
				t.Errorf("step %s without time", s.Name)
			}
		}
		if r.Phase != "" {
			phases = append(phases, r.Phase)
		}
		if r.Total == 100 {
			sawProgress = true
		}
	}
	if !sawProgress {
		t.Error("no download progress reported")
	}
	if len(phases) == 0 || phases[len(phases)-1] != protocol.StateRestarting {
		t.Errorf("phases %v, want last restarting", phases)
	}
	if e := endOf(reports, "dep-1"); e != nil {
		t.Errorf("an order that switched reported an end %+v; the trial decides it", e)
	}
}

func TestClonedIdentityReenrolls(t *testing.T) {
	srv := &ckServer{t: t}
	srv.checkin = func(n int, cred string, req protocol.CheckinRequest) (int, any) {
		if cred == "molta_cred1" {
			return 409, protocol.Error{Error: "agent agent-1 is enrolled from another machine", Code: protocol.CodeIdentityCloned}
		}
		return 200, protocol.CheckinResponse{Settings: protocol.AgentSettings{PollSeconds: 1}}
	}
	a := newCkAgent(t, srv)
	// The token is used once unless kept (as a golden image may): the
	// clone enrolls again with it.
	a.cfg.KeepEnrollmentToken = true
	a.run(t, a.checkinOpts(), 10*time.Second, func() bool {
		_, checkins, _ := srv.snapshot()
		return len(checkins) > 0 && checkins[len(checkins)-1].Cred == "molta_cred2"
	})
	enrolls, checkins, _ := srv.snapshot()
	if enrolls != 2 {
		t.Fatalf("%d enrollments, want 2 (the clone enrolls again)", enrolls)
	}
	id, _ := ReadIdentity(a.home)
	if id.ID != "agent-2" || id.Credential != "molta_cred2" {
		t.Fatalf("identity %+v, want agent-2", id)
	}
	last := checkins[len(checkins)-1]
	if last.Cred != "molta_cred2" {
		t.Fatalf("last check-in with %q", last.Cred)
	}
}

func TestBackoffWhenServerAway(t *testing.T) {
	srv := &ckServer{t: t}
	srv.checkin = func(n int, cred string, req protocol.CheckinRequest) (int, any) {
		if n <= 5 {
			return 503, protocol.Error{Error: "shutting down", Code: protocol.CodeUnavailable}
		}
		return 200, protocol.CheckinResponse{Settings: protocol.AgentSettings{PollSeconds: 1}}
	}
	a := newCkAgent(t, srv)
	o := a.checkinOpts()
	o.MinBackoff, o.MaxBackoff = 40*time.Millisecond, 200*time.Millisecond
	a.run(t, o, 10*time.Second, srv.checkedIn(6))
	_, checkins, _ := srv.snapshot()
	if len(checkins) < 6 {
		t.Fatalf("%d check-ins, want at least 6", len(checkins))
	}
	// After each failure the agent waits at least half of MinBackoff, and
	// the waits spread wider as failures go on.
	var total time.Duration
	for i := 1; i < 6; i++ {
		gap := checkins[i].At.Sub(checkins[i-1].At)
		if gap < 20*time.Millisecond {
			t.Errorf("gap %d: %v, want at least 20ms", i, gap)
		}
		total += gap
	}
	if total < 150*time.Millisecond {
		t.Errorf("5 retries within %v: no backoff", total)
	}
}

func TestBackoffJitter(t *testing.T) {
	c := NewCheckin(CheckinOptions{MinBackoff: time.Second, MaxBackoff: 60 * time.Second})
	seen := map[time.Duration]bool{}
	for n := 1; n <= 10; n++ {
		top := min(time.Second<<(n-1), 60*time.Second)
		var sum time.Duration
		for range 200 {
			d := c.backoff(n)
			if d < 500*time.Millisecond || d > top {
				t.Fatalf("backoff(%d) = %v, want in [500ms, %v]", n, d, top)
			}
			seen[d] = true
			sum += d
		}
		// Spread over the window: the mean is near its middle.
		mid := (500*time.Millisecond + top) / 2
		if mean := sum / 200; n > 1 && (mean < mid*3/4 || mean > mid*5/4) {
			t.Errorf("backoff(%d): mean %v, want about %v", n, mean, mid)
		}
	}
	if len(seen) < 1000 {
		t.Fatalf("only %d distinct waits: no jitter", len(seen))
	}
}

func TestTrialResultReportedOnce(t *testing.T) {
	srv := &ckServer{t: t}
	a := newCkAgent(t, srv)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := a.home.WriteResult(home.Result{Outcome: home.OutcomeRolledBack, Version: "1.5.0", Previous: "1.4.0",
		Reason: "not ready within 60s", Logs: "logs/1.5.0", Order: "dep-7", At: at}); err != nil {
		t.Fatal(err)
	}
	a.run(t, a.checkinOpts(), 10*time.Second, srv.checkedIn(1))
	_, checkins, reports := srv.snapshot()
	if names := stepNames(reports, "dep-7"); len(names) != 1 || names[0] != "rollback" {
		t.Fatalf("steps %v", names)
	}
	if r := reports[0]; !strings.Contains(r.Steps[0].Detail, "not ready within 60s") || !strings.Contains(r.Steps[0].Detail, "logs/1.5.0") || !r.Steps[0].At.Equal(at) || r.End != nil {
		t.Fatalf("report %+v: want the rollback step with reason, logs and time, and no end (the check-in carries it)", r)
	}
	if lr := checkins[0].Req.Status.LastResult; lr == nil || lr.Outcome != protocol.TrialRolledBack || lr.OrderID != "dep-7" {
		t.Fatalf("check-in last_result %+v", lr)
	}
	// A restart does not report the same result again.
	srv.mu.Lock()
	srv.reports = nil
	srv.mu.Unlock()
	n := len(checkins)
	a.run(t, a.checkinOpts(), 10*time.Second, srv.checkedIn(n+2))
	if _, _, reports := srv.snapshot(); len(stepNames(reports, "dep-7")) != 0 {
		t.Fatal("trial result reported again after a restart")
	}
	// The supervisor's self-upgrade, added to the result later, is sent.
	a.home.WriteResult(home.Result{Outcome: home.OutcomeRolledBack, Version: "1.5.0", Previous: "1.4.0",
		Reason: "not ready within 60s", Logs: "logs/1.5.0", Order: "dep-7", At: at,
		Supervisor: &home.SupervisorResult{From: "1.4.0", To: "1.5.0", Reason: "trial rolled back", At: at}})
	a.run(t, a.checkinOpts(), 10*time.Second, srv.checkedIn(n+4))
	if _, _, reports := srv.snapshot(); strings.Join(stepNames(reports, "dep-7"), ",") != "rollback,supervisor" {
		t.Fatalf("steps after the supervisor's result: %v", stepNames(reports, "dep-7"))
	}
}

func TestTrialStartReported(t *testing.T) {
	srv := &ckServer{t: t}
	a := newCkAgent(t, srv)
	started := time.Now().Add(-time.Second).UTC()
	if err := a.home.WriteActive(home.Active{Current: "1.4.0", Previous: "1.3.0",
		Trial: &home.Trial{Version: "1.4.0", Order: "dep-3", Started: started}}); err != nil {
		t.Fatal(err)
	}
	a.run(t, a.checkinOpts(), 10*time.Second, func() bool {
		_, _, reports := srv.snapshot()
		return len(reports) > 0
	})
	_, _, reports := srv.snapshot()
	var found bool
	for _, r := range reports {
		if r.OrderID == "dep-3" && r.Phase == protocol.StateWatching && len(r.Steps) == 1 && r.Steps[0].Name == "start" && r.Steps[0].At.Equal(started) {
			found = true
		}
	}
	if !found {
		t.Fatalf("no watching report for the trial: %+v", reports)
	}
}

func TestRefusedOrderReportsFailure(t *testing.T) {
	srv := &ckServer{t: t}
	var once sync.Once
	srv.checkin = func(n int, cred string, req protocol.CheckinRequest) (int, any) {
		var resp protocol.CheckinResponse
		once.Do(func() {
			resp.Orders = []protocol.Order{{ID: "dep-2", Kind: protocol.OrderUpgrade, Version: "1.5.0", PackURL: "http://x/v1/packs/1.5.0"}}
		})
		time.Sleep(10 * time.Millisecond)
		return 200, resp
	}
	a := newCkAgent(t, srv)
	a.upd.prepareErr = fmt.Errorf("verify manifest: %w", pack.ErrBadSignature)
	a.run(t, a.checkinOpts(), 10*time.Second, srv.reported("dep-2"))
	_, _, reports := srv.snapshot()
	e := endOf(reports, "dep-2")
	if e == nil || e.Outcome != protocol.EndFailed || !strings.Contains(e.Reason, "verify manifest") {
		t.Fatalf("end %+v, want failed with the updater's reason", e)
	}
	if len(a.upd.prepared) != 1 {
		t.Fatalf("prepared %d times, want 1", len(a.upd.prepared))
	}
}

func TestTransientOrderFailureResumes(t *testing.T) {
	srv := &ckServer{t: t}
	srv.checkin = func(n int, cred string, req protocol.CheckinRequest) (int, any) {
		time.Sleep(5 * time.Millisecond)
		return 200, protocol.CheckinResponse{Orders: []protocol.Order{{ID: "dep-4", Kind: protocol.OrderUpgrade, Version: "1.5.0", PackURL: "http://x/v1/packs/1.5.0"}}}
	}
	a := newCkAgent(t, srv)
	a.upd.prepareErr = errors.New("download: connection reset by peer")
	o := a.checkinOpts()
	o.OrderAttempts = 3
	a.run(t, o, 10*time.Second, srv.reported("dep-4"))
	_, _, reports := srv.snapshot()
	if len(a.upd.prepared) != 3 {
		t.Fatalf("prepared %d times, want 3 (resumed, then given up)", len(a.upd.prepared))
	}
	e := endOf(reports, "dep-4")
	if e == nil || e.Outcome != protocol.EndFailed || !strings.Contains(e.Reason, "after 3 attempts") {
		t.Fatalf("end %+v", e)
	}
}

func TestCancelledOrderStops(t *testing.T) {
	for _, tt := range []struct {
		name string
		code int
		body any
	}{
		{"cancelled", 200, protocol.ReportResponse{State: protocol.StateCancelled, Cancelled: true}},
		{"unknown to the server", 404, protocol.Error{Error: "no such order", Code: protocol.CodeNotFound}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := &ckServer{t: t}
			srv.checkin = func(n int, cred string, req protocol.CheckinRequest) (int, any) {
				time.Sleep(5 * time.Millisecond)
				return 200, protocol.CheckinResponse{Orders: []protocol.Order{{ID: "dep-5", Kind: protocol.OrderUpgrade, Version: "1.5.0", PackURL: "http://x/v1/packs/1.5.0"}}}
			}
			srv.report = func(req protocol.ReportRequest) (int, any) { return tt.code, tt.body }
			a := newCkAgent(t, srv)
			a.upd.block = make(chan struct{})
			met := false
			err := a.run(t, a.checkinOpts(), 10*time.Second, func() bool {
				// The order stopped, and was delivered several times since.
				_, checkins, _ := srv.snapshot()
				a.upd.mu.Lock()
				defer a.upd.mu.Unlock()
				met = a.upd.aborted == 1 && len(checkins) > 5
				return met
			})
			if err != nil || !met {
				t.Fatalf("Run: %v; order stopped: %v", err, met)
			}
			a.upd.mu.Lock()
			defer a.upd.mu.Unlock()
			if len(a.upd.prepared) != 1 {
				t.Fatalf("prepared %d times, want 1: a stopped order is not run again", len(a.upd.prepared))
			}
		})
	}
}

func TestCleanupOrder(t *testing.T) {
	srv := &ckServer{t: t}
	srv.checkin = func(n int, cred string, req protocol.CheckinRequest) (int, any) {
		time.Sleep(5 * time.Millisecond)
		return 200, protocol.CheckinResponse{Orders: []protocol.Order{{ID: "c-1", Kind: protocol.OrderCleanup, Keep: []string{"1.4.0", "1.3.0"}}}}
	}
	a := newCkAgent(t, srv)
	a.run(t, a.checkinOpts(), 10*time.Second, srv.reported("c-1"))
	_, _, reports := srv.snapshot()
	if e := endOf(reports, "c-1"); e == nil || e.Outcome != protocol.EndSucceeded {
		t.Fatalf("end %+v", e)
	}
	if a.upd.cleaned != 1 {
		t.Fatalf("cleaned %d times, want once", a.upd.cleaned)
	}
}

func TestReportsSurviveServerOutage(t *testing.T) {
	srv := &ckServer{t: t}
	var once sync.Once
	srv.checkin = func(n int, cred string, req protocol.CheckinRequest) (int, any) {
		var resp protocol.CheckinResponse
		once.Do(func() {
			resp.Orders = []protocol.Order{{ID: "dep-6", Kind: protocol.OrderUpgrade, Version: "1.5.0", PackURL: "http://x/v1/packs/1.5.0"}}
		})
		return 200, resp
	}
	var fails int
	srv.report = func(req protocol.ReportRequest) (int, any) {
		if fails < 3 {
			fails++
			return 503, protocol.Error{Error: "restarting", Code: protocol.CodeUnavailable}
		}
		return 200, protocol.ReportResponse{State: "ok"}
	}
	a := newCkAgent(t, srv)
	a.run(t, a.checkinOpts(), 10*time.Second, nil)
	_, _, reports := srv.snapshot()
	var delivered []string
	for _, r := range reports[3:] {
		for _, s := range r.Steps {
			delivered = append(delivered, s.Name)
		}
	}
	got := strings.Join(delivered, ",")
	if !strings.HasPrefix(got, "order,") || !strings.HasSuffix(got, "switch,exit") {
		t.Fatalf("steps delivered after the outage: %s", got)
	}
}

func TestOversizeAnswerRefused(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"orders":[],"x":"`))
		w.Write([]byte(strings.Repeat("a", maxServerResponse)))
		w.Write([]byte(`"}`))
	}))
	defer hs.Close()
	cl, _ := NewClient(ClientOptions{Server: hs.URL})
	_, err := cl.Checkin(context.Background(), "c", protocol.CheckinRequest{}, time.Second)
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("error %v", err)
	}
}

func TestServerErrorSentinels(t *testing.T) {
	tests := []struct {
		status int
		code   string
		want   error
	}{
		{409, protocol.CodeIdentityCloned, ErrCloned},
		{401, protocol.CodeAgentRevoked, ErrRevoked},
		{401, protocol.CodeUnauthorized, ErrRevoked},
		{401, protocol.CodeEnrollToken, ErrEnrollRefused},
		{426, protocol.CodeProtocol, ErrProtocol},
		{404, protocol.CodeNotFound, ErrOrderGone},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			err := error(&ServerError{Status: tt.status, Code: tt.code, Message: "m"})
			if !errors.Is(err, tt.want) {
				t.Fatalf("%v is not %v", err, tt.want)
			}
			if Transient(err) {
				t.Fatalf("%v counted as transient", err)
			}
		})
	}
	if !Transient(&ServerError{Status: 503}) {
		t.Fatal("503 not transient")
	}
}

func TestRepeatedOrderNotRerunDuringOrAfterTrial(t *testing.T) {
	srv := &ckServer{t: t}
	srv.checkin = func(n int, cred string, req protocol.CheckinRequest) (int, any) {
		time.Sleep(5 * time.Millisecond)
		return 200, protocol.CheckinResponse{Orders: []protocol.Order{{ID: "dep-8", Kind: protocol.OrderUpgrade, Version: "1.4.0", PackURL: "http://x/v1/packs/1.4.0"}}}
	}
	a := newCkAgent(t, srv)
	if err := a.home.WriteActive(home.Active{Current: "1.4.0", Previous: "1.3.0",
		Trial: &home.Trial{Version: "1.4.0", Order: "dep-8", Started: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if err := a.run(t, a.checkinOpts(), 10*time.Second, srv.checkedIn(5)); err != nil {
		t.Fatalf("Run during the trial: %v", err)
	}
	if len(a.upd.prepared) != 0 {
		t.Fatalf("the order was run again %d times while its version was under watch", len(a.upd.prepared))
	}
	// The server answers at once while it repeats the order: the agent
	// paces itself (BusyPoll 30ms: at least 15ms between check-ins).
	_, checkins, _ := srv.snapshot()
	for i := 2; i < len(checkins); i++ {
		if gap := checkins[i].At.Sub(checkins[i-1].At); gap < 15*time.Millisecond {
			t.Errorf("check-ins %d and %d %v apart while the order is under watch", i-1, i, gap)
		}
	}
	// The supervisor rolls the trial back: the repeated order must not
	// upgrade again; the rollback is reported.
	a.home.WriteActive(home.Active{Current: "1.3.0"})
	a.home.WriteResult(home.Result{Outcome: home.OutcomeRolledBack, Version: "1.4.0", Previous: "1.3.0", Reason: "crashed", Order: "dep-8", At: time.Now()})
	_, checkins, _ = srv.snapshot()
	if err := a.run(t, a.checkinOpts(), 10*time.Second, srv.checkedIn(len(checkins)+5)); err != nil {
		t.Fatalf("Run after the rollback: %v", err)
	}
	if len(a.upd.prepared) != 0 {
		t.Fatalf("a rolled-back order was run again %d times", len(a.upd.prepared))
	}
	_, checkins, reports := srv.snapshot()
	if names := strings.Join(stepNames(reports, "dep-8"), ","); names != "start,rollback" {
		t.Fatalf("steps %v, want the trial's start, then the rollback", names)
	}
	if lr := checkins[len(checkins)-1].Req.Status.LastResult; lr == nil || lr.Outcome != protocol.TrialRolledBack || lr.OrderID != "dep-8" {
		t.Fatalf("last_result %+v", lr)
	}
}

func TestAdjustStatus(t *testing.T) {
	h := home.New(t.TempDir())
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	d, err := New(Options{Home: h, Config: &config.Config{}, Updater: &ckUpdater{}, Version: "1.5.0"})
	if err != nil {
		t.Fatal(err)
	}
	c := NewCheckin(CheckinOptions{Now: func() time.Time { return now }})
	os.MkdirAll(h.VersionDir("1.5.0"), 0o755)
	staged := h.StagedSupervisor("1.5.0")
	committed := func(at time.Time, sup *protocol.SupervisorResult) *protocol.TrialResult {
		return &protocol.TrialResult{Outcome: protocol.TrialCommitted, Version: "1.5.0", OrderID: "d-1", At: at, Supervisor: sup}
	}
	tests := []struct {
		name       string
		staged     bool
		st         protocol.Status
		wantHeld   bool
		wantSupVer string
	}{
		{name: "self-upgrade pending", staged: true, wantHeld: true, wantSupVer: "1.4.0",
			st: protocol.Status{Supervised: true, SupervisorVersion: "1.4.0", LastResult: committed(now.Add(-2*time.Second), nil)}},
		{name: "no staged supervisor", wantSupVer: "1.4.0",
			st: protocol.Status{Supervised: true, SupervisorVersion: "1.4.0", LastResult: committed(now.Add(-2*time.Second), nil)}},
		{name: "waited long enough", staged: true, wantSupVer: "1.4.0",
			st: protocol.Status{Supervised: true, SupervisorVersion: "1.4.0", LastResult: committed(now.Add(-selfUpgradeWait), nil)}},
		{name: "supervisor already at the version", staged: true, wantSupVer: "1.5.0",
			st: protocol.Status{Supervised: true, SupervisorVersion: "1.5.0", LastResult: committed(now, nil)}},
		{name: "self-upgrade done", staged: true, wantSupVer: "1.5.0",
			st: protocol.Status{Supervised: true, SupervisorVersion: "1.4.0",
				LastResult: committed(now, &protocol.SupervisorResult{From: "1.4.0", To: "1.5.0", Upgraded: true})}},
		{name: "rolled back", staged: true, wantSupVer: "1.4.0",
			st: protocol.Status{Supervised: true, SupervisorVersion: "1.4.0",
				LastResult: &protocol.TrialResult{Outcome: protocol.TrialRolledBack, Version: "1.6.0", At: now}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(staged)
			if tt.staged {
				os.WriteFile(staged, []byte("x"), 0o755)
			}
			st := tt.st
			until := c.adjustStatus(d, &st)
			if held := st.LastResult == nil; held != tt.wantHeld || held != !until.IsZero() {
				t.Fatalf("held %v until %v, want held %v", held, until, tt.wantHeld)
			}
			if st.SupervisorVersion != tt.wantSupVer {
				t.Fatalf("supervisor version %q, want %q", st.SupervisorVersion, tt.wantSupVer)
			}
		})
	}
}

func TestCheckUpgradeOrder(t *testing.T) {
	for _, tt := range []struct {
		o  protocol.Order
		ok bool
	}{
		{protocol.Order{ID: "d", Version: "1.5.0", PackURL: "https://s:8443/v1/packs/1.5.0"}, true},
		{protocol.Order{ID: "d", Version: "", PackURL: "https://s/v1/packs/x"}, false},
		{protocol.Order{ID: "d", Version: "../1", PackURL: "https://s/v1/packs/x"}, false},
		{protocol.Order{ID: "d", Version: "1.5.0", PackURL: ""}, false},
		{protocol.Order{ID: "d", Version: "1.5.0", PackURL: "file:///etc/passwd"}, false},
	} {
		if err := checkUpgradeOrder(tt.o); (err == nil) != tt.ok {
			t.Errorf("checkUpgradeOrder(%+v) = %v", tt.o, err)
		}
	}
}

// TestWorkloadsInCheckinAndTrialReport: the check-in carries the
// workloads of state/workloads.json (bounded), the trial result names the
// workload that failed, and the report of the trial's end carries the
// trial's steps from result.json before the rollback.
func TestWorkloadsInCheckinAndTrialReport(t *testing.T) {
	srv := &ckServer{t: t}
	a := newCkAgent(t, srv)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var ws []home.WorkloadStatus
	for i := range protocol.MaxWorkloads + 4 {
		ws = append(ws, home.WorkloadStatus{Name: fmt.Sprintf("w%02d", i), Version: "1.4.0", State: home.WorkloadReady, Restarts: i, Since: at})
	}
	ws[0] = home.WorkloadStatus{Name: "exporter", Version: "1.4.0", State: home.WorkloadCrashed, Restarts: 3,
		LastExit: "exit status 3", Reason: "\x1b]0;owned\a" + strings.Repeat("r", 5000), Since: at}
	// What the server would refuse is left out rather than sent.
	ws[1].Name, ws[2].State, ws[3].Version = "../x", "exploded", "1.4.0/../.."
	if err := a.home.WriteWorkloadState(home.WorkloadState{Supervisor: 1, Updated: at, Workloads: ws, AgentRestarts: 4}); err != nil {
		t.Fatal(err)
	}
	if err := a.home.WriteResult(home.Result{Outcome: home.OutcomeRolledBack, Version: "1.5.0", Previous: "1.4.0",
		Reason: "workload exporter did not pass its ready check within 30s", Order: "dep-9", At: at.Add(time.Minute),
		Workload: "exporter", WorkloadLogs: "logs/workload-exporter-1.5.0.log",
		Steps: []home.Step{
			{At: at, Name: "start", Detail: "workload exporter started (pid 42)"},
			{At: at.Add(time.Second), Name: "start", Detail: "molt-agent 1.5.0 started"},
		}}); err != nil {
		t.Fatal(err)
	}
	a.run(t, a.checkinOpts(), 10*time.Second, srv.checkedIn(1))
	_, checkins, reports := srv.snapshot()
	st := checkins[0].Req.Status
	if len(st.Workloads) != protocol.MaxWorkloads {
		t.Fatalf("check-in carries %d workloads, want %d", len(st.Workloads), protocol.MaxWorkloads)
	}
	if st.AgentRestarts != 4 {
		t.Errorf("agent_restarts %d, want the supervisor's 4", st.AgentRestarts)
	}
	w := st.Workloads[0]
	if w.Name != "exporter" || w.State != protocol.WorkloadCrashed || w.Restarts != 3 || w.LastExit != "exit status 3" ||
		w.Version != "1.4.0" || len(w.Reason) != 1024 || !strings.HasPrefix(w.Reason, " ]0;owned rrr") || !w.Since.Equal(at) {
		t.Errorf("workload %+v (reason %d bytes)", w, len(w.Reason))
	}
	for _, w := range st.Workloads {
		if w.Name == "../x" || w.State == "exploded" || w.Version != "1.4.0" {
			t.Errorf("a malformed entry was sent: %+v", w)
		}
	}
	if lr := st.LastResult; lr == nil || lr.Workload != "exporter" || lr.WorkloadLogs != "logs/workload-exporter-1.5.0.log" {
		t.Errorf("last_result %+v, want workload exporter", lr)
	}
	if names := strings.Join(stepNames(reports, "dep-9"), ","); names != "start,start,rollback" {
		t.Fatalf("steps %s, want the trial's two starts then the rollback", names)
	}
	steps := reports[0].Steps
	if steps[0].Detail != "workload exporter started (pid 42)" || !steps[0].At.Equal(at) {
		t.Errorf("first step %+v", steps[0])
	}
	if !strings.Contains(steps[2].Detail, "logs/workload-exporter-1.5.0.log") {
		t.Errorf("rollback step %q does not say where the workload's output is", steps[2].Detail)
	}
}
