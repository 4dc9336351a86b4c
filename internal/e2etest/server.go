package e2etest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// ServerOptions configure a molt serve process.
type ServerOptions struct {
	// Version of the molt binary that serves and that the CLI runs
	// (required).
	Version string
	// PollSeconds is agents.poll-seconds (default 2: short long polls).
	PollSeconds int
	// OfflineAfter is agents.offline-after (default 5s).
	OfflineAfter string
	// Settings are more settings to set after the start (key -> value).
	Settings map[string]string
	// Env is added to molt serve's environment, at every start.
	Env []string
	// Store, when set, is a postgres:// URL: the server runs as a replica
	// on it (--store, --advertise its own address); see StartReplicas.
	Store string
	// Artifacts is --artifacts (an s3:// store; credentials go in Env).
	Artifacts string
	// ArtifactRedirect is --artifact-redirect (e.g. "15m": agents download
	// straight from the store).
	ArtifactRedirect string
	// KeepDefaults leaves every setting as a new server has it:
	// PollSeconds, OfflineAfter and Settings are not applied (for a test
	// that looks at the defaults and sets what it needs itself).
	KeepDefaults bool
}

// Server is a `molt serve --dev` process on a free loopback port, with its
// data directory, and the operator CLI configured for it.
type Server struct {
	tb   testing.TB
	o    ServerOptions
	bin  string // directory of molt
	Dir  string // the test's directory: data/, logs, cli config
	Data string
	Addr string

	// follower: a replica started after the first (StartReplicas), which
	// makes no admin token.
	follower bool

	mu   sync.Mutex
	proc *proc
	logs []string
	n    int
}

// StartServer starts molt serve and applies the options' settings. It is
// stopped (SIGTERM, then SIGKILL) when the test ends; its log is printed
// if the test failed.
func StartServer(tb testing.TB, o ServerOptions) *Server {
	tb.Helper()
	if o.PollSeconds == 0 {
		o.PollSeconds = 2
	}
	if o.OfflineAfter == "" {
		o.OfflineAfter = "5s"
	}
	dir := tb.TempDir()
	s := &Server{tb: tb, o: o, bin: Binaries(tb, o.Version), Dir: dir, Data: filepath.Join(dir, "data"), Addr: FreeAddr(tb)}
	tb.Cleanup(func() {
		if !tb.Failed() {
			s.Stop()
			return
		}
		// What the server was doing when the test gave up is in its
		// goroutines: a server that hangs shows where.
		s.quit()
		s.dumpLogs()
	})
	s.Start()
	if o.KeepDefaults {
		return s
	}
	s.OK("settings", "set", "agents.poll-seconds", fmt.Sprint(o.PollSeconds))
	s.OK("settings", "set", "agents.offline-after", o.OfflineAfter)
	for k, v := range o.Settings {
		s.OK("settings", "set", k, v)
	}
	return s
}

// FreeAddr returns a loopback address nobody listens on now.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// URL is the server's base URL.
func (s *Server) URL() string { return "https://" + s.Addr }

// CAFile is the dev CA agents and the CLI trust.
func (s *Server) CAFile() string { return filepath.Join(s.Data, "tls", "ca.pem") }

// TokenFile holds the admin token the server made on its first start.
func (s *Server) TokenFile() string { return filepath.Join(s.Data, "admin.token") }

