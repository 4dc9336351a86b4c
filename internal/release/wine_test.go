//go:build linux

package release

import (
	"bytes"
	"context"
	"errors"
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
)

// winPath is the Windows name Wine gives a Unix path (drive Z:).
func winPath(p string) string { return `Z:` + strings.ReplaceAll(p, "/", `\`) }

// The MSI under Wine's msiexec, in a freshly booted prefix of the test's
// own (testtool.Wine): installed with AGENTCONFIG, it puts the binaries in
// Program Files, lays out C:\ProgramData\molt and registers the service
// (Wine cannot start a Go service, see docs/service.md, so "installed,
// stopped" is as far as it goes); uninstalled, the binaries and the
// service are gone and the home is kept.
func TestMSIUnderWine(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: builds Windows binaries, and every Wine command takes seconds")
	}
	wixl := testtool.Need(t, "wixl", "apt-get install wixl")
	// Wine boots a prefix of the test's own while the binaries and the
	// MSI build.
	wineReady := testtool.StartWine(t)
	o := fakeOptions(t, "1.0.0", "windows/amd64")
	o.Wixl = wixl
	p := Platform{"windows", "amd64"}
	// The custom actions run these two; molt.exe stays a stand-in.
	for _, prog := range []string{"molt-agent", "molt-supervisor"} {
		os.Remove(p.Binary(o.BinDir, prog))
		gobuild.Must(t, p.Binary(o.BinDir, prog), gobuild.Options{
			Pkgs: []string{"./cmd/" + prog}, LDFlags: "-X " + BuildInfoPkg + ".Version=1.0.0",
			Dir: e2etest.ModuleRoot(t), Env: []string{"GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0"},
		})
	}
	msi, err := MSI(o, p)
	if err != nil {
		t.Fatal(err)
	}
	wine, env := wineReady()
	var prefix string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "WINEPREFIX="); ok {
			prefix = v
		}
	}
	wineRun := func(args ...string) (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, wine, args...)
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			return out.String(), ee.ExitCode()
		case err != nil:
			t.Fatalf("wine %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String(), 0
	}
	h := home.New(filepath.Join(prefix, "drive_c", "ProgramData", "molt"))
	programFiles := filepath.Join(prefix, "drive_c", "Program Files", "molt")
	supervisor := `C:\ProgramData\molt\bin\molt-supervisor.exe`

	cfg := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(cfg, []byte(agentYAML(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := wineRun("msiexec", "/i", winPath(msi.Path), "AGENTCONFIG="+winPath(cfg), "/qn")
	if code != 0 {
		t.Fatalf("msiexec /i: exit %d\n%s", code, out)
	}
	for _, f := range []string{"molt.exe", "molt-agent.exe", "molt-supervisor.exe", "README.md", "LICENSE.txt"} {
		if _, err := os.Stat(filepath.Join(programFiles, f)); err != nil {
			t.Errorf("after install: %v", err)
		}
	}
	if a, err := h.ReadActive(); err != nil || a.Current != "1.0.0" {
		t.Fatalf("the home after install: %+v, %v\n%s", a, err, out)
	}
	if st, code := wineRun(supervisor, "status"); code != 3 || !strings.Contains(st, "installed, stopped") {
		t.Errorf("molt-supervisor status after install: exit %d, want 3 (installed; Wine cannot start it)\n%s", code, st)
	}

	if out, code := wineRun("msiexec", "/x", winPath(msi.Path), "/qn"); code != 0 {
		t.Fatalf("msiexec /x: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(programFiles); err == nil {
		t.Errorf("Program Files\\molt is still there after uninstall")
	}
	if st, code := wineRun(supervisor, "status"); code != 4 || !strings.Contains(st, "not installed") {
		t.Errorf("molt-supervisor status after uninstall: exit %d, want 4\n%s", code, st)
	}
	if _, err := os.Stat(h.ActivePath()); err != nil {
		t.Errorf("uninstall removed the home: %v", err)
	}
}
