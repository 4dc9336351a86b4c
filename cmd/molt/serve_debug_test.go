package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/cli"
)

func TestDebugListenLoopbackOnly(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		allow bool
		want  string // "" accepted, else part of the refusal
	}{
		{"127.0.0.1:6060", false, ""},
		{"127.3.2.1:6060", false, ""},
		{"[::1]:6060", false, ""},
		{"localhost:6060", false, ""},
		{"LocalHost:0", false, ""},
		{":6060", false, `":6060" listens on every interface`},
		{"0.0.0.0:6060", false, "listens on every interface"},
		{"[::]:6060", false, "listens on every interface"},
		{"10.0.0.5:6060", false, `"10.0.0.5:6060" is not a loopback address`},
		{"[fe80::1%eth0]:6060", false, "is not a loopback address"},
		{"molt.example.com:6060", false, "is not a loopback address"},
		{"localhost.example.com:6060", false, "is not a loopback address"},
		{"6060", false, `"6060" is not host:port`},
		{"0.0.0.0:6060", true, ""},
		{":6060", true, ""},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			err := debugListen{addr: tc.addr, allowRemote: tc.allow}.check()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "--debug-listen: ") {
				t.Fatalf("check = %v, want a refusal naming --debug-listen with %q", err, tc.want)
			}
			if !strings.Contains(tc.want, "host:port") && !strings.Contains(err.Error(), "--"+debugAllowRemoteFlag) {
				t.Errorf("refusal %q does not name --%s", err, debugAllowRemoteFlag)
			}
		})
	}
}

// The refusal is a usage error before anything starts: exit 2, one line,
// no data directory made.
func TestServeRefusesPublicDebugListen(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	root := newRootCmd()
	root.SetOut(new(bytes.Buffer))
	var stderr bytes.Buffer
	code := cli.Main(root, []string{"serve", "--dev", "--data", data, "--listen", "127.0.0.1:0", "--debug-listen", ":6060"}, &stderr)
	if code != 2 || strings.Count(stderr.String(), "\n") != 1 || !strings.Contains(stderr.String(), "molt: --debug-listen: \":6060\" listens on every interface") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("the data directory was made before the refusal: %v", err)
	}
}

// On loopback the profiles are served, and one log line says where.
func TestServeDebugListenLogsAddress(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "serve.log")
	root := newRootCmd()
	root.SetOut(new(bytes.Buffer))
	root.SetErr(new(bytes.Buffer))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root.SetContext(ctx)
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(root, []string{"serve", "--dev", "--data", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0",
			"--debug-listen", "localhost:0", "--log-file", logFile}, new(bytes.Buffer))
	}()
	var addr string
	for deadline := time.Now().Add(20 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(logFile)
		for _, line := range strings.Split(string(b), "\n") {
			var e struct{ Level, Msg, Addr string }
			if json.Unmarshal([]byte(line), &e) == nil && strings.Contains(e.Msg, "Go profiles") {
				if e.Level != "info" {
					t.Errorf("logged at %s, want info: %s", e.Level, line)
				}
				addr = e.Addr
			}
		}
	}
	if !strings.HasPrefix(addr, "http://127.0.0.1:") && !strings.HasPrefix(addr, "http://[::1]:") {
		t.Fatalf("no log line with a loopback address (got %q)", addr)
	}
	resp, err := http.Get(addr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET %s: %s", addr, resp.Status)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited %d after its context ended", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
}
