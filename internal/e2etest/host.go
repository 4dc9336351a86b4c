package e2etest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/buildinfo"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/protocol"
)

// HostOptions describe one agent home.
type HostOptions struct {
	// Name of the agent (agent.yaml name:) and of its directory.
	Name string
	// Version installed in the home (molt-agent install from the
	// binaries of that version: a "golden image").
	Version string
	// Supervised hosts run `molt-supervisor run`; the others run
	// `molt-agent run` directly, as by hand.
	Supervised bool
	// EnrollToken goes into agent.yaml (empty: none).
	EnrollToken string
	Labels      map[string]string
	Cluster     string
	// Trial settings of agent.yaml's supervisor: section; defaults keep
	// tests quick: ready_timeout 30s, watch 2s, crash_budget 1,
	// stop_grace 5s.
	ReadyTimeout, Watch, StopGrace string
	CrashBudget                    int
	// ServerURL replaces the server's URL in agent.yaml (a proxy in
	// front of it); the server's CA still applies.
	ServerURL string
	// Env is added to the environment of the host's process (and so of
	// the agents a supervisor starts).
	Env []string
	// Wrap runs the host's process under another command, which ends by
	// running its arguments (unshare(1) for a mount namespace).
	Wrap []string
	// Pack, when set, is a signed pack (of Version) to install from
	// (`molt-agent install --pack P --key <Key>`) instead of the
	// binaries: its workloads are installed with it.
	Pack string
}

// Host is one agent home and the process that runs it (its supervisor, or
// the agent itself when unsupervised).
type Host struct {
	tb   testing.TB
	o    HostOptions
	srv  *Server
	Name string
	Home home.Home
	Dir  string // the home's directory

	mu   sync.Mutex
	proc *proc
	logs []string
	n    int
}

// NewHost lays out a home for s with `molt-agent install --no-service`
// at o.Version and writes its agent.yaml; it does not start it. The host
// is stopped when the test ends; its logs are printed if the test failed.
func (s *Server) NewHost(o HostOptions) *Host {
	tb := s.tb
	tb.Helper()
	if o.ReadyTimeout == "" {
		o.ReadyTimeout = "30s"
	}
	if o.Watch == "" {
		o.Watch = "2s"
	}
	if o.StopGrace == "" {
		o.StopGrace = "5s"
	}
	if o.CrashBudget == 0 {
		o.CrashBudget = 1
	}
	dir := filepath.Join(s.Dir, "hosts", o.Name)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		tb.Fatal(err)
	}
	h := &Host{tb: tb, o: o, srv: s, Name: o.Name, Home: home.New(dir), Dir: dir}
	cfg := dir + ".yaml"
	if err := os.WriteFile(cfg, []byte(h.config()), 0o600); err != nil {
		tb.Fatal(err)
	}
	bin := Binaries(tb, o.Version)
	args := []string{"install", "--home", dir, "--config", cfg, "--no-service"}
	if o.Pack != "" {
		pub, _ := Key(tb)
		args = append(args, "--pack", o.Pack, "--key", pub)
	}
	out, err := exec.Command(filepath.Join(bin, exe("molt-agent")), args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("molt-agent install %s: %v\n%s", o.Name, err, out)
	}
	tb.Cleanup(func() {
		h.Stop()
		if tb.Failed() {
			h.DumpLogs()
		}
	})
	return h
}

func (h *Host) config() string {
	pub, _ := Key(h.tb)
	var b strings.Builder
	url := h.srv.URL()
	if h.o.ServerURL != "" {
		url = h.o.ServerURL
	}
	fmt.Fprintf(&b, "server: %s\nca_file: %s\ntrusted_keys: [%s]\nname: %s\nlog_level: debug\n",
		url, h.srv.CAFile(), pub, h.o.Name)
	if h.o.EnrollToken != "" {
		fmt.Fprintf(&b, "enrollment_token: %q\n", h.o.EnrollToken)
	}
	if h.o.Cluster != "" {
		fmt.Fprintf(&b, "cluster: %s\n", h.o.Cluster)
	}
	if len(h.o.Labels) > 0 {
		b.WriteString("labels:\n")
		keys := make([]string, 0, len(h.o.Labels))
		for k := range h.o.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "  %s: %q\n", k, h.o.Labels[k])
		}
	}
	fmt.Fprintf(&b, "supervisor:\n  ready_timeout: %s\n  watch: %s\n  crash_budget: %d\n  stop_grace: %s\n",
		h.o.ReadyTimeout, h.o.Watch, h.o.CrashBudget, h.o.StopGrace)
	return b.String()
}

