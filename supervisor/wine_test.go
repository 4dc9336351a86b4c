//go:build linux

package supervisor_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/internal/e2etest/gobuild"
	"github.com/moltfleet/molt/internal/testtool"
	"github.com/moltfleet/molt/workload/spec"
)

// TestWindowsUnderWine runs the Windows build of the supervisor and of
// the test agent under Wine (prepared by scripts/wine-setup.sh): the
// control channel over inherited handles, a trial committed, the staged
// supervisor installed over the running .exe with minio/selfupdate, the
// agent stopped over the channel, and exit code 3 for the service
// manager's restart.
func TestWindowsUnderWine(t *testing.T) {
	t.Parallel()
	wineReady := wineOrSkip(t)
	dir := t.TempDir()
	h := home.Home{Dir: dir}
	exe := func(p string) string { return strings.TrimSuffix(p, ".exe") + ".exe" }
	for _, j := range []struct{ out, pkg, version string }{
		{exe(h.SupervisorBinary()), "github.com/moltfleet/molt/cmd/molt-supervisor", "1.0.0"},
		{exe(h.StagedSupervisor("1.1.0")), "github.com/moltfleet/molt/cmd/molt-supervisor", "2.0.0"},
		{exe(h.AgentBinary("1.1.0")), "github.com/moltfleet/molt/testdata/testagent", "1.1.0"},
	} {
		buildWindows(t, j.out, j.pkg, j.version)
	}
	if err := os.WriteFile(h.ValidPath("1.1.0"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteActive(home.Active{Current: "1.1.0", Previous: "1.0.0", Trial: &home.Trial{Version: "1.1.0", Switched: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	wine, wineEnv := wineReady()
	winHome := `Z:` + strings.ReplaceAll(dir, "/", `\`)
	cmd := exec.Command(wine, exe(h.SupervisorBinary()), "run", "--home", winHome, "--watch", "2s", "--stop-grace", "5s")
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
	// A Wine process that outlives the program (the test's prefix ends
	// them all at its end) must not hold the test up on the output pipe.
	cmd.WaitDelay = 5 * time.Second
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

// TestWorkloadUnderWine runs the Windows builds of the supervisor, the
// test agent and the test workload under Wine: the workload .exe is
// started in its job object and passes its ready check, an upgrade that
// changes it stops it and starts the new one, and the supervisor's exit
// (3, after its own upgrade) stops the workload too.
func TestWorkloadUnderWine(t *testing.T) {
	t.Parallel()
	wineReady := wineOrSkip(t)
	dir := t.TempDir()
	h := home.Home{Dir: dir}
	exe := func(p string) string { return strings.TrimSuffix(p, ".exe") + ".exe" }
	port := freePort(t)
	// Its own builds first: TestWindowsUnderWine builds the others.
	for _, j := range []struct{ out, pkg, version string }{
		{filepath.Join(h.WorkloadDir("1.0.0", "w"), "testworkload.exe"), "github.com/moltfleet/molt/testdata/testworkload", ""},
		{exe(h.AgentBinary("1.0.0")), "github.com/moltfleet/molt/testdata/testagent", "1.0.0"},
		{exe(h.SupervisorBinary()), "github.com/moltfleet/molt/cmd/molt-supervisor", "1.0.0"},
		{exe(h.StagedSupervisor("1.1.0")), "github.com/moltfleet/molt/cmd/molt-supervisor", "2.0.0"},
		{exe(h.AgentBinary("1.1.0")), "github.com/moltfleet/molt/testdata/testagent", "1.1.0"},
	} {
		buildWindows(t, j.out, j.pkg, j.version)
	}
	th := &testHome{t: t, Home: h}
	th.copy(filepath.Join(h.WorkloadDir("1.0.0", "w"), "testworkload.exe"), filepath.Join(h.WorkloadDir("1.1.0", "w"), "testworkload.exe"))
	for _, v := range []string{"1.0.0", "1.1.0"} {
		sp := workloadSpec(port, "-tag", v)
		sp.Command = "testworkload.exe"
		sp.Ready.Within = spec.Duration(60 * time.Second)
		sp.Ready.Interval = spec.Duration(200 * time.Millisecond)
		sp.Live = nil
		b, err := os.ReadFile(filepath.Join(h.WorkloadDir(v, "w"), "testworkload.exe"))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		th.writeInstalled(v, []spec.Workload{{Spec: sp, Files: []spec.File{{Path: "testworkload.exe", Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:]), Mode: "0755"}}}})
		if err := os.WriteFile(h.ValidPath(v), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.WriteActive(home.Active{Current: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	wine, wineEnv := wineReady()
	winHome := `Z:` + strings.ReplaceAll(dir, "/", `\`)
	cmd := exec.Command(wine, exe(h.SupervisorBinary()), "run", "--home", winHome, "--watch", "2s", "--stop-grace", "5s")
	cmd.Env = wineEnv
	var out e2etest.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second // see runWithin
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	log := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "logs", "supervisor.log"))
		return string(b)
	}
	th.waitFor("workload 1.0.0 ready under Wine", 90*time.Second, func() bool { return len(th.wfind("1.0.0", "ready")) >= 1 })
	// Switch as the agent does: active.json names 1.1.0 under trial, and
	// the agent exits 11.
	if err := h.WriteActive(home.Active{Current: "1.1.0", Previous: "1.0.0", Trial: &home.Trial{Version: "1.1.0", Switched: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "testagent.exit11"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(3 * time.Minute):
		t.Fatalf("the supervisor under Wine did not exit after its upgrade\n%s\n%s", out.String(), log())
	}
	var ee *exec.ExitError
	if !errors.As(waitErr, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("supervisor under Wine: %v, want exit 3 after its upgrade\n%s\n%s", waitErr, out.String(), log())
	}
	r, ok, err := h.ReadResult()
	if err != nil || !ok || r.Outcome != home.OutcomeCommitted || r.Version != "1.1.0" {
		t.Errorf("result.json = %+v (%v), want 1.1.0 committed", r, err)
	}
	old, started := th.wfind("1.0.0", "start"), th.wfind("1.1.0", "start")
	if len(old) != 1 || len(started) != 1 || len(th.wfind("1.1.0", "ready")) != 1 {
		t.Fatalf("workload events under Wine: %+v, want 1.0.0 started once, then 1.1.0 started and ready", th.wevents())
	}
	if !started[0].at.After(old[0].at) {
		t.Errorf("1.1.0 started before 1.0.0")
	}
	for _, want := range []string{`"msg":"stopping the workload","workload":"w","workload_version":"1.0.0"`, `"msg":"workload ready","workload":"w","workload_version":"1.1.0"`} {
		if !strings.Contains(log(), want) {
			t.Errorf("supervisor.log lacks %s:\n%s", want, log())
		}
	}
	// Every workload process ended with the supervisor: the port is free.
	th.waitFor("the workload's port free after the supervisor's exit", 10*time.Second, func() bool {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			ln.Close()
		}
		return err == nil
	})
}

// wineOrSkip starts booting a Wine prefix of the test's own and returns
// the function that waits for it (testtool.StartWine), or skips the test
// (saying how to enable it) when Wine or its prepared prefix is missing;
// in CI it fails instead (testtool).
func wineOrSkip(t *testing.T) func() (string, []string) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow: Wine")
	}
	return testtool.StartWine(t)
}

// buildWindows builds pkg for windows/amd64 at version into out (a copy
// from the tests' shared build cache: the test may replace it, as the
// self-upgrade does).
func buildWindows(t *testing.T, out, pkg, version string) {
	t.Helper()
	gobuild.Must(t, out, gobuild.Options{
		Pkgs: []string{pkg}, LDFlags: "-X github.com/moltfleet/molt/internal/buildinfo.Version=" + version,
		Env: []string{"GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0"},
	})
}
