package agent

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestHoldsExpiryAndRelease(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := HoldsOf(home.New(t.TempDir()))
	s.Now = clk.now

	a, err := s.Add("backup", 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(time.Minute)
	b, err := s.Add("migration", 0, 3*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(t, s); got != a.ID+","+b.ID {
		t.Fatalf("holds = %s, want %s,%s", got, a.ID, b.ID)
	}
	clk.t = clk.t.Add(time.Hour - time.Minute) // a's expiry is exclusive
	if got := ids(t, s); got != b.ID {
		t.Errorf("after 1h holds = %s, want only %s", got, b.ID)
	}
	if _, err := os.Stat(s.path(a.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("expired hold file not removed: %v", err)
	}
	if err := s.Release(b.ID); err != nil {
		t.Fatal(err)
	}
	if got := ids(t, s); got != "" {
		t.Errorf("after release holds = %s", got)
	}
	if err := s.Release(b.ID); !errors.Is(err, ErrNoSuchHold) {
		t.Errorf("second release err = %v, want ErrNoSuchHold", err)
	}
	if err := s.Release("../../etc/passwd"); !errors.Is(err, ErrNoSuchHold) {
		t.Errorf("release of a path err = %v, want ErrNoSuchHold", err)
	}
}

func TestHoldsChecks(t *testing.T) {
	s := HoldsOf(home.New(t.TempDir()))
	for _, tc := range []struct {
		reason string
		pid    int
		d      time.Duration
		want   string
	}{
		{"", 0, time.Hour, "required"},
		{strings.Repeat("x", MaxHoldReason+1), 0, time.Hour, "longer"},
		{"two\nlines", 0, time.Hour, "one line"},
		{"ok", 0, 0, "needs a process or a duration"},
		{"ok", 0, MaxHoldFor + time.Second, "between"},
	} {
		if _, err := s.Add(tc.reason, tc.pid, tc.d); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Add(%q, %d, %s) err = %v, want %q", tc.reason, tc.pid, tc.d, err, tc.want)
		}
	}
	for i := 0; i < MaxHolds; i++ {
		if _, err := s.Add("many", 0, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Add("one too many", 0, time.Hour); !errors.Is(err, ErrTooMany) {
		t.Errorf("hold %d err = %v, want ErrTooMany", MaxHolds+1, err)
	}
	released, err := s.ReleaseAll()
	if err != nil || len(released) != MaxHolds {
		t.Errorf("ReleaseAll = %d, %v", len(released), err)
	}
}

// A hold whose process died is released: a real process is started,
// holds, and is killed.
func TestHoldOfDeadProcessIsReleased(t *testing.T) {
	exe := "sleep"
	args := []string{"60"}
	if runtime.GOOS == "windows" {
		exe, args = "ping", []string{"-n", "60", "127.0.0.1"}
	}
	cmd := exec.Command(exe, args...)
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start %s: %v", exe, err)
	}
	s := HoldsOf(home.New(t.TempDir()))
	h, err := s.Add("job", cmd.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(t, s); got != h.ID {
		t.Fatalf("while the process runs holds = %q, want %s", got, h.ID)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if got := ids(t, s); got != "" {
		t.Errorf("after the process died holds = %q, want none", got)
	}
}

func TestHoldsIgnoreAndCleanJunk(t *testing.T) {
	s := HoldsOf(home.New(t.TempDir()))
	os.MkdirAll(s.Dir, 0o755)
	os.WriteFile(filepath.Join(s.Dir, "0123456789abcdef.json"), []byte("{garbage"), 0o644)
	os.WriteFile(filepath.Join(s.Dir, "notes.txt"), []byte("x"), 0o644)
	if got := ids(t, s); got != "" {
		t.Errorf("holds = %q, want none", got)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "0123456789abcdef.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unreadable hold not removed")
	}
}

func ids(t *testing.T, s *Holds) string {
	t.Helper()
	hs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, h := range hs {
		out = append(out, h.ID)
	}
	return strings.Join(out, ",")
}

// The file protocol of docs/workloads.md: any program holds by writing
// state/holds/<id>.json with a reason and a pid, an expiry, or neither.
func TestHoldFileProtocol(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	written := now.Add(-time.Hour)
	alive := func(pid int) bool { return pid == 4242 }
	for _, tc := range []struct {
		name    string
		file    string
		content string
		mtime   time.Time
		held    bool // the hold is listed
		kept    bool // the file is still there afterwards
	}{
		{"named id, pid alive", "nightly-scan.json", `{"reason":"scan in progress","pid":4242}`, written, true, true},
		{"pid dead", "scan.json", `{"reason":"scan","pid":99}`, written, false, false},
		{"expires ahead", "job_1.json", `{"reason":"job","expires":"2026-12-02T13:00:00Z"}`, written, true, true},
		{"expired", "job.2.json", `{"reason":"job","expires":"2026-12-02T12:00:00Z"}`, written, false, false},
		{"neither, recent", "backup.json", `{"reason":"backup"}`, written, true, true},
		{"neither, 7 days old", "backup.json", `{"reason":"backup"}`, now.Add(-MaxHoldFor), false, false},
		{"expires beyond 7 days after writing", "far.json", `{"reason":"far","expires":"2027-12-02T00:00:00Z"}`, now.Add(-MaxHoldFor - time.Second), false, false},
		{"pid alive outlives 7 days", "daemon.json", `{"reason":"long job","pid":4242}`, now.Add(-30 * 24 * time.Hour), true, true},
		{"id and created in the file", "0123456789abcdef.json", `{"id":"0123456789abcdef","reason":"r","created":"2026-12-01T00:00:00Z","expires":"2026-12-03T00:00:00Z"}`, written, true, true},
		{"dotfile ignored", ".scan.tmp", `{garbage`, written, false, true},
		{"dot json ignored", ".scan.json", `{garbage`, written, false, true},
		{"garbage removed", "scan.json", `{garbage`, written, false, false},
		{"no reason removed", "scan.json", `{"pid":4242}`, written, false, false},
		{"two-line reason removed", "scan.json", `{"reason":"a\nb","pid":4242}`, written, false, false},
		{"negative pid removed", "scan.json", `{"reason":"a","pid":-1}`, written, false, false},
		{"upper case name ignored", "Scan.json", `{"reason":"a","pid":4242}`, written, false, true},
		{"too large removed", "big.json", `{"reason":"a","pid":4242,"x":"` + strings.Repeat("x", maxHoldSize) + `"}`, written, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := HoldsOf(home.New(t.TempDir()))
			s.Now = func() time.Time { return now }
			s.Alive = alive
			if err := os.MkdirAll(s.Dir, 0o755); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(s.Dir, tc.file)
			if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, tc.mtime, tc.mtime); err != nil {
				t.Fatal(err)
			}
			hs, err := s.List()
			if err != nil {
				t.Fatal(err)
			}
			if got := len(hs) == 1; got != tc.held {
				t.Fatalf("held = %v (%+v), want %v", got, hs, tc.held)
			}
			if tc.held {
				h := hs[0]
				if id := strings.TrimSuffix(tc.file, ".json"); h.ID != id {
					t.Errorf("id = %q, want %q from the file name", h.ID, id)
				}
				if h.Created.IsZero() || h.Reason == "" {
					t.Errorf("hold = %+v: created and reason must be set", h)
				}
				if !strings.Contains(tc.content, "created") && !h.Created.Equal(tc.mtime) {
					t.Errorf("created = %s, want the file's mtime %s", h.Created, tc.mtime)
				}
			}
			_, err = os.Stat(p)
			if kept := err == nil; kept != tc.kept {
				t.Errorf("file kept = %v, want %v", kept, tc.kept)
			}
		})
	}
}

// At most MaxHolds holds count, the oldest; a workload's named hold is
// released by its id like molt-agent hold's.
func TestHoldFilesBoundedAndReleasedByName(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	s := HoldsOf(home.New(t.TempDir()))
	s.Now = func() time.Time { return now }
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range MaxHolds + 8 {
		p := filepath.Join(s.Dir, fmt.Sprintf("w-%02d.json", i))
		os.WriteFile(p, []byte(`{"reason":"work"}`), 0o644)
		mt := now.Add(-time.Hour + time.Duration(i)*time.Second)
		os.Chtimes(p, mt, mt)
	}
	hs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != MaxHolds || hs[0].ID != "w-00" || hs[MaxHolds-1].ID != fmt.Sprintf("w-%02d", MaxHolds-1) {
		t.Fatalf("holds = %d from %s to %s, want the %d oldest", len(hs), hs[0].ID, hs[len(hs)-1].ID, MaxHolds)
	}
	if err := s.Release("w-00"); err != nil {
		t.Fatalf("release of a named hold: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "w-00.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("w-00.json still there after release")
	}
}
