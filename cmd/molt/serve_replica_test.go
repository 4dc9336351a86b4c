//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/internal/pgtest"
)

// syncBuffer is a bytes.Buffer a test reads while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A replica on PostgreSQL serves what a single server does besides the
// API: the profiles on --debug-listen, and once it leads, the line about
// its file descriptor limit, raised to the hard one.
func TestServeReplicaDebugListenAndFDLimit(t *testing.T) {
	dsn := pgtest.Start(t).CreateDB(t, "molt")
	dir := t.TempDir()
	logFile := filepath.Join(dir, "serve.log")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	root := newRootCmd()
	out := new(syncBuffer)
	root.SetOut(out)
	root.SetErr(new(bytes.Buffer))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root.SetContext(ctx)
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(root, []string{"serve", "--dev", "--data", filepath.Join(dir, "data"), "--listen", addr,
			"--store", dsn, "--advertise", "https://" + addr,
			"--debug-listen", "localhost:0", "--log-file", logFile}, new(bytes.Buffer))
	}()
	var debugAddr string
	for deadline := time.Now().Add(30 * time.Second); (debugAddr == "" || !strings.Contains(out.String(), "file descriptors: limit")) && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(logFile)
		for _, line := range strings.Split(string(b), "\n") {
			var e struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &e) == nil && strings.Contains(e.Msg, "Go profiles") {
				debugAddr = e.Addr
			}
		}
	}
	if !strings.HasPrefix(debugAddr, "http://127.0.0.1:") && !strings.HasPrefix(debugAddr, "http://[::1]:") {
		t.Fatalf("no log line with the profiles' loopback address (got %q); output:\n%s", debugAddr, out)
	}
	if !strings.Contains(out.String(), "leads (lease token") || !strings.Contains(out.String(), "file descriptors: limit") {
		t.Fatalf("the replica did not lead and report its descriptor limit; output:\n%s", out)
	}
	resp, err := http.Get(debugAddr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET %s: %s", debugAddr, resp.Status)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited %d after its context ended; output:\n%s", code, out)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}
