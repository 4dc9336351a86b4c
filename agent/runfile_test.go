package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteRunFile: state/daemon.json is replaced whole, with its mode,
// and no temp file is left behind.
func TestWriteRunFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "daemon.json")
	for _, pid := range []int{1, 2} {
		if err := writeRunFile(p, DaemonInfo{Pid: pid}, 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var got DaemonInfo
		if err := json.Unmarshal(b, &got); err != nil || got.Pid != pid {
			t.Fatalf("pid %d: read %+v, %v", pid, got, err)
		}
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, %v", st.Mode(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
	if err := writeRunFile(filepath.Join(dir, "missing", "daemon.json"), DaemonInfo{}, 0o644); err == nil {
		t.Fatal("no error for a missing directory")
	}
}