// Start runs molt serve (again, on the same port and data) and waits until
// it answers /healthz over TLS.
func (s *Server) Start() {
	tb := s.tb
	tb.Helper()
	pub, _ := Key(tb)
	s.mu.Lock()
	s.n++
	log := filepath.Join(s.Dir, fmt.Sprintf("serve-%d.log", s.n))
	s.logs = append(s.logs, log)
	s.mu.Unlock()
	var env []string
	if len(s.o.Env) > 0 {
		env = append(cleanEnv(), s.o.Env...)
	}
	args := []string{"serve", "--dev", "--data", s.Data, "--listen", s.Addr, "--trusted-key", pub, "--log-level", "debug"}
	if s.o.Store != "" {
		args = append(args, "--store", s.o.Store, "--advertise", s.URL())
	}
	if s.o.Artifacts != "" {
		args = append(args, "--artifacts", s.o.Artifacts)
	}
	if s.o.ArtifactRedirect != "" {
		args = append(args, "--artifact-redirect", s.o.ArtifactRedirect)
	}
	p, err := startProc(log, env, append([]string{filepath.Join(s.bin, exe("molt"))}, args...)...)
	if err != nil {
		tb.Fatal(err)
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for !s.healthy() {
		if p.exited() {
			tb.Fatalf("molt serve exited: %v\n%s", p.err(), Tail(log, 40))
		}
		if time.Now().After(deadline) {
			tb.Fatalf("molt serve did not answer /healthz within 30s\n%s", Tail(log, 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Server) healthy() bool {
	pem, err := os.ReadFile(s.CAFile())
	if err != nil {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return false
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Timeout: time.Second, Transport: tr}
	resp, err := c.Get(s.URL() + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	if s.follower {
		// A replica that follows has no admin token of its own.
		return resp.StatusCode == http.StatusOK
	}
	_, err = os.Stat(s.TokenFile())
	return resp.StatusCode == http.StatusOK && err == nil
}

// Kill9 kills the server at once, without a chance to clean up.
func (s *Server) Kill9() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.kill9()
	}
}

// Stop stops the server gracefully (SIGTERM; SIGKILL after 10 s).
func (s *Server) Stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.stop(10 * time.Second)
	}
}

// Restart stops the server gracefully and starts it again.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	s.Start()
}

// quit stops the server with a dump of its goroutines in its log.
func (s *Server) quit() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.quit(10 * time.Second)
	}
}

func (s *Server) dumpLogs() {
	s.mu.Lock()
	logs := append([]string(nil), s.logs...)
	s.mu.Unlock()
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		text := string(b)
		stacks := ""
		if i := strings.Index(text, "SIGQUIT: quit"); i >= 0 {
			text, stacks = text[:i], text[i:]
		}
		s.tb.Logf("--- %s (last lines)\n%s", l, lastLines(text, 80))
		if stacks != "" {
			s.tb.Logf("--- %s: goroutines at the end\n%s", l, headLines(stacks, 1500))
		}
	}
}

func headLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Result is what one CLI invocation printed and its exit code.
type Result struct {
	Args           []string
	Stdout, Stderr string
	Code           int
}

func (r Result) String() string {
	return fmt.Sprintf("molt %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.Args, " "), r.Code, r.Stdout, r.Stderr)
}

// Env is the environment an operator's molt needs for this server.
func (s *Server) Env() []string {
	return append(cleanEnv(), "MOLT_SERVER="+s.URL(), "MOLT_CA="+s.CAFile(), "MOLT_TOKEN_FILE="+s.TokenFile(),
		"XDG_CONFIG_HOME="+filepath.Join(s.Dir, "cli-config"))
}

// MoltCmd is an exec.Cmd of the operator CLI against this server, for
// commands that run in the background (molt upgrade --wait, molt events
// --follow).
func (s *Server) MoltCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, exe("molt")), args...)
	cmd.Env = s.Env()
	return cmd
}

