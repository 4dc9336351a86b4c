package home

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestActiveRoundTrip(t *testing.T) {
	h := New(t.TempDir())
	if _, err := h.ReadActive(); !errors.Is(err, ErrNoActive) {
		t.Fatalf("empty home: %v, want ErrNoActive", err)
	}
	want := Active{Current: "1.5.0", Previous: "1.4.0", Trial: &Trial{
		Version: "1.5.0", Switched: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Crashes: 1, Order: "d-1",
	}}
	if err := h.WriteActive(want); err != nil {
		t.Fatal(err)
	}
	got, err := h.ReadActive()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("active.json round trip (-want +got):\n%s", d)
	}
	entries, _ := os.ReadDir(h.StateDir())
	if len(entries) != 1 {
		t.Errorf("state/ holds %d entries, want only active.json (no temp files left)", len(entries))
	}
}

func TestReadActiveRejectsBadFiles(t *testing.T) {
	h := New(t.TempDir())
	os.MkdirAll(h.StateDir(), 0o755)
	for _, content := range []string{"{", `{"previous":"1.0"}`} {
		os.WriteFile(h.ActivePath(), []byte(content), 0o644)
		if _, err := h.ReadActive(); err == nil {
			t.Errorf("active.json %q accepted", content)
		}
	}
}

func TestIsValid(t *testing.T) {
	h := New(t.TempDir())
	if h.IsValid("1.0.0") || h.IsValid("") {
		t.Fatal("missing version reported valid")
	}
	os.MkdirAll(h.VersionDir("1.0.0"), 0o755)
	if h.IsValid("1.0.0") {
		t.Fatal("version without .valid reported valid")
	}
	os.WriteFile(h.ValidPath("1.0.0"), nil, 0o644)
	if !h.IsValid("1.0.0") {
		t.Fatal("version with .valid reported invalid")
	}
	if filepath.Dir(h.AgentBinary("1.0.0")) != h.VersionDir("1.0.0") {
		t.Error("agent binary not inside its version directory")
	}
}

func TestResultRoundTrip(t *testing.T) {
	h := New(t.TempDir())
	if _, ok, err := h.ReadResult(); ok || err != nil {
		t.Fatalf("empty home: ok=%v err=%v", ok, err)
	}
	want := Result{Outcome: OutcomeRolledBack, Version: "1.5.0", Previous: "1.4.0", Reason: "not ready within 60s",
		Logs: "/x/logs/agent-1.5.0.log", At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if err := h.WriteResult(want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := h.ReadResult()
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("result.json round trip (-want +got):\n%s", d)
	}
}
