package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/e2etest/gobuild"
	"github.com/moltfleet/molt/protocol"
)

// buildMolt builds cmd/molt once per test run, into moltDir, which
// TestMain removes.
var buildMolt = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "molt-server-test-")
	if err != nil {
		return "", err
	}
	moltDir = dir
	bin := filepath.Join(dir, "molt")
	_, err = gobuild.Build(bin, gobuild.Options{
		Pkgs:    []string{"github.com/moltfleet/molt/cmd/molt"},
		LDFlags: "-X github.com/moltfleet/molt/internal/buildinfo.Version=9.9.9-test",
	})
	return bin, err
})

// procServer is a real molt serve process.
type procServer struct {
	t    testing.TB
	bin  string
	data string
	addr string
	args []string
	cmd  *exec.Cmd
	url  string
	cli  *http.Client
	tok  string
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startProc(t testing.TB, data, addr string, extra ...string) *procServer {
	t.Helper()
	bin, err := buildMolt()
	if err != nil {
		t.Fatalf("build molt: %v", err)
	}
	key, _ := testKey()
	p := &procServer{t: t, bin: bin, data: data, addr: addr,
		args: append([]string{"serve", "--dev", "--data", data, "--listen", addr, "--trusted-key", key.String(), "--log-file", filepath.Join(data, "server.log")}, extra...)}
	p.start()
	// A test that fails midway leaves no server behind.
	t.Cleanup(func() {
		if p.cmd != nil && p.cmd.ProcessState == nil {
			p.kill9()
		}
	})
	return p
}

func (p *procServer) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.bin, p.args...)
	out, _ := p.cmd.StdoutPipe()
	// A Go runtime's dump (a crash, or SIGQUIT from a test that gave up)
	// is kept beside the log.
	if ef, err := os.OpenFile(filepath.Join(p.data, "server.stderr"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
		p.cmd.Stderr = ef
		defer ef.Close()
	} else {
		p.cmd.Stderr = io.Discard
	}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				listening <- u
			}
		}
	}()
	select {
	case p.url = <-listening:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		p.t.Fatal("molt serve did not start listening")
	}
	ca, err := os.ReadFile(filepath.Join(p.data, "tls", "ca.pem"))
	if err != nil {
		p.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	p.cli = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 100, ForceAttemptHTTP2: true}}
	tok, err := os.ReadFile(filepath.Join(p.data, "admin.token"))
	if err != nil {
		p.t.Fatal(err)
	}
	p.tok = strings.TrimSpace(string(tok))
}

func (p *procServer) kill9() {
	_ = p.cmd.Process.Kill() // SIGKILL on Unix: no shutdown code runs
	_ = p.cmd.Wait()
}

