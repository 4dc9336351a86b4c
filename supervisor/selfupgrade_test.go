package supervisor

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/moltfleet/molt/home"
)

// resumeSelfUpgrade checks the staged supervisor only for a committed
// current version with no trial, when this supervisor is the home's, and
// not again after a refusal it recorded. The staged program here fails
// version --json, so a check that runs records a refusal.
func TestResumeSelfUpgradeWhen(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the staged program is a shell script")
	}
	tests := []struct {
		name       string
		act        home.Active
		invalid    bool
		noStaged   bool
		elsewhere  bool
		refused    *home.SupervisorResult
		wantChecks bool
	}{
		{name: "committed", act: home.Active{Current: "1.1.0"}, wantChecks: true},
		{name: "trial in progress", act: home.Active{Current: "1.1.0", Trial: &home.Trial{Version: "1.1.0"}}},
		{name: "agent not current", act: home.Active{Current: "1.2.0"}},
		{name: "no .valid", act: home.Active{Current: "1.1.0"}, invalid: true},
		{name: "no staged supervisor", act: home.Active{Current: "1.1.0"}, noStaged: true},
		{name: "run from elsewhere", act: home.Active{Current: "1.1.0"}, elsewhere: true},
		{name: "refused by this version", act: home.Active{Current: "1.1.0"},
			refused: &home.SupervisorResult{From: "1.0.0", Reason: "version --json: exit status 1"}},
		{name: "refused by another version", act: home.Active{Current: "1.1.0"},
			refused: &home.SupervisorResult{From: "0.9.0", Reason: "version --json: exit status 1"}, wantChecks: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := home.New(t.TempDir())
			s := newTestSupervisor(t, h)
			installFake(t, h, "1.1.0", !tt.invalid)
			if !tt.noStaged {
				if err := os.WriteFile(h.StagedSupervisor("1.1.0"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.MkdirAll(h.BinDir(), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(h.SupervisorBinary(), []byte("running"), 0o755); err != nil {
				t.Fatal(err)
			}
			s.cfg.Executable = h.SupervisorBinary()
			if tt.elsewhere {
				s.cfg.Executable = filepath.Join(t.TempDir(), "molt-supervisor")
			}
			if tt.refused != nil {
				if err := h.WriteResult(home.Result{Outcome: home.OutcomeCommitted, Version: "1.1.0", Supervisor: tt.refused}); err != nil {
					t.Fatal(err)
				}
			}
			a := &agent{version: "1.1.0", done: make(chan struct{})}
			if err := s.resumeSelfUpgrade(context.Background(), a, tt.act); err != nil {
				t.Fatal(err)
			}
			r, _, err := h.ReadResult()
			if err != nil {
				t.Fatal(err)
			}
			// A refusal written now carries the clock's time; the
			// recorded ones carry none.
			checked := r.Supervisor != nil && r.Supervisor.At.Equal(s.clock.Now()) && !r.Supervisor.Upgraded
			if checked != tt.wantChecks {
				t.Errorf("checked %v, want %v (result.json supervisor %+v)", checked, tt.wantChecks, r.Supervisor)
			}
		})
	}
}

func TestSameContent(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), 20<<10) // 320 KiB, several chunks
	changed := bytes.Clone(big)
	changed[len(changed)-1] = 'x'
	files := map[string][]byte{"big": big, "big2": bytes.Clone(big), "changed": changed, "short": big[:100], "empty": nil, "empty2": nil}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		a, b    string
		want    bool
		wantErr bool
	}{
		{"big", "big2", true, false},
		{"big", "changed", false, false},
		{"big", "short", false, false},
		{"empty", "empty2", true, false},
		{"big", "missing", false, true},
	}
	for _, tt := range tests {
		got, err := sameContent(filepath.Join(dir, tt.a), filepath.Join(dir, tt.b))
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("sameContent(%s, %s) = %v, %v; want %v (error %v)", tt.a, tt.b, got, err, tt.want, tt.wantErr)
		}
	}
}
