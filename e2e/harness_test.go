//go:build unix

package e2e

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
	"syscall"
	"testing"
	"time"
)

// server is a molt serve process.
type server struct {
	t    *testing.T
	bin  string
	data string
	addr string
	cmd  *exec.Cmd
	log  string
	n    int
}

// freeAddr returns a loopback address nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func newServer(t *testing.T, bin, data string) *server {
	s := &server{t: t, bin: bin, data: data, addr: freeAddr(t)}
	t.Cleanup(func() { s.stop() })
	return s
}

func (s *server) url() string       { return "https://" + s.addr }
func (s *server) caFile() string    { return filepath.Join(s.data, "tls", "ca.pem") }
func (s *server) tokenFile() string { return filepath.Join(s.data, "admin.token") }

// start runs molt serve and waits until it answers /healthz over TLS.
func (s *server) start() {
	t := s.t
	t.Helper()
	s.n++
	s.log = filepath.Join(filepath.Dir(s.data), fmt.Sprintf("serve-%d.log", s.n))
	lf, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(filepath.Join(s.bin, "molt"), "serve", "--dev", "--data", s.data, "--listen", s.addr,
		"--trusted-key", build.pubKey, "--log-level", "debug")
	s.cmd.Stdout, s.cmd.Stderr = lf, lf
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lf.Close()
	exited := make(chan error, 1)
	go func() { exited <- s.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("molt serve exited: %v\n%s", err, tail(s.log))
		default:
		}
		if s.healthy() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("molt serve did not answer /healthz within 30s\n%s", tail(s.log))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *server) healthy() bool {
	pem, err := os.ReadFile(s.caFile())
	if err != nil {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return false
	}
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(s.url() + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	_, err = os.Stat(s.tokenFile())
	return resp.StatusCode == 200 && err == nil
}

// kill9 kills the server without a chance to clean up.
func (s *server) kill9() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		waitGone(s.cmd.Process.Pid)
		s.cmd = nil
	}
}

func (s *server) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		if !waitGoneFor(s.cmd.Process.Pid, 10*time.Second) {
			s.cmd.Process.Kill()
		}
		s.cmd = nil
	}
}

func waitGone(pid int) { waitGoneFor(pid, 10*time.Second) }

// waitGoneFor waits until pid no longer exists (or is a zombie reaped by
// its Wait goroutine).
func waitGoneFor(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && strings.Contains(string(b), ") Z ") {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// cliResult is what one molt invocation printed and its exit code.
type cliResult struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r cliResult) String() string {
	return fmt.Sprintf("molt %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// molt runs the operator CLI of the new version against s, configured
// the way an operator does it: the environment names server, CA and token.
func (s *server) molt(args ...string) cliResult {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(build.newBin, "molt"), args...)
	cmd.Env = append(os.Environ(), "MOLT_SERVER="+s.url(), "MOLT_CA="+s.caFile(), "MOLT_TOKEN_FILE="+s.tokenFile(), "XDG_CONFIG_HOME="+s.data)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := cliResult{args: args, stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		s.t.Fatalf("molt %v: %v", args, err)
	}
	return r
}

// ok runs molt and fails the test unless it exits 0.
func (s *server) ok(args ...string) cliResult {
	s.t.Helper()
	r := s.molt(args...)
	if r.code != 0 {
		s.t.Fatalf("%s", r)
	}
	return r
}

// json runs molt with --json and decodes its stdout into v.
func (s *server) json(v any, args ...string) {
	s.t.Helper()
	r := s.ok(append(args, "--json")...)
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		s.t.Fatalf("molt %v --json: %v\n%s", args, err, r.stdout)
	}
}

// host is one agent home with its supervisor process.
type host struct {
	t    *testing.T
	name string
	home string
	cmd  *exec.Cmd
	logs []string
	n    int
	// wrap runs the supervisor under another command (a namespace).
	wrap []string
}

// agentConfig is the agent.yaml of a test host: short long polls and a
// short trial watch keep the test quick.
func agentConfig(s *server, name, enrollToken string, labels map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server: %s\nca_file: %s\nenrollment_token: %q\ntrusted_keys: [%s]\nname: %s\nlog_level: debug\n",
		s.url(), s.caFile(), enrollToken, build.pubKey, name)
	if len(labels) > 0 {
		b.WriteString("labels:\n")
		for k, v := range labels {
			fmt.Fprintf(&b, "  %s: %s\n", k, v)
		}
	}
	b.WriteString("supervisor:\n  ready_timeout: 30s\n  watch: 2s\n  crash_budget: 1\n  stop_grace: 5s\n")
	return b.String()
}

