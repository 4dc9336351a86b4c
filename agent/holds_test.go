package agent

import (
	"errors"
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
