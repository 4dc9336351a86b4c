//go:build unix

// Package s3test starts a real S3-compatible server for tests: the Versity
// S3 Gateway (versitygw, Apache-2.0) over a directory of its own (its posix
// backend), on loopback, stopped and removed when the test ends. Tests
// that need it skip with one line when versitygw is not installed, and
// fail instead in CI (internal/testtool); .ci/run installs it with
//
//	go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
//
//	s := s3test.Start(t)       // an empty gateway; s.Bucket(t, "packs") makes a bucket
//	s.Stop(); s.Start()        // the store down, then back (same port and data)
package s3test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/testtool"
)

// Install is how to get versitygw.
const Install = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// Server is one running gateway.
type Server struct {
	tb        testing.TB
	bin       string
	dir       string // data/ (the buckets) and log
	addr      string // 127.0.0.1:PORT
	AccessKey string
	SecretKey string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start starts a gateway with fresh credentials over an empty directory.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin := find()
	if bin == "" {
		testtool.Missing(tb, "versitygw not found (an S3-compatible server): %s", Install)
	}
	s := &Server{tb: tb, bin: bin, dir: tb.TempDir(), AccessKey: "molt" + token(6), SecretKey: token(20)}
	if err := os.MkdirAll(s.dataDir(), 0o700); err != nil {
		tb.Fatalf("s3test: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("s3test: %v", err)
	}
	s.addr = l.Addr().String()
	l.Close()
	tb.Cleanup(s.Stop)
	s.Start()
	return s
}

// find is versitygw on PATH or in Go's bin directories.
func find() string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if d := os.Getenv("GOPATH"); d != "" {
		dirs = append(dirs, filepath.Join(d, "bin"))
	}
	if h, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(h, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

func token(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }
func (s *Server) logFile() string { return filepath.Join(s.dir, "versitygw.log") }

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logFile())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Endpoint is the gateway's URL (plain HTTP on loopback).
func (s *Server) Endpoint() string { return "http://" + s.addr }

// Addr is the gateway's host:port.
func (s *Server) Addr() string { return s.addr }

// Bucket makes bucket name (a directory of the posix backend) and returns
// name.
func (s *Server) Bucket(tb testing.TB, name string) string {
	tb.Helper()
	if err := os.MkdirAll(filepath.Join(s.dataDir(), name), 0o700); err != nil {
		tb.Fatalf("s3test: bucket %s: %v", name, err)
	}
	return name
}

// Start starts the gateway (again) and waits until it answers.
func (s *Server) Start() {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	log, err := os.OpenFile(s.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.tb.Fatalf("s3test: %v", err)
	}
	defer log.Close()
	cmd := exec.Command(s.bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--port", s.addr, "--quiet", "posix", s.dataDir())
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		s.tb.Fatalf("s3test: start versitygw: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	var werr error
	go func(done chan struct{}) { werr = cmd.Wait(); close(done) }(s.done)
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Any HTTP answer (403 for an anonymous request) means it serves.
		resp, err := http.Get(s.Endpoint() + "/")
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-s.done:
			s.cmd = nil
			s.tb.Fatalf("s3test: versitygw exited: %v\n%s", werr, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			s.tb.Fatalf("s3test: versitygw did not answer on %s within 30s\n%s", s.addr, s.logTail())
		}
	}
}

// Stop kills the gateway; its data stays for Start.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

// String names the gateway in messages.
func (s *Server) String() string { return fmt.Sprintf("versitygw on %s", s.addr) }
