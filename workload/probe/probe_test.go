package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/workload/spec"
)

// freeAddr returns a local address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestCheckHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			fmt.Fprint(w, strings.Repeat("x", 1<<20))
		case "/down":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/slow":
			time.Sleep(2 * time.Second)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusFound)
		}
	}))
	defer srv.Close()
	dead := "http://" + freeAddr(t) + "/metrics"
	for _, tc := range []struct {
		name string
		p    spec.Probe
		want string // "" passes
	}{
		{"2xx", spec.Probe{HTTP: srv.URL + "/ok"}, ""},
		{"redirect followed", spec.Probe{HTTP: srv.URL + "/moved"}, ""},
		{"503", spec.Probe{HTTP: srv.URL + "/down"}, "GET " + srv.URL + "/down: 503 Service Unavailable"},
		{"refused", spec.Probe{HTTP: dead}, "GET " + dead + ": connection refused"},
		{"timeout", spec.Probe{HTTP: srv.URL + "/slow", Timeout: spec.Duration(200 * time.Millisecond)}, "GET " + srv.URL + "/slow: timed out after 200ms"},
		{"redirect loop", spec.Probe{HTTP: srv.URL + "/loop"}, "GET " + srv.URL + "/loop: more than 3 redirects"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(context.Background(), tc.p, Target{})
			checkErr(t, err, tc.want)
		})
	}
}

func TestCheckTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if err := Check(context.Background(), spec.Probe{TCP: l.Addr().String()}, Target{}); err != nil {
		t.Fatal(err)
	}
	dead := freeAddr(t)
	checkErr(t, Check(context.Background(), spec.Probe{TCP: dead}, Target{}), "tcp "+dead+": connection refused")
}

// script writes an executable /bin/sh script into dir/rel.
func script(t *testing.T, dir, rel, body string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func unixOnly(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("command probes are tested with /bin/sh scripts")
	}
}

