package supervisor

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/platform"
)

func TestNextBackoff(t *testing.T) {
	const min, max = time.Second, 60 * time.Second
	tests := []struct {
		prev, want time.Duration
	}{
		{0, time.Second},
		{time.Second, 2 * time.Second},
		{16 * time.Second, 32 * time.Second},
		{32 * time.Second, 60 * time.Second},
		{60 * time.Second, 60 * time.Second},
	}
	for _, tt := range tests {
		if got := nextBackoff(tt.prev, min, max); got != tt.want {
			t.Errorf("nextBackoff(%s) = %s, want %s", tt.prev, got, tt.want)
		}
	}
}

// fakeClock is a fixed time; After fires at once.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) After(time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func newTestSupervisor(t *testing.T, h home.Home) *Supervisor {
	t.Helper()
	s, err := New(Config{Home: h, Version: "1.0.0", CrashBudget: 2, Clock: &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func installFake(t *testing.T, h home.Home, v string, valid bool) {
	t.Helper()
	if err := os.MkdirAll(h.VersionDir(v), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.AgentBinary(v), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if valid {
		if err := os.WriteFile(h.ValidPath(v), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPrepare(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	earlier := now.Add(-time.Minute)
	tests := []struct {
		name       string
		valid      map[string]bool
		active     home.Active
		want       home.Active
		wantErr    string
		wantResult string // reason substring of a rolled_back result
	}{
		{
			name:   "plain",
			valid:  map[string]bool{"1.0.0": true},
			active: home.Active{Current: "1.0.0"},
			want:   home.Active{Current: "1.0.0"},
		},
		{
			name:   "trial starts its window",
			valid:  map[string]bool{"1.0.0": true, "1.1.0": true},
			active: home.Active{Current: "1.1.0", Previous: "1.0.0", Trial: &home.Trial{Version: "1.1.0"}},
			want:   home.Active{Current: "1.1.0", Previous: "1.0.0", Trial: &home.Trial{Version: "1.1.0", Started: now}},
		},
		{
			name:   "trial keeps its window",
			valid:  map[string]bool{"1.0.0": true, "1.1.0": true},
			active: home.Active{Current: "1.1.0", Previous: "1.0.0", Trial: &home.Trial{Version: "1.1.0", Started: earlier, Crashes: 1}},
			want:   home.Active{Current: "1.1.0", Previous: "1.0.0", Trial: &home.Trial{Version: "1.1.0", Started: earlier, Crashes: 1}},
		},
		{
			name:   "stale trial dropped",
			valid:  map[string]bool{"1.0.0": true},
			active: home.Active{Current: "1.0.0", Trial: &home.Trial{Version: "0.9.0"}},
			want:   home.Active{Current: "1.0.0"},
		},
		{
			name:       "trial without .valid rolled back",
			valid:      map[string]bool{"1.0.0": true, "1.1.0": false},
			active:     home.Active{Current: "1.1.0", Previous: "1.0.0", Trial: &home.Trial{Version: "1.1.0"}},
			want:       home.Active{Current: "1.0.0"},
			wantResult: "versions/1.1.0 is not complete",
		},
		{
			name:       "current without .valid falls back",
			valid:      map[string]bool{"1.0.0": true, "1.1.0": false},
			active:     home.Active{Current: "1.1.0", Previous: "1.0.0"},
			want:       home.Active{Current: "1.0.0"},
			wantResult: "versions/1.1.0 is not complete",
		},
		{
			name:    "nothing valid",
			valid:   map[string]bool{"1.1.0": false},
			active:  home.Active{Current: "1.1.0"},
			wantErr: "no valid version to fall back to",
		},
		{
			name:    "bad version name",
			active:  home.Active{Current: "../x"},
			wantErr: "is not a version",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := home.New(t.TempDir())
			for v, ok := range tt.valid {
				installFake(t, h, v, ok)
			}
			if err := h.WriteActive(tt.active); err != nil {
				t.Fatal(err)
			}
			s := newTestSupervisor(t, h)
			got, err := s.prepare()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("prepare (-want +got):\n%s", d)
			}
			onDisk, _ := h.ReadActive()
			wantDisk := tt.want
			if tt.want.Trial != nil && tt.active.Trial != nil && tt.active.Trial.Started.IsZero() {
				// Run persists a new window's start after the agent started.
				tr := *tt.want.Trial
				tr.Started = time.Time{}
				wantDisk.Trial = &tr
			}
			if d := cmp.Diff(wantDisk, onDisk); d != "" {
				t.Errorf("active.json (-want +got):\n%s", d)
			}
			r, ok, _ := h.ReadResult()
			if tt.wantResult == "" && ok {
				t.Errorf("unexpected result.json %+v", r)
			}
			if tt.wantResult != "" && (r.Outcome != home.OutcomeRolledBack || !strings.Contains(r.Reason, tt.wantResult)) {
				t.Errorf("result.json = %+v, want rolled_back with %q", r, tt.wantResult)
			}
		})
	}
}

func TestSelftest(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h home.Home)
		want  []string
	}{
		{"ok", func(h home.Home) {
			installFake(t, h, "1.0.0", true)
			h.WriteActive(home.Active{Current: "1.0.0"})
			os.WriteFile(h.ConfigPath(), []byte("cluster: db\n"), 0o600)
		}, nil},
		{"no active", func(h home.Home) {}, []string{"no active version"}},
		{"not valid", func(h home.Home) {
			installFake(t, h, "1.0.0", false)
			h.WriteActive(home.Active{Current: "1.0.0"})
		}, []string{"versions/1.0.0: no .valid marker"}},
		{"no agent, bad config", func(h home.Home) {
			os.MkdirAll(h.VersionDir("1.0.0"), 0o755)
			os.WriteFile(h.ValidPath("1.0.0"), nil, 0o644)
			h.WriteActive(home.Active{Current: "1.0.0"})
			os.WriteFile(h.ConfigPath(), []byte("colour: blue\n"), 0o600)
		}, []string{"agent of version 1.0.0", "colour"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := home.New(t.TempDir())
			tt.setup(h)
			problems := Selftest(h)
			if len(problems) != len(tt.want) {
				t.Fatalf("problems %v, want %d like %q", problems, len(tt.want), tt.want)
			}
			for i, p := range problems {
				if !strings.Contains(p.Error(), tt.want[i]) {
					t.Errorf("problem %d = %q, want %q", i, p, tt.want[i])
				}
			}
		})
	}
}

type syncBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

func TestPumpBoundsLines(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	h := home.New(t.TempDir())
	s := newTestSupervisor(t, h)
	s.log = zap.New(core)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 3*maxLineLen)
	go func() {
		w.WriteString("first\n" + long + "\nlast")
		w.Close()
	}()
	var file syncBuffer
	s.pump(r, "1.2.3", "stdout", &file)
	var lines []string
	for _, e := range logs.All() {
		f := e.ContextMap()
		if f["agent_version"] != "1.2.3" || f["stream"] != "stdout" {
			t.Errorf("entry fields %v", f)
		}
		lines = append(lines, f["line"].(string))
	}
	want := []string{"first", long[:maxLineLen], "last"}
	if d := cmp.Diff(want, lines); d != "" {
		t.Errorf("logged lines (-want +got):\n%s", d)
	}
	if got := strings.Count(file.String(), "\n"); got != 3 {
		t.Errorf("agent log has %d lines, want 3:\n%.200s", got, file.String())
	}
}

// A recorded agent is stopped only when pid, start time and executable
// all match: a reused pid belongs to someone else and is left alone.
func TestStopStaleRecognisesTheAgent(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("uses sleep(1) and /proc")
	}
	for _, reused := range []bool{true, false} {
		h := home.New(t.TempDir())
		if err := os.MkdirAll(h.StateDir(), 0o755); err != nil {
			t.Fatal(err)
		}
		s := newTestSupervisor(t, h)
		s.clock = realClock{}
		s.cfg.StopGrace = 400 * time.Millisecond
		cmd := exec.Command("sleep", "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		id, err := platform.IdentifyProcess(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if reused {
			id.Start-- // the pid now names another process
		}
		s.writeRecord(&agent{id: id, version: "1.0.0", proc: cmd.Process})
		s.stopStale()
		select {
		case <-done:
			if reused {
				t.Error("a process whose pid was merely reused was stopped")
			}
		case <-time.After(2 * time.Second):
			if !reused {
				t.Error("the recorded agent was not stopped")
			}
			cmd.Process.Kill()
		}
		if _, err := os.Stat(s.recordPath()); !os.IsNotExist(err) {
			t.Errorf("state/agent.json left: %v", err)
		}
	}
}

// Where the supervisor restarts through its service manager (Windows), a
// busy agent is not stopped for it until it says idle.
func TestRestartWaitsForIdle(t *testing.T) {
	for _, busy := range []bool{false, true} {
		s := newTestSupervisor(t, home.New(t.TempDir()))
		a := &agent{version: "1.1.0", proc: &os.Process{Pid: 1}, busy: busy, done: make(chan struct{})}
		close(a.done) // exits as soon as it is asked to
		pending := false
		stop, err := s.afterCommit(a, errRestartPending, &pending)
		if busy && (stop || err != nil || !pending) {
			t.Errorf("busy agent: stop %v, err %v, pending %v; want a pending restart", stop, err, pending)
		}
		if !busy && (!stop || !errors.Is(err, ErrRestart) || pending) {
			t.Errorf("idle agent: stop %v, err %v, pending %v; want ErrRestart at once", stop, err, pending)
		}
	}
	s := newTestSupervisor(t, home.New(t.TempDir()))
	if stop, err := s.afterCommit(&agent{}, nil, new(bool)); stop || err != nil {
		t.Errorf("no self-upgrade: stop %v, err %v", stop, err)
	}
}
