package workload

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// idRe is the documented hold id (docs/workloads.md).
var idRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// supervise sets the variables the supervisor sets, pointing at a temp
// home, and returns the home.
func supervise(t *testing.T, name string) string {
	t.Helper()
	h := t.TempDir()
	for k, v := range map[string]string{
		EnvName:     name,
		EnvVersion:  "1.5.0",
		EnvHome:     h,
		EnvDir:      filepath.Join(h, "versions", "1.5.0", "workloads", name),
		EnvDataDir:  filepath.Join(h, "data", name),
		EnvAgentID:  "ag_123",
		EnvHoldsDir: filepath.Join(h, "state", "holds"),
		EnvReady:    filepath.Join(h, "state", "ready", name),
	} {
		t.Setenv(k, v)
	}
	return h
}

// unsupervised clears every MOLT_ variable of the package.
func unsupervised(t *testing.T) {
	t.Helper()
	for _, k := range []string{EnvName, EnvVersion, EnvHome, EnvDir, EnvDataDir, EnvAgentID, EnvHoldsDir, EnvReady} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

func TestIdentity(t *testing.T) {
	h := supervise(t, "exporter")
	got := map[string]string{"Name": Name(), "Version": Version(), "Home": Home(), "Dir": Dir(), "DataDir": DataDir(), "AgentID": AgentID()}
	want := map[string]string{
		"Name": "exporter", "Version": "1.5.0", "Home": h,
		"Dir":     filepath.Join(h, "versions", "1.5.0", "workloads", "exporter"),
		"DataDir": filepath.Join(h, "data", "exporter"), "AgentID": "ag_123",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s() = %q, want %q", k, got[k], w)
		}
	}
	if !Supervised() {
		t.Error("Supervised() = false with MOLT_WORKLOAD set")
	}

	unsupervised(t)
	if Supervised() || Name() != "" || DataDir() != "" || Home() != "" {
		t.Errorf("outside molt: Supervised %v, Name %q, DataDir %q, Home %q", Supervised(), Name(), DataDir(), Home())
	}
}

func TestReady(t *testing.T) {
	h := supervise(t, "exporter")
	p := filepath.Join(h, "state", "ready", "exporter")
	for range 2 { // a second call is harmless
		if err := Ready(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("ready file: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Errorf("state/ready holds %d entries, want only the ready file (no temp file left)", len(ents))
	}

	unsupervised(t)
	if err := Ready(); err != nil {
		t.Errorf("Ready outside molt: %v", err)
	}
}

func TestReadyUnwritable(t *testing.T) {
	supervise(t, "exporter")
	// The ready file's directory is a file: Ready must say so.
	blocker := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvReady, filepath.Join(blocker, "exporter"))
	if err := Ready(); err == nil {
		t.Fatal("Ready under a file: no error")
	}
}

// readHolds returns the hold files of dir by id, failing on any other
// entry (a temp file left behind).
func readHolds(t *testing.T, dir string) map[string]holdFile {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]holdFile{}
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			t.Fatalf("unexpected entry %s in the holds directory", e.Name())
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var h holdFile
		if err := json.Unmarshal(b, &h); err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		out[id] = h
	}
	return out
}