func (p *procServer) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// call does one request; err is set for transport errors and non-2xx.
func (p *procServer) call(ctx context.Context, method, path, token string, body, out any) error {
	var rd io.Reader
	if b, ok := body.([]byte); ok {
		rd = bytes.NewReader(b)
	} else if body != nil {
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.url+path, rd)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := p.cli.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// procAgent is a simulated agent speaking real HTTPS: it checks in, plays
// every upgrade order through to a committed trial, and retries with a
// short pause while the server is away.
type procAgent struct {
	id, cred string
	st       protocol.Status
	mu       sync.Mutex
	acked    map[string]string // order id -> last state the server acknowledged
	fail     bool              // reports every upgrade order failed
}

func (a *procAgent) loop(ctx context.Context, p func() *procServer) {
	for ctx.Err() == nil {
		var resp protocol.CheckinResponse
		a.mu.Lock()
		st := a.st
		a.mu.Unlock()
		if err := p().call(ctx, "POST", "/v1/agent/checkin", a.cred, protocol.CheckinRequest{Status: st}, &resp); err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if st.LastResult != nil {
			a.mu.Lock()
			a.acked[st.LastResult.OrderID] = protocol.StateSucceeded
			a.mu.Unlock()
		}
		for _, o := range resp.Orders {
			if o.Kind == protocol.OrderCleanup {
				_ = p().call(ctx, "POST", "/v1/agent/report", a.cred, protocol.ReportRequest{OrderID: o.ID, End: &protocol.End{Outcome: protocol.EndSucceeded}}, nil)
				continue
			}
			if o.Version == st.Version {
				continue
			}
			a.mu.Lock()
			fail := a.fail
			a.mu.Unlock()
			if fail {
				_ = p().call(ctx, "POST", "/v1/agent/report", a.cred, protocol.ReportRequest{OrderID: o.ID, End: &protocol.End{Outcome: protocol.EndFailed, Reason: "simulated failure"}}, nil)
				continue
			}
			ok := true
			for _, ph := range []string{protocol.StateDownloading, protocol.StateStaged, protocol.StateRestarting} {
				var rr protocol.ReportResponse
				err := p().call(ctx, "POST", "/v1/agent/report", a.cred, protocol.ReportRequest{OrderID: o.ID, Phase: ph,
					Steps: []protocol.Step{{At: time.Now().UTC(), Name: ph}}}, &rr)
				if err != nil {
					ok = false
					break
				}
				a.mu.Lock()
				a.acked[o.ID] = rr.State
				a.mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
			if ok {
				a.mu.Lock()
				prev := a.st.Version
				a.st.Version = o.Version
				a.st.LastResult = &protocol.TrialResult{Outcome: protocol.TrialCommitted, Version: o.Version, Previous: prev, OrderID: o.ID, At: time.Now().UTC()}
				a.mu.Unlock()
			}
		}
	}
}

// TestKill9MidRun runs a real molt serve, kills it with SIGKILL in the
// middle of a run over simulated agents, restarts it, and checks that the
// run completes and nothing the server acknowledged was lost.
func TestKill9MidRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs molt serve")
	}
	data := t.TempDir()
	addr := freeAddr(t)
	var mu sync.Mutex
	srv := startProc(t, data, addr, "--poll-wait", "300ms")
	cur := func() *procServer { mu.Lock(); defer mu.Unlock(); return srv }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, sk := testKey()
	for _, v := range []string{"1.0.0", "2.0.0"} {
		if err := srv.call(ctx, "POST", "/v1/releases", srv.tok, makePack(t, sk, v, "", "linux/amd64"), nil); err != nil {
			t.Fatal(err)
		}
	}
	var et protocol.EnrollTokenCreated
	if err := srv.call(ctx, "POST", "/v1/enroll-tokens", srv.tok, protocol.EnrollTokenRequest{Uses: 100}, &et); err != nil {
		t.Fatal(err)
	}
	const n = 24
	agents := make([]*procAgent, n)
	for i := range agents {
		name := fmt.Sprintf("host-%02d", i)
		req := protocol.EnrollRequest{ProtocolVersion: protocol.Version, EnrollmentToken: et.Secret, Name: name, Platform: "linux/amd64", OSFamily: "linux", Version: "1.0.0", Supervised: true, Fingerprint: "fp-" + name}
		var er protocol.EnrollResponse
		if err := srv.call(ctx, "POST", "/v1/agent/enroll", "", req, &er); err != nil {
			t.Fatal(err)
		}
		agents[i] = &procAgent{id: er.AgentID, cred: er.Credential, acked: map[string]string{}, st: protocol.Status{ProtocolVersion: 1, Fingerprint: req.Fingerprint, Name: name,
			Platform: req.Platform, OSFamily: req.OSFamily, Version: "1.0.0", Supervised: true}}
	}
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Add(1)
		go func() { defer wg.Done(); a.loop(ctx, cur) }()
	}
	defer wg.Wait()
	defer cancel()
	var run protocol.Run
	if err := srv.call(ctx, "POST", "/v1/runs", srv.tok, protocol.RunRequest{Text: "kill test", Selection: protocol.Selection{All: true}, Target: "2.0.0", MaxConcurrent: 4}, &run); err != nil {
		t.Fatal(err)
	}
	waitRun := func(cond func(protocol.Run) bool, what string) protocol.Run {
		deadline := time.Now().Add(90 * time.Second)
		var last protocol.Run
		defer func() {
			if t.Failed() {
				var deps protocol.Deployments
				_ = cur().call(ctx, "GET", "/v1/deployments?run="+run.ID+"&limit=100", cur().tok, nil, &deps)
				b, _ := os.ReadFile(filepath.Join(data, "server.log"))
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				t.Logf("run: %s %+v\ndeployments: %+v\nserver log (end):\n%s", last.Status, last.Counts, deps.Deployments, strings.Join(lines[max(0, len(lines)-60):], "\n"))
				// Where the server was: its goroutines.
				if p := cur(); p.cmd.Process != nil && p.cmd.Process.Signal(syscall.SIGQUIT) == nil {
					time.Sleep(2 * time.Second)
					dump, _ := os.ReadFile(filepath.Join(data, "server.stderr"))
					t.Logf("goroutines of molt serve:\n%s", dump)
				}
			}
		}()
		for time.Now().Before(deadline) {
			var r protocol.Run
			if err := cur().call(ctx, "GET", "/v1/runs/"+run.ID, cur().tok, nil, &r); err == nil {
				last = r
				if r.Total > 0 && inProgress(r) > r.MaxConcurrent {
					t.Errorf("%d in progress, above max-concurrent %d", inProgress(r), r.MaxConcurrent)
				}
				if cond(r) {
					return r
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("timed out waiting for %s", what)
		return protocol.Run{}
	}
	waitRun(func(r protocol.Run) bool { return r.Counts[protocol.StateSucceeded] >= n/3 }, "a third of the run")
	var before protocol.Events
	if err := srv.call(ctx, "GET", "/v1/events?after_id=0&limit=1000", srv.tok, nil, &before); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	srv.kill9()
	snapshot := map[string]string{}
	for _, a := range agents {
		a.mu.Lock()
		for k, v := range a.acked {
			snapshot[k] = v
		}
		a.mu.Unlock()
	}
	time.Sleep(300 * time.Millisecond) // agents find the server away
	srv.start()
	mu.Unlock()
	// Everything acknowledged before the kill is there.
	var after protocol.Events
	if err := srv.call(ctx, "GET", "/v1/events?after_id=0&limit=1000", srv.tok, nil, &after); err != nil {
		t.Fatal(err)
	}
	if len(after.Events) < len(before.Events) {
		t.Fatalf("%d events before the kill, %d after", len(before.Events), len(after.Events))
	}
	for i, ev := range before.Events {
		if got := after.Events[i]; got.Seq != ev.Seq || got.ID != ev.ID || got.Message != ev.Message {
			t.Fatalf("event %d changed across the kill: %+v -> %+v", ev.Seq, ev, got)
		}
	}
	for order, state := range snapshot {
		var rep protocol.DeploymentReport
		if err := srv.call(ctx, "GET", "/v1/deployments/"+order, srv.tok, nil, &rep); err != nil {
			t.Fatal(err)
		}
		if !protocol.Terminal(rep.Deployment.State) && protocol.PhaseRank(rep.Deployment.State) < protocol.PhaseRank(state) {
			t.Errorf("%s: acknowledged %s, after restart %s", order, state, rep.Deployment.State)
		}
		if state == protocol.StateSucceeded && rep.Deployment.State != protocol.StateSucceeded {
			t.Errorf("%s: acknowledged success, after restart %s", order, rep.Deployment.State)
		}
	}
	r := waitRun(func(r protocol.Run) bool { return r.Status != protocol.RunRunning }, "the run to end")
	if r.Status != protocol.RunEndedOK || r.Counts[protocol.StateSucceeded] != n {
		t.Fatalf("run after restart: %s %+v", r.Status, r.Counts)
	}
	cancel()
	wg.Wait()
	srv.stop()
	if code := srv.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("molt serve exited %d after SIGINT", code)
	}
}

func TestServeWithoutCertificateSaysWhatToConfigure(t *testing.T) {
	if testing.Short() {
		t.Skip("builds molt")
	}
	bin, err := buildMolt()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--data", t.TempDir(), "--listen", "127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "tls_cert") || !strings.Contains(string(out), "--dev") {
		t.Fatalf("exit %d (%v): %s", cmd.ProcessState.ExitCode(), err, out)
	}
}

func TestSecondServerOnOneDataDirectoryIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs molt serve")
	}
	data := t.TempDir()
	p := startProc(t, data, "127.0.0.1:0")
	defer p.stop()
	cmd := exec.Command(p.bin, "serve", "--dev", "--data", data, "--listen", "127.0.0.1:0")
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "in use by another molt serve") {
		t.Fatalf("exit %d: %s", cmd.ProcessState.ExitCode(), out)
	}
}
