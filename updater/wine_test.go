//go:build !windows

package updater

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/testtool"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/updater/pack/packtest"
)

// winPath names a host path the way a Windows program under Wine sees it
// (drive Z: is the host's root).
func winPath(p string) string { return `Z:` + strings.ReplaceAll(p, "/", `\`) }

// TestWindowsUnderWine builds this test binary for windows/amd64 and runs
// the staging, switch and cleanup flow under Wine while an older
// molt-agent.exe runs, to see Windows file semantics (a running .exe
// cannot be deleted) meet the updater.
func TestWindowsUnderWine(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the Windows build and Wine start take tens of seconds")
	}
	wine, wineEnv := testtool.Wine(t)
	dir := t.TempDir()
	exe := filepath.Join(dir, "updater.test.exe")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "test", "-c", "-o", exe, ".")
	build.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build for windows: %v\n%s", err, out)
	}

	pub, sk := newKey(t)
	winFiles := func(v string) packtest.Files {
		return packtest.Files{"windows/amd64": {
			pack.RoleAgent:      append([]byte("MZ molt-agent "+v+"\n"), randomBytes(300_000, 3)...),
			pack.RoleSupervisor: append([]byte("MZ molt-supervisor "+v+"\n"), randomBytes(100_000, 4)...),
		}}
	}
	p1, p2 := filepath.Join(dir, "1.1.0.pack"), filepath.Join(dir, "1.2.0.pack")
	newRelease(t, sk, "1.1.0", winFiles("1.1.0"), nil).writePack(t, p1)
	newRelease(t, sk, "1.2.0", winFiles("1.2.0"), nil).writePack(t, p2)
	hdir := filepath.Join(dir, "home")
	h := home.Home{Dir: hdir}
	if err := os.MkdirAll(filepath.Join(hdir, "versions", "1.0.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hdir, "versions", "1.0.0", ".valid"), []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteActive(home.Active{Current: "1.0.0"}); err != nil {
		t.Fatal(err)
	}

	cmd := exec.CommandContext(ctx, wine, exe, "-test.run=^$")
	cmd.Env = append(wineEnv, envHelper+"=winflow", envHome+"="+winPath(hdir),
		envPack+"="+winPath(p1), envPack2+"="+winPath(p2), envKey+"="+pub.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("wine: %v\n%s", err, out)
	}
	var rep winReport
	// Wine may print its own lines first; the report is the last one.
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(string(out), "\r", "")), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil {
		t.Fatalf("report %q: %v", out, err)
	}
	t.Logf("under Wine: %+v", rep)
	for _, s := range rep.Steps {
		if strings.HasPrefix(s, "error: ") {
			t.Fatalf("flow failed: %s", s)
		}
	}
	if rep.RemoveRunning == "" {
		t.Errorf("Wine let a running .exe be deleted: the Windows behaviour under test is missing")
	}
	if rep.CleanupErr == "" || slices.Contains(rep.Removed1, filepath.Join("versions", "1.0.0")) {
		t.Errorf("first cleanup removed the running version: removed %v, error %q", rep.Removed1, rep.CleanupErr)
	}
	if !slices.Contains(rep.Removed2, `versions\1.0.0`) {
		t.Errorf("second cleanup did not remove versions/1.0.0: %v", rep.Removed2)
	}
	if rep.Active.Current != "1.2.0" || rep.Active.Previous != "1.1.0" {
		t.Errorf("active %+v", rep.Active)
	}
	for _, v := range []string{"1.1.0", "1.2.0"} {
		if _, err := os.Stat(filepath.Join(hdir, "versions", v, ".valid")); err != nil {
			t.Errorf("versions/%s: %v", v, err)
		}
		b, err := os.ReadFile(filepath.Join(hdir, "versions", v, "molt-agent.exe"))
		if err != nil || !strings.HasPrefix(string(b), "MZ molt-agent "+v) {
			t.Errorf("versions/%s/molt-agent.exe: %v", v, err)
		}
	}
	if _, err := os.Stat(filepath.Join(hdir, "versions", "1.0.0")); !os.IsNotExist(err) {
		t.Errorf("versions/1.0.0 still there: %v", err)
	}
}