func TestHold(t *testing.T) {
	h := supervise(t, "exporter")
	dir := filepath.Join(h, "state", "holds")
	before := time.Now().UTC().Add(-time.Second)
	release, err := Hold("  nightly scan ")
	if err != nil {
		t.Fatal(err)
	}
	release2, err := HoldFor("rotate keys", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	holds := readHolds(t, dir)
	if len(holds) != 2 {
		t.Fatalf("%d hold files, want 2", len(holds))
	}
	for id, hf := range holds {
		if !idRe.MatchString(id) || !strings.HasPrefix(id, "exporter-") {
			t.Errorf("id %q: want exporter-<random>, a valid hold id", id)
		}
		if hf.Pid != os.Getpid() || hf.Created.Before(before) || hf.Created.After(time.Now()) {
			t.Errorf("hold %s: pid %d created %s, want pid %d and now", id, hf.Pid, hf.Created, os.Getpid())
		}
		switch hf.Reason {
		case "nightly scan":
			if !hf.Expires.IsZero() {
				t.Errorf("Hold wrote expires %s", hf.Expires)
			}
		case "rotate keys":
			if d := hf.Expires.Sub(hf.Created); d != time.Hour {
				t.Errorf("HoldFor(1h): expires %s after created", d)
			}
		default:
			t.Errorf("reason %q", hf.Reason)
		}
	}

	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := release(); err != nil {
		t.Errorf("second release: %v", err)
	}
	if left := readHolds(t, dir); len(left) != 1 {
		t.Errorf("after one release %d holds left, want 1", len(left))
	}
	if err := release2(); err != nil {
		t.Fatal(err)
	}
	if left := readHolds(t, dir); len(left) != 0 {
		t.Errorf("after both releases %d holds left", len(left))
	}
}

func TestHoldRemovedByOthers(t *testing.T) {
	h := supervise(t, "exporter")
	release, err := Hold("scan")
	if err != nil {
		t.Fatal(err)
	}
	// molt-agent hold release --all removes it first: release still succeeds.
	for id := range readHolds(t, filepath.Join(h, "state", "holds")) {
		os.Remove(filepath.Join(h, "state", "holds", id+".json"))
	}
	if err := release(); err != nil {
		t.Errorf("release of a hold removed by someone else: %v", err)
	}
}

func TestHoldOutsideMolt(t *testing.T) {
	unsupervised(t)
	release, err := Hold("scan")
	if err != nil || release() != nil {
		t.Fatalf("Hold outside molt: %v", err)
	}
	if _, err := Hold(""); !errors.Is(err, ErrBadHold) {
		t.Errorf("a bad reason outside molt: %v, want ErrBadHold (the mistake shows in a developer's run)", err)
	}
}

func TestHoldRefused(t *testing.T) {
	h := supervise(t, "exporter")
	cases := []struct {
		name, reason string
		d            time.Duration
		want         string
	}{
		{"empty", "", 0, "reason: required"},
		{"blank", " \t ", 0, "reason: required"},
		{"two lines", "scan\nmore", 0, "one line"},
		{"nul", "scan\x00", 0, "one line"},
		{"too long", strings.Repeat("x", MaxReason+1), 0, "longer than 256"},
		{"zero duration", "scan", -1, "duration"},
		{"too long a duration", "scan", MaxHoldFor + time.Second, "duration"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			switch c.d {
			case 0:
				_, err = Hold(c.reason)
			case -1:
				_, err = HoldFor(c.reason, 0)
			default:
				_, err = HoldFor(c.reason, c.d)
			}
			if !errors.Is(err, ErrBadHold) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want ErrBadHold saying %q", err, c.want)
			}
		})
	}
	if _, err := Hold(strings.Repeat("x", MaxReason)); err != nil {
		t.Errorf("a reason of exactly %d characters: %v", MaxReason, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(h, "state", "holds")); len(ents) != 1 {
		t.Errorf("%d hold files, want only the one accepted", len(ents))
	}
}

func TestHoldUnwritable(t *testing.T) {
	supervise(t, "exporter")
	blocker := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvHoldsDir, filepath.Join(blocker, "holds"))
	if _, err := Hold("scan"); err == nil {
		t.Fatal("Hold into a directory under a file: no error")
	}
}

func TestNewHoldID(t *testing.T) {
	cases := []struct{ name, prefix string }{
		{"exporter", "exporter-"},
		{"", "hold-"},
		{"My Agent.v2", "myagent.v2-"},
		{"-_.x", "x-"},
		{"ÿ", "hold-"},
		{strings.Repeat("a", 40), strings.Repeat("a", 32) + "-"},
	}
	for _, c := range cases {
		id, err := newHoldID(c.name)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(id, c.prefix) || len(id) != len(c.prefix)+16 || !idRe.MatchString(id) {
			t.Errorf("newHoldID(%q) = %q, want %s<16 hex>, a valid id", c.name, id, c.prefix)
		}
	}
	a, _ := newHoldID("x")
	b, _ := newHoldID("x")
	if a == b {
		t.Errorf("two ids alike: %s", a)
	}
}
