package release

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/protocol"
)

// The golden-image flow as users do it, with the package: the image's
// template gets the package and an agent.yaml, boots once (its agent
// enrolls), is stopped, reset-identity, and captured (the root is
// copied). Two clones boot: each makes its own identity, enrolls as a new
// agent and, activation upgrade being on, is upgraded to the latest
// release, supervisor included.
func TestGoldenImageFromPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and three supervised agents (-short)")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the packages are for Linux")
	}
	deb := linuxPackage(t, "1.0.0", AgentPackage, "deb")
	srv := e2etest.StartServer(t, e2etest.ServerOptions{Version: "1.0.0"})
	srv.Import(e2etest.Pack(t, e2etest.PackOptions{Version: "1.1.0"}))
	pub, _ := e2etest.Key(t)
	cfg := fmt.Sprintf("server: %s\nca_file: %s\ntrusted_keys: [%s]\nenrollment_token: %q\n"+
		"# The template enrolls once; its clones enroll with the same token.\nkeep_enrollment_token: true\n"+
		"supervisor: {ready_timeout: 30s, watch: 2s, crash_budget: 1, stop_grace: 5s}\n",
		srv.URL(), srv.CAFile(), pub, srv.EnrollToken(10))

	// The image is built in a chroot: systemd is installed, not running.
	tmpl := newRoot(t, false)
	tmpl.install(deb)
	tmpl.write("etc/molt/agent.yaml", cfg)
	if out, calls := tmpl.script("postinst", "configure"); len(calls) != 1 || calls[0] != "systemctl enable molt-supervisor.service" {
		t.Fatalf("postinst in the image: %q\n%s", calls, out)
	}
	th := home.New(tmpl.path("opt/molt"))

	// The template boots once: systemd would start the enabled unit.
	sup := startSupervisor(t, th)
	templateID := waitEnrolled(t, th)
	sup.stop(t)
	out := run(t, nil, tmpl.path("usr/lib/molt/molt-agent"), "reset-identity", "--home", th.Dir)
	if !strings.Contains(out, "removed identity "+templateID) {
		t.Fatalf("reset-identity: %s", out)
	}

	// Capture, then boot two clones with activation upgrade on.
	srv.OK("settings", "set", "activation-upgrade.linux", "true")
	var clones []home.Home
	for _, name := range []string{"clone-1", "clone-2"} {
		dst := filepath.Join(filepath.Dir(tmpl.root), name)
		if b, err := exec.Command("cp", "-a", tmpl.root, dst).CombinedOutput(); err != nil {
			t.Fatalf("capture: %v: %s", err, b)
		}
		h := home.New(filepath.Join(dst, "opt/molt"))
		clones = append(clones, h)
		startSupervisor(t, h)
	}
	ids := map[string]bool{templateID: true}
	for _, h := range clones {
		id := waitEnrolled(t, h)
		if ids[id] {
			t.Fatalf("%s enrolled as %s, an identity already taken", h.Dir, id)
		}
		ids[id] = true
	}
	e2etest.Eventually(t, 120*time.Second, "both clones upgraded on activation to 1.1.0", func() (bool, string) {
		n := 0
		var seen []string
		for _, a := range srv.Agents() {
			seen = append(seen, fmt.Sprintf("%s %s %s", a.ID, a.Version, a.UpgradeStatus))
			if a.ID != templateID && ids[a.ID] && a.Version == "1.1.0" && a.UpgradeStatus == protocol.UpgradeUpToDate {
				n++
			}
		}
		return n == 2, strings.Join(seen, "; ")
	})
	for _, h := range clones {
		e2etest.Eventually(t, 60*time.Second, h.Dir+": the supervisor upgraded itself", func() (bool, string) {
			out, _ := exec.Command(h.SupervisorBinary(), "version").CombinedOutput()
			return strings.Contains(string(out), "1.1.0"), string(out)
		})
	}
}

// waitEnrolled waits for h's agent to enroll and returns its id.
func waitEnrolled(t *testing.T, h home.Home) string {
	t.Helper()
	var id string
	e2etest.Eventually(t, 60*time.Second, h.Dir+" enrolled", func() (bool, string) {
		ident, err := agent.ReadIdentity(h)
		if err != nil {
			return false, err.Error()
		}
		id = ident.ID
		return ident.Enrolled(), fmt.Sprintf("%+v", ident.ID)
	})
	return id
}

// supervisor is a molt-supervisor run by the test, standing in for the
// service manager.
type supervisor struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startSupervisor(t *testing.T, h home.Home) *supervisor {
	t.Helper()
	log, err := os.Create(filepath.Join(filepath.Dir(h.Dir), "supervisor.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(h.SupervisorBinary(), "run", "--home", h.Dir)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &supervisor{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); log.Close(); close(s.done) }()
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			logFile := filepath.Join(h.LogsDir(), "supervisor.log")
			b, _ := os.ReadFile(logFile)
			t.Logf("%s:\n%s", logFile, lastLines(string(b), 40))
		}
	})
	return s
}

// stop ends the supervisor as the service manager does: SIGTERM (it stops
// its agent first), then a kill after the stop timeout.
func (s *supervisor) stop(t *testing.T) {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		t.Errorf("supervisor %d did not stop within 20 s of SIGTERM", s.cmd.Process.Pid)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