func TestCheckCommand(t *testing.T) {
	unixOnly(t)
	dir := t.TempDir()
	script(t, dir, "bin/ok", `test "$PROBE_VAR" = yes && test "$(pwd)" = "$1"`)
	script(t, dir, "bin/fail", `echo "disk full" >&2; exit 1`)
	script(t, dir, "bin/quiet", `exit 3`)
	script(t, dir, "bin/hang", `sleep 30`)
	script(t, dir, "bin/chatty", `yes`)
	abs := filepath.Join(dir, "bin/fail")
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	tg := Target{Dir: dir, Env: append(os.Environ(), "PROBE_VAR=yes")}
	for _, tc := range []struct {
		name string
		argv []string
		want string
	}{
		{"exit 0 in the workload dir with its env", []string{"bin/ok", real}, ""},
		{"exit 1 with stderr", []string{"bin/fail"}, "command bin/fail: exit status 1: disk full"},
		{"exit 3", []string{"bin/quiet"}, "command bin/quiet: exit status 3"},
		{"absolute", []string{abs}, "command " + abs + ": exit status 1: disk full"},
		{"missing", []string{"bin/none"}, "command bin/none: no such file or directory"},
		{"timeout", []string{"bin/hang"}, "command bin/hang: timed out after 300ms"},
		{"unbounded output", []string{"bin/chatty"}, "command bin/chatty: timed out after 300ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := Check(context.Background(), spec.Probe{Command: tc.argv, Timeout: spec.Duration(300 * time.Millisecond)}, tg)
			checkErr(t, err, tc.want)
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
}

// TestCheckCommandKillsGroup: a timed-out probe takes what it started
// with it.
func TestCheckCommandKillsGroup(t *testing.T) {
	unixOnly(t)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	script(t, dir, "bin/spawn", `sleep 30 & echo $! > `+pidFile+`; wait`)
	err := Check(context.Background(), spec.Probe{Command: []string{"bin/spawn"}, Timeout: spec.Duration(500 * time.Millisecond)}, Target{Dir: dir})
	checkErr(t, err, "command bin/spawn: timed out after 500ms")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	fmt.Sscan(string(b), &pid)
	deadline := time.Now().Add(3 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d of the probe survives its timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		if _, err := os.Stat("/proc/self/stat"); err != nil {
			p, _ := os.FindProcess(pid)
			return p.Signal(nil) == nil
		}
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

func TestCheckRunning(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	p := spec.Probe{Running: spec.Duration(5 * time.Second)}
	yes := func() bool { return true }
	no := func() bool { return false }
	for _, tc := range []struct {
		name    string
		started time.Time
		alive   func() bool
		want    string
	}{
		{"reached", now.Add(-5 * time.Second), yes, ""},
		{"not yet", now.Add(-4 * time.Second), yes, "still starting: running 5s not reached"},
		{"exited", now.Add(-10 * time.Second), no, "not running"},
		{"not started", time.Time{}, yes, "still starting: running 5s not reached"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(context.Background(), p, Target{Started: tc.started, Alive: tc.alive, Now: func() time.Time { return now }})
			checkErr(t, err, tc.want)
		})
	}
}

func TestCheckFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "ready", "exporter")
	p := spec.Probe{File: true}
	checkErr(t, Check(context.Background(), p, Target{ReadyFile: f}), "no ready file yet")
	if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	checkErr(t, Check(context.Background(), p, Target{ReadyFile: f}), "")
}

func TestBusyHTTP(t *testing.T) {
	answerWith := ""
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		fmt.Fprint(w, answerWith)
	}))
	defer srv.Close()
	b := spec.Busy{Probe: spec.Probe{HTTP: srv.URL + "/busy"}}
	for _, tc := range []struct {
		name   string
		status int
		body   string
		busy   bool
		want   string
	}{
		{"busy", 200, "busy: scan in progress\n", true, ""},
		{"idle", 200, "idle", false, ""},
		{"upper case, leading space", 200, "  BUSY", true, ""},
		{"not a word", 200, "busyness", false, "GET " + srv.URL + "/busy: answered neither busy nor idle (busyness)"},
		{"neither", 200, "maybe later", false, "GET " + srv.URL + "/busy: answered neither busy nor idle (maybe later)"},
		{"empty", 204, "", false, "GET " + srv.URL + "/busy: answered neither busy nor idle (nothing)"},
		{"500", 500, "busy", false, "GET " + srv.URL + "/busy: 500 Internal Server Error"},
		{"huge", 200, strings.Repeat("y", 1<<20), false, "answered neither busy nor idle (" + strings.Repeat("y", 200) + "…)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answerWith, status = tc.body, tc.status
			busy, err := Busy(context.Background(), b, Target{})
			checkErr(t, err, tc.want)
			if busy != tc.busy {
				t.Errorf("busy = %v, want %v", busy, tc.busy)
			}
			if tc.want == "" || !strings.Contains(tc.want, "neither") {
				return
			}
			if !errors.Is(err, ErrNoAnswer) {
				t.Errorf("%v is not ErrNoAnswer", err)
			}
		})
	}
}

func TestBusyCommand(t *testing.T) {
	unixOnly(t)
	dir := t.TempDir()
	script(t, dir, "busy", `echo busy; echo "2 jobs running"`)
	script(t, dir, "idle", `echo idle`)
	script(t, dir, "odd", `echo what`)
	script(t, dir, "fails", `echo busy; exit 2`)
	for _, tc := range []struct {
		name string
		busy bool
		want string
	}{
		{"busy", true, ""},
		{"idle", false, ""},
		{"odd", false, "command odd: answered neither busy nor idle (what)"},
		{"fails", false, "command fails: exit status 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			busy, err := Busy(context.Background(), spec.Busy{Probe: spec.Probe{Command: []string{tc.name}}}, Target{Dir: dir})
			checkErr(t, err, tc.want)
			if busy != tc.busy {
				t.Errorf("busy = %v, want %v", busy, tc.busy)
			}
		})
	}
}

// checkErr fails unless err is nil for want "", or its text ends with
// want (a test may leave out a prefix it cannot know).
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("want a pass, got %v", err)
	case want != "" && err == nil:
		t.Fatalf("want %q, got a pass", want)
	case want != "" && !strings.HasSuffix(err.Error(), want):
		t.Fatalf("got  %q\nwant %q", err.Error(), want)
	case err != nil && strings.ContainsAny(err.Error(), "\n\r"):
		t.Fatalf("error spans lines: %q", err.Error())
	}
}
