//go:build linux

package supervisor_test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
)

// TestWindowsUnderWine runs the Windows build of the supervisor and of
// the test agent under Wine (prepared by scripts/wine-setup.sh): the
// control channel over inherited handles, a trial committed, the staged
// supervisor installed over the running .exe with minio/selfupdate, the
// agent stopped over the channel, and exit code 3 for the service
// manager's restart.
func TestWindowsUnderWine(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("slow: Wine")
	}
	wine := os.Getenv("MOLT_WINE")
	if wine == "" {
		wine = "/usr/lib/wine/wine64"
	}
	prefix := os.Getenv("WINEPREFIX")
	if prefix == "" {
		prefix = "/tmp/molt-wine"
	}
	if _, err := os.Stat(wine); err != nil {
		t.Skipf("Wine is not installed (%v); run scripts/wine-setup.sh", err)
	}
	if _, err := os.Stat(filepath.Join(prefix, "drive_c", "windows", "system32", "bcryptprimitives.dll")); err != nil {
		t.Skipf("Wine prefix %s is not prepared (%v); run scripts/wine-setup.sh", prefix, err)
	}
	dir := t.TempDir()
	h := home.Home{Dir: dir}
	exe := func(p string) string { return strings.TrimSuffix(p, ".exe") + ".exe" }
	for _, j := range []struct{ out, pkg, version string }{
		{exe(h.SupervisorBinary()), "github.com/moltfleet/molt/cmd/molt-supervisor", "1.0.0"},
		{exe(h.StagedSupervisor("1.1.0")), "github.com/moltfleet/molt/cmd/molt-supervisor", "2.0.0"},
		{exe(h.AgentBinary("1.1.0")), "github.com/moltfleet/molt/testdata/testagent", "1.1.0"},
	} {
		cmd := exec.Command("go", "build", "-ldflags", "-X github.com/moltfleet/molt/internal/buildinfo.Version="+j.version, "-o", j.out, j.pkg)
		cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", j.pkg, err, out)
		}
	}
	if err := os.WriteFile(h.ValidPath("1.1.0"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteActive(home.Active{Current: "1.1.0", Previous: "1.0.0", Trial: &home.Trial{Version: "1.1.0", Switched: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	winHome := `Z:` + strings.ReplaceAll(dir, "/", `\`)
	cmd := exec.Command(wine, exe(h.SupervisorBinary()), "run", "--home", winHome, "--watch", "2s", "--stop-grace", "5s")
	wineEnv := append(os.Environ(), "WINEPREFIX="+prefix, "WINEDEBUG=-all", "WINEDLLOVERRIDES=mscoree,mshtml=", "DISPLAY=")
	cmd.Env = wineEnv
	out, err := runWithin(cmd, 2*time.Minute)
	log, _ := os.ReadFile(filepath.Join(dir, "logs", "supervisor.log"))
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("supervisor under Wine: %v, want exit 3 after its upgrade\n%s\n%s", err, out, log)
	}
	r, ok, err := h.ReadResult()
	if err != nil || !ok || r.Outcome != home.OutcomeCommitted || r.Supervisor == nil || !r.Supervisor.Upgraded || r.Supervisor.To != "2.0.0" {
		t.Errorf("result.json = %+v (%v), want committed and the supervisor upgraded to 2.0.0", r, err)
	}
	for _, want := range []string{`"msg":"agent ready"`, `"line":"testagent 1.1.0 starting, mode healthy"`, `"msg":"supervisor binary replaced"`, `"status":"exit status 0"`} {
		if !strings.Contains(string(log), want) {
			t.Errorf("supervisor.log lacks %s:\n%s", want, log)
		}
	}
	ev, _ := os.ReadFile(filepath.Join(dir, "testagent.events"))
	if !strings.Contains(string(ev), " ready\n") || !strings.Contains(string(ev), " stop\n") {
		t.Errorf("the agent did not say ready and get stop over the channel:\n%s", ev)
	}
	vcmd := exec.Command(wine, exe(h.SupervisorBinary()), "version", "--json")
	vcmd.Env = wineEnv
	vout, err := vcmd.Output()
	var info struct{ Version string }
	if err == nil {
		err = json.Unmarshal(vout, &info)
	}
	if err != nil || info.Version != "2.0.0" {
		t.Errorf("bin/molt-supervisor.exe version: %q, %v; want 2.0.0", vout, err)
	}
	if _, err := os.Stat(exe(h.SupervisorBinary()) + ".old"); err != nil {
		t.Errorf("old binary not kept: %v", err)
	}
}

func runWithin(cmd *exec.Cmd, d time.Duration) ([]byte, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return []byte(out.String()), err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		return []byte(out.String()), errors.New("still running after " + d.String())
	}
}
