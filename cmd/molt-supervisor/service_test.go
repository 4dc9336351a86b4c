package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/platform"
)

// fakeService records calls; its state changes as a service manager's would.
type fakeService struct {
	state      platform.ServiceState
	installErr error
	err        error // returned by every action
	calls      []string
	spec       platform.ServiceSpec
}

func (f *fakeService) System() string { return "fake-init" }
func (f *fakeService) Definition() platform.Definition {
	return platform.Definition{System: "fake-init", Path: "/etc/fake/" + f.spec.Name}
}
func (f *fakeService) Install() error {
	f.calls = append(f.calls, "install")
	if err := f.installErr; err != nil {
		f.installErr = nil // the next install (after a replace) succeeds
		return err
	}
	if f.err == nil {
		f.state = platform.ServiceStopped
	}
	return f.err
}
func (f *fakeService) Uninstall() error {
	f.calls = append(f.calls, "uninstall")
	if f.state == platform.ServiceNotInstalled {
		return platform.ErrServiceNotInstalled
	}
	f.state = platform.ServiceNotInstalled
	return f.err
}
func (f *fakeService) Start() error {
	f.calls = append(f.calls, "start")
	f.state = platform.ServiceRunning
	return f.err
}
func (f *fakeService) Stop() error {
	f.calls = append(f.calls, "stop")
	f.state = platform.ServiceStopped
	return f.err
}
func (f *fakeService) Restart() error {
	f.calls = append(f.calls, "restart")
	return f.err
}
func (f *fakeService) Status() (platform.ServiceState, error) { return f.state, nil }

func runServiceCmd(t *testing.T, f *fakeService, args ...string) (out string, code int) {
	t.Helper()
	root := &cobra.Command{Use: "molt-supervisor"}
	root.AddCommand(newServiceCmds(func(spec platform.ServiceSpec) (serviceControl, error) {
		f.spec = spec
		return f, nil
	})...)
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	old := cli.Stderr
	cli.Stderr = &stderr
	defer func() { cli.Stderr = old }()
	code = cli.Main(root, args, &stderr)
	return stdout.String() + stderr.String(), code
}

func TestServiceCommands(t *testing.T) {
	tests := []struct {
		name      string
		state     platform.ServiceState
		installEr error
		err       error
		args      []string
		wantCode  int
		wantOut   string
		wantCalls string
	}{
		{"install", platform.ServiceNotInstalled, nil, nil, []string{"install"}, 0, "installed service", "install"},
		{"install and start", platform.ServiceNotInstalled, nil, nil, []string{"install", "--start"}, 0, "started service", "install start"},
		{"install again", platform.ServiceStopped, platform.ErrServiceInstalled, nil, []string{"install"}, 0, "is already installed", "install"},
		{"install over another", platform.ServiceStopped, platform.ErrServiceConflict, nil, []string{"install"}, 1, "a different service named", "install"},
		{"install over another, replaced", platform.ServiceRunning, platform.ErrServiceConflict, nil, []string{"install", "--replace"}, 0, "replaced service", "install uninstall install start"},
		{"install over a stopped one, replaced", platform.ServiceStopped, platform.ErrServiceConflict, nil, []string{"install", "--replace"}, 0, "replaced service", "install uninstall install"},
		{"install without full recovery", platform.ServiceNotInstalled, fmt.Errorf("%w: x", platform.ErrServiceRecoveryIncomplete), nil, []string{"install"}, 0, "warning: service installed, but", "install"},
		{"install as non-root", platform.ServiceNotInstalled, nil, fs.ErrPermission, []string{"install"}, 1, "(run as root)", "install"},
		{"uninstall", platform.ServiceRunning, nil, nil, []string{"uninstall"}, 0, "uninstalled service", "uninstall"},
		{"uninstall again", platform.ServiceNotInstalled, nil, nil, []string{"uninstall"}, 0, "is not installed; nothing to remove", "uninstall"},
		{"start", platform.ServiceStopped, nil, nil, []string{"start"}, 0, "started service", "start"},
		{"start running", platform.ServiceRunning, nil, nil, []string{"start"}, 0, "already running", ""},
		{"start not installed", platform.ServiceNotInstalled, nil, nil, []string{"start"}, 1, "is not installed; install it with", ""},
		{"stop", platform.ServiceRunning, nil, nil, []string{"stop"}, 0, "stopped service", "stop"},
		{"stop stopped", platform.ServiceStopped, nil, nil, []string{"stop"}, 0, "is not running", ""},
		{"restart", platform.ServiceRunning, nil, nil, []string{"restart"}, 0, "restarted service", "restart"},
		{"restart stopped", platform.ServiceStopped, nil, nil, []string{"restart"}, 0, "started service", "start"},
		{"status running", platform.ServiceRunning, nil, nil, []string{"status"}, 0, "installed, running", ""},
		{"status stopped", platform.ServiceStopped, nil, nil, []string{"status"}, 3, "installed, stopped", ""},
		{"status not installed", platform.ServiceNotInstalled, nil, nil, []string{"status"}, 4, "not installed", ""},
		{"bad name", platform.ServiceStopped, nil, nil, []string{"status", "--name", "a b"}, 2, "service name", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := t.TempDir()
			f := &fakeService{state: tt.state, installErr: tt.installEr, err: tt.err}
			out, code := runServiceCmd(t, f, append(tt.args, "--home", h)...)
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) {
				t.Fatalf("exit %d, output %q; want exit %d and output containing %q", code, out, tt.wantCode, tt.wantOut)
			}
			calls := strings.Join(f.calls, " ")
			if calls != tt.wantCalls {
				t.Fatalf("calls %q, want %q", calls, tt.wantCalls)
			}
		})
	}
}

