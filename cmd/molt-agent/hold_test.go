package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/home"
)

// holdHome is a home that hold accepts.
func holdHome(t *testing.T) home.Home {
	t.Helper()
	h := home.New(t.TempDir())
	if err := h.WriteActive(home.Active{Current: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	return h
}

// A --for that is not a duration, or out of range, is a usage error that
// names the value and shows good ones, not Go's parser message.
func TestHoldForValue(t *testing.T) {
	h := holdHome(t)
	for _, tc := range []struct {
		value string
		want  string
	}{
		{"8d", `molt-agent: --for "8d": not a duration (e.g. 30m, 12h, 72h)` + "\n"},
		{"two hours", `molt-agent: --for "two hours": not a duration (e.g. 30m, 12h, 72h)` + "\n"},
		{"200h", `molt-agent: --for "200h": must be between 1s and 168h (7 days)` + "\n"},
		{"0", `molt-agent: --for "0": must be between 1s and 168h (7 days)` + "\n"},
		{"-1h", `molt-agent: --for "-1h": must be between 1s and 168h (7 days)` + "\n"},
		{"500ms", `molt-agent: --for "500ms": must be between 1s and 168h (7 days)` + "\n"},
	} {
		t.Run(tc.value, func(t *testing.T) {
			for _, extra := range [][]string{nil, {"--", "true"}} {
				args := append([]string{"hold", "--home", h.Dir, "--reason", "job", "--for", tc.value}, extra...)
				out, stderr, code := runCLI(t, args...)
				if code != 2 || stderr != tc.want || out != "" {
					t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and %q", extra, code, out, stderr, tc.want)
				}
			}
			if hs, _ := agent.HoldsOf(h).List(); len(hs) != 0 {
				t.Errorf("holds after a refusal: %+v", hs)
			}
		})
	}
}

// With a command, --for caps the hold: the hold file carries both the pid
// and the expiry, and when the time passes first a line on stderr says the
// command runs on unheld.
func TestHoldForCapsCommand(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("runs sh")
	}
	for _, tc := range []struct {
		name       string
		forArgs    []string
		sleep      string
		wantExpiry bool
		wantNotice bool
	}{
		{"time passes first", []string{"--for", "1s"}, "2", true, true},
		{"command ends first", []string{"--for", "1h"}, "0", true, false},
		{"no --for", nil, "0", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := holdHome(t)
			seen := filepath.Join(t.TempDir(), "holds")
			args := append([]string{"hold", "--home", h.Dir, "--reason", "job"}, tc.forArgs...)
			args = append(args, "--", "sh", "-c", `cat "$0"/*.json > "$1"; sleep "$2"; exit 3`,
				filepath.Join(h.StateDir(), "holds"), seen, tc.sleep)
			start := time.Now()
			_, stderr, code := runCLI(t, args...)
			if code != 3 {
				t.Fatalf("exit %d, want the command's 3; stderr %q", code, stderr)
			}
			b, err := os.ReadFile(seen)
			if err != nil {
				t.Fatal(err)
			}
			var held agent.Hold
			if err := json.Unmarshal(b, &held); err != nil {
				t.Fatalf("the hold while the command ran: %v\n%s", err, b)
			}
			if held.Pid != os.Getpid() {
				t.Errorf("hold pid %d, want this process %d", held.Pid, os.Getpid())
			}
			if got := !held.Expires.IsZero(); got != tc.wantExpiry {
				t.Errorf("hold expires %v; want an expiry: %v", held.Expires, tc.wantExpiry)
			}
			if tc.wantExpiry && held.Expires.After(start.Add(2*time.Hour)) {
				t.Errorf("hold expires %v, later than --for allows", held.Expires)
			}
			notice := "molt-agent: hold " + held.ID + " ended after 1s (--for); sh still runs, no longer holding off a restart\n"
			if got := stderr == notice; got != tc.wantNotice || (!tc.wantNotice && stderr != "") {
				t.Errorf("stderr %q; want notice: %v", stderr, tc.wantNotice)
			}
			if hs, _ := agent.HoldsOf(h).List(); len(hs) != 0 {
				t.Errorf("holds after the command: %+v", hs)
			}
		})
	}
}