// Start runs the host: `bin/molt-supervisor run --home H` when supervised,
// else `versions/<current>/molt-agent run --home H` (the version
// active.json names now).
func (h *Host) Start() {
	h.tb.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.proc != nil && !h.proc.exited() {
		h.tb.Fatalf("host %s: already running", h.Name)
	}
	h.n++
	what := "supervisor"
	argv := []string{h.Home.SupervisorBinary(), "run", "--home", h.Dir}
	if !h.o.Supervised {
		what = "agent"
		argv = []string{h.Home.AgentBinary(h.Current()), "run", "--home", h.Dir}
	}
	argv = append(append([]string(nil), h.o.Wrap...), argv...)
	log := filepath.Join(filepath.Dir(h.Dir), fmt.Sprintf("%s-%s-%d.log", h.Name, what, h.n))
	h.logs = append(h.logs, log)
	var env []string
	if len(h.o.Env) > 0 {
		env = append(cleanEnv(), h.o.Env...)
	}
	p, err := startProc(log, env, argv...)
	if err != nil {
		h.tb.Fatalf("host %s: %v", h.Name, err)
	}
	h.proc = p
}

// Running reports whether the host's process (supervisor or unsupervised
// agent) runs.
func (h *Host) Running() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.proc != nil && !h.proc.exited()
}

// WaitExit waits up to d for the host's process to exit by itself and
// returns its exit code (an unsupervised agent exits 11 after a switch).
func (h *Host) WaitExit(d time.Duration) int {
	h.tb.Helper()
	h.mu.Lock()
	p := h.proc
	h.mu.Unlock()
	if p == nil {
		h.tb.Fatalf("host %s: not started", h.Name)
	}
	if !p.wait(d) {
		h.tb.Fatalf("host %s: still running after %s", h.Name, d)
	}
	return p.exitCode()
}

// Stop stops the host gracefully: SIGTERM to its supervisor (which stops
// the agent) or to the unsupervised agent; after 20 s, SIGKILL to both.
func (h *Host) Stop() {
	h.mu.Lock()
	p := h.proc
	h.proc = nil
	h.mu.Unlock()
	if p == nil {
		return
	}
	p.stop(20 * time.Second)
	h.killAgent()
}

// Kill9 kills the supervisor (and its process group) and the agent with
// SIGKILL, as a power cut would.
func (h *Host) Kill9() {
	h.mu.Lock()
	p := h.proc
	h.proc = nil
	h.mu.Unlock()
	if p != nil {
		p.kill9()
	}
	h.killAgent()
}

// KillAgent kills only the agent process (SIGKILL); a supervisor restarts
// it. It returns the pid killed, 0 if no agent ran.
func (h *Host) KillAgent() int {
	return h.killAgent()
}