func TestServiceInstallPlacesSupervisor(t *testing.T) {
	h := home.New(t.TempDir())
	f := &fakeService{state: platform.ServiceNotInstalled}
	out, code := runServiceCmd(t, f, "install", "--home", h.Dir)
	if code != 0 || !strings.Contains(out, "copied ") {
		t.Fatalf("exit %d: %s", code, out)
	}
	fi, err := os.Stat(h.SupervisorBinary())
	if err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Fatalf("supervisor not placed as an executable: %v %v", fi, err)
	}
	// A supervisor already there (perhaps a newer one) is kept.
	if err := os.WriteFile(h.SupervisorBinary(), []byte("newer"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.state = platform.ServiceNotInstalled
	if out, code := runServiceCmd(t, f, "install", "--home", h.Dir); code != 0 || strings.Contains(out, "copied") {
		t.Fatalf("exit %d: %s", code, out)
	}
	if b, _ := os.ReadFile(h.SupervisorBinary()); string(b) != "newer" {
		t.Fatalf("install replaced an existing supervisor")
	}
}

func TestServiceSpecFromHome(t *testing.T) {
	h := home.New(t.TempDir())
	if err := os.WriteFile(h.ConfigPath(), []byte("supervisor:\n  stop_grace: 2m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &fakeService{state: platform.ServiceRunning}
	out, code := runServiceCmd(t, f, "status", "--json", "--home", h.Dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	var st serviceStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := platform.ServiceNameFor(h.Dir)
	if st.Name != want || f.spec.Name != want || st.Home != h.Dir || !st.Running || !st.Installed || st.State != "running" {
		t.Fatalf("status %+v, want name %s, home %s, running", st, want, h.Dir)
	}
	if f.spec.StopGrace.String() != "2m0s" || f.spec.Exe != h.SupervisorBinary() {
		t.Fatalf("spec %+v: want the stop grace from agent.yaml and the home's supervisor", f.spec)
	}
	if err := os.WriteFile(h.ConfigPath(), []byte("supervisor:\n  stop_grace: soon\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := runServiceCmd(t, f, "install", "--home", h.Dir); code != 1 || !strings.Contains(out, "stop_grace") {
		t.Fatalf("install with a bad agent.yaml: exit %d: %s", code, out)
	}
	// A broken agent.yaml must not keep an operator from stopping or
	// removing the service.
	for _, cmd := range []string{"status", "stop", "uninstall"} {
		if out, code := runServiceCmd(t, f, cmd, "--home", h.Dir); code != 0 {
			t.Fatalf("%s with a bad agent.yaml: exit %d: %s", cmd, code, out)
		}
	}
}

func TestServiceInstallNotesMissingAgent(t *testing.T) {
	h := home.New(t.TempDir())
	f := &fakeService{state: platform.ServiceNotInstalled}
	if out, code := runServiceCmd(t, f, "install", "--home", h.Dir); code != 0 || !strings.Contains(out, "active.json does not exist yet") {
		t.Fatalf("exit %d: %s", code, out)
	}
	if err := h.WriteActive(home.Active{Current: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	f.state = platform.ServiceNotInstalled
	if out, code := runServiceCmd(t, f, "install", "--home", h.Dir); code != 0 || strings.Contains(out, "does not exist yet") {
		t.Fatalf("exit %d: %s", code, out)
	}
}