// Molt runs the operator CLI against this server (3 minutes at most, for
// molt upgrade --wait) and returns what it printed, whatever its exit
// code.
func (s *Server) Molt(args ...string) Result {
	s.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := s.MoltCmd(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := Result{Args: args, Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		s.tb.Fatalf("molt %v: %v", args, err)
	}
	return r
}

// OK runs the CLI and fails the test unless it exits 0.
func (s *Server) OK(args ...string) Result {
	s.tb.Helper()
	r := s.Molt(args...)
	if r.Code != 0 {
		s.tb.Fatalf("%s", r)
	}
	return r
}

// JSON runs the CLI with --json appended, fails the test unless it exits
// 0, and decodes its stdout into v.
func (s *Server) JSON(v any, args ...string) {
	s.tb.Helper()
	r := s.OK(append(args, "--json")...)
	if err := json.Unmarshal([]byte(r.Stdout), v); err != nil {
		s.tb.Fatalf("molt %v --json: %v\n%s", args, err, r.Stdout)
	}
}

// jsonOf is JSON into a new T.
func jsonOf[T any](s *Server, args ...string) T {
	s.tb.Helper()
	var v T
	s.JSON(&v, args...)
	return v
}

// EnrollToken creates an enrollment token good for uses enrollments and
// returns its secret.
func (s *Server) EnrollToken(uses int) string {
	s.tb.Helper()
	var et protocol.EnrollTokenCreated
	s.JSON(&et, "enroll-token", "create", "--uses", fmt.Sprint(uses), "--expires", "2h")
	if et.Secret == "" {
		s.tb.Fatalf("enroll-token create: no secret: %+v", et)
	}
	return et.Secret
}

// Import imports a pack as a release.
func (s *Server) Import(packFile string) {
	s.tb.Helper()
	s.OK("release", "import", packFile)
}

// Agents is `molt agents list --inactive --json`.
func (s *Server) Agents() []protocol.Agent {
	s.tb.Helper()
	return jsonOf[[]protocol.Agent](s, "agents", "list", "--inactive")
}

// Agent is `molt agents show ID --json`.
func (s *Server) Agent(id string) protocol.Agent {
	s.tb.Helper()
	return jsonOf[protocol.Agent](s, "agents", "show", id)
}

// Runs is `molt runs list --json`, newest first.
func (s *Server) Runs() []protocol.Run {
	s.tb.Helper()
	return jsonOf[[]protocol.Run](s, "runs", "list")
}

// RunReport is `molt runs report ID --json`.
func (s *Server) RunReport(id string) protocol.RunReport {
	s.tb.Helper()
	return jsonOf[protocol.RunReport](s, "runs", "report", id)
}

// History is `molt history [args] --json` (e.g. "--agent", id), newest
// first.
func (s *Server) History(args ...string) []protocol.Deployment {
	s.tb.Helper()
	return jsonOf[[]protocol.Deployment](s, append([]string{"history", "--limit", "1000"}, args...)...)
}

// DeployReport is `molt history show ID --json`.
func (s *Server) DeployReport(id string) protocol.DeploymentReport {
	s.tb.Helper()
	return jsonOf[protocol.DeploymentReport](s, "history", "show", id)
}

// Upgrade starts a run with `molt upgrade ARGS --yes --json` and returns
// the run it printed. Add --wait to wait for its end (the exit code is
// then not checked: use Molt for that).
func (s *Server) Upgrade(args ...string) protocol.Run {
	s.tb.Helper()
	r := s.Molt(append(append([]string{"upgrade"}, args...), "--yes", "--json")...)
	var run protocol.Run
	if err := json.Unmarshal([]byte(r.Stdout), &run); err != nil || run.ID == "" {
		s.tb.Fatalf("molt upgrade: no run in its output (%v)\n%s", err, r)
	}
	return run
}

// WaitRun waits until run id has ended and returns it.
func (s *Server) WaitRun(id string, d time.Duration) protocol.Run {
	s.tb.Helper()
	var run protocol.Run
	Eventually(s.tb, d, "run "+id+" ended", func() (bool, string) {
		s.JSON(&run, "runs", "show", id)
		return run.Status == protocol.RunEndedOK || run.Status == protocol.RunEndedNotOK || run.Status == protocol.RunCancelled,
			fmt.Sprintf("%s %v", run.Status, run.Counts)
	})
	return run
}

// Events is the whole event log (`molt events --since all --json`),
// oldest first.
func (s *Server) Events() []protocol.Event {
	s.tb.Helper()
	r := s.OK("events", "--since", "all", "--json")
	var evs []protocol.Event
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		if line == "" {
			continue
		}
		var e protocol.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			s.tb.Fatalf("molt events --json line %q: %v", line, err)
		}
		evs = append(evs, e)
	}
	return evs
}