func (h *Host) killAgent() int {
	pid := h.AgentPID()
	if pid > 0 {
		kill(pid)
		deadline := time.Now().Add(10 * time.Second)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	return pid
}

// AgentPID is the pid in state/daemon.json when that process is alive,
// else 0.
func (h *Host) AgentPID() int {
	var d struct {
		PID int `json:"pid"`
	}
	b, err := os.ReadFile(filepath.Join(h.Home.StateDir(), "daemon.json"))
	if err != nil || json.Unmarshal(b, &d) != nil || !alive(d.PID) {
		return 0
	}
	return d.PID
}

// ID is the agent id the home enrolled with ("" before enrollment).
func (h *Host) ID() string {
	id, err := agent.ReadIdentity(h.Home)
	if err != nil || !id.Enrolled() {
		return ""
	}
	return id.ID
}

// Fingerprint is the machine fingerprint the home's identity was made on
// ("" before enrollment).
func (h *Host) Fingerprint() string {
	id, err := agent.ReadIdentity(h.Home)
	if err != nil || !id.Enrolled() {
		return ""
	}
	return id.Fingerprint
}

// WaitEnrolled waits until the home holds a server-issued identity and
// returns its agent id.
func (h *Host) WaitEnrolled(d time.Duration) string {
	h.tb.Helper()
	var id string
	Eventually(h.tb, d, h.Name+" enrolled", func() (bool, string) {
		id = h.ID()
		return id != "", "no credential in state/identity.json"
	})
	return id
}

// PreEnroll enrolls the home with the server without starting it, the way
// a host provisioned ahead of its first start is known to the server: the
// server has the agent, which never connected. It returns the agent id.
func (h *Host) PreEnroll(token string) string {
	tb := h.tb
	tb.Helper()
	c, err := agent.NewClient(agent.ClientOptions{Server: h.srv.URL(), CAFile: h.srv.CAFile()})
	if err != nil {
		tb.Fatal(err)
	}
	fp, err := agent.Fingerprint()
	if err != nil {
		fp = ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	host, _ := os.Hostname()
	resp, err := c.Enroll(ctx, protocol.EnrollRequest{
		ProtocolVersion: protocol.Version, EnrollmentToken: token, Name: h.Name, Hostname: host,
		Platform: buildinfo.Platform(), OSFamily: platform.OSFamily(), Version: h.o.Version,
		Supervised: h.o.Supervised, SupervisorVersion: supervisorVersionIf(h.o.Supervised, h.o.Version),
		Labels: h.o.Labels, Cluster: h.o.Cluster, Fingerprint: fp,
	})
	if err != nil {
		tb.Fatalf("pre-enroll %s: %v", h.Name, err)
	}
	now := time.Now().UTC()
	if err := agent.WriteIdentity(h.Home, agent.Identity{ID: resp.AgentID, Fingerprint: fp, Created: now,
		Credential: resp.Credential, Server: h.srv.URL(), EnrolledAt: now}); err != nil {
		tb.Fatal(err)
	}
	return resp.AgentID
}

func supervisorVersionIf(ok bool, v string) string {
	if ok {
		return v
	}
	return ""
}

// Clone copies the home as it is now, identity included (cp -a, as an
// image of the machine would), to a new host named name that runs wrapped
// in wrap (see HostOptions.Wrap). The clone is not started; it is stopped
// when the test ends.
func (h *Host) Clone(name string, wrap ...string) *Host {
	tb := h.tb
	tb.Helper()
	o := h.o
	o.Name, o.Wrap = name, wrap
	dir := filepath.Join(filepath.Dir(h.Dir), name)
	if out, err := exec.Command("cp", "-a", h.Dir, dir).CombinedOutput(); err != nil {
		tb.Fatalf("copy the home of %s: %v\n%s", h.Name, err, out)
	}
	c := &Host{tb: tb, o: o, srv: h.srv, Name: name, Home: home.New(dir), Dir: dir}
	tb.Cleanup(func() {
		c.Stop()
		if tb.Failed() {
			c.DumpLogs()
		}
	})
	return c
}

// Active reads state/active.json.
func (h *Host) Active() home.Active {
	h.tb.Helper()
	a, err := h.Home.ReadActive()
	if err != nil {
		h.tb.Fatalf("host %s: %v", h.Name, err)
	}
	return a
}

// Current is the version active.json names as current ("" if none).
func (h *Host) Current() string {
	a, err := h.Home.ReadActive()
	if err != nil {
		return ""
	}
	return a.Current
}

// Result reads state/result.json (ok false when there is none).
func (h *Host) Result() (home.Result, bool) {
	h.tb.Helper()
	r, ok, err := h.Home.ReadResult()
	if err != nil {
		h.tb.Fatalf("host %s: %v", h.Name, err)
	}
	return r, ok
}

// Versions lists versions/ (every directory, valid or not), sorted.
func (h *Host) Versions() []string {
	ents, err := os.ReadDir(h.Home.VersionsDir())
	if err != nil {
		return nil
	}
	var vs []string
	for _, e := range ents {
		if e.IsDir() {
			vs = append(vs, e.Name())
		}
	}
	sort.Strings(vs)
	return vs
}

// SupervisorVersion is what `bin/molt-supervisor version --json` says.
func (h *Host) SupervisorVersion() string {
	out, err := exec.Command(h.Home.SupervisorBinary(), "version", "--json").Output()
	if err != nil {
		return ""
	}
	var v struct {
		Version string `json:"version"`
	}
	_ = json.Unmarshal(out, &v)
	return v.Version
}

// AgentCLI runs `versions/<current>/molt-agent ARGS --home H` (status,
// hold, release, upgrade ...), at most 2 minutes.
func (h *Host) AgentCLI(args ...string) Result {
	h.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.Home.AgentBinary(h.Current()), append(args, "--home", h.Dir)...)
	cmd.Env = cleanEnv()
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := Result{Args: append([]string{"(molt-agent)"}, args...), Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		h.tb.Fatalf("molt-agent %v: %v", args, err)
	}
	return r
}

// LogFiles lists the files in the home's logs/ directory.
func (h *Host) LogFiles() []string {
	ents, _ := os.ReadDir(h.Home.LogsDir())
	var out []string
	for _, e := range ents {
		if !e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// DumpLogs logs the tails of the host's process logs and of the home's
// logs/ files.
func (h *Host) DumpLogs() {
	h.mu.Lock()
	logs := append([]string(nil), h.logs...)
	h.mu.Unlock()
	for _, f := range h.LogFiles() {
		logs = append(logs, filepath.Join(h.Home.LogsDir(), f))
	}
	for _, l := range logs {
		h.tb.Logf("--- host %s: %s (last lines)\n%s", h.Name, l, Tail(l, 40))
	}
}