// installHost lays out a home with the old version (molt-agent install
// --no-service, from the binaries beside it) and agent.yaml.
func installHost(t *testing.T, dir, name, config string) *host {
	t.Helper()
	h := &host{t: t, name: name, home: filepath.Join(dir, name)}
	cfg := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(build.oldBin, "molt-agent"), "install", "--home", h.home, "--config", cfg, "--no-service").CombinedOutput()
	if err != nil {
		t.Fatalf("molt-agent install %s: %v\n%s", name, err, out)
	}
	t.Cleanup(h.stop)
	return h
}

// start runs the home's supervisor in the foreground, as the OS service
// would.
func (h *host) start() {
	h.t.Helper()
	h.n++
	log := filepath.Join(filepath.Dir(h.home), fmt.Sprintf("%s-supervisor-%d.log", h.name, h.n))
	h.logs = append(h.logs, log)
	lf, err := os.Create(log)
	if err != nil {
		h.t.Fatal(err)
	}
	defer lf.Close()
	argv := append(append([]string(nil), h.wrap...), filepath.Join(h.home, "bin", "molt-supervisor"), "run", "--home", h.home)
	h.cmd = exec.Command(argv[0], argv[1:]...)
	h.cmd.Stdout, h.cmd.Stderr = lf, lf
	if err := h.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	go h.cmd.Wait()
}

// stop stops the supervisor (and so its agent) gracefully.
func (h *host) stop() {
	if h.cmd == nil || h.cmd.Process == nil {
		return
	}
	pid := h.cmd.Process.Pid
	syscall.Kill(pid, syscall.SIGTERM)
	if !waitGoneFor(pid, 20*time.Second) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	h.cmd = nil
}

// identity is the agent id the host enrolled with.
func (h *host) identity() string {
	id, _ := h.identityFingerprint()
	return id
}

// identityFingerprint is the enrolled id and the machine fingerprint
// it was made on.
func (h *host) identityFingerprint() (string, string) {
	var id struct {
		ID          string `json:"id"`
		Credential  string `json:"credential"`
		Fingerprint string `json:"fingerprint"`
	}
	b, err := os.ReadFile(filepath.Join(h.home, "state", "identity.json"))
	if err != nil || json.Unmarshal(b, &id) != nil || id.Credential == "" {
		return "", ""
	}
	return id.ID, id.Fingerprint
}

// supervisorVersion runs bin/molt-supervisor version --json.
func (h *host) supervisorVersion() string {
	out, err := exec.Command(filepath.Join(h.home, "bin", "molt-supervisor"), "version", "--json").Output()
	if err != nil {
		return ""
	}
	var v struct{ Version string }
	json.Unmarshal(out, &v)
	return v.Version
}

func (h *host) dump() string {
	var b strings.Builder
	for _, l := range h.logs {
		fmt.Fprintf(&b, "--- %s\n%s\n", l, tail(l))
	}
	return b.String()
}

// eventually polls cond until it holds or d passes; cond returns what it
// saw, for the failure message.
func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for {
		ok, seen := cond()
		if ok {
			return
		}
		last = seen
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s; last seen: %s", d, what, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// tail returns the last lines of a log file.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	return strings.Join(lines, "\n")
}
