package nspawn

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Machine is a booted container: its init is PID 1 of its own PID, mount,
// UTS, IPC and cgroup namespaces; it shares the host's network, so what it
// runs reaches servers on the host's loopback.
type Machine struct {
	// Root is the container's / as the host sees it (the overlay's merged
	// directory): Path(p) is Root+p.
	Root string
	// Name is the machine's name and host name.
	Name string

	dir     string // upper/, work/, root/, console.log
	console *os.File
	cmd     *exec.Cmd
	done    chan struct{}
	leader  int
	pidns   string // the container's PID namespace (/proc/PID/ns/pid)
	booted  []string

	killSignal string
}

// Boot boots s's cached root (Make) on an overlay in dir (an empty
// directory the caller removes afterwards) and returns once its init
// runs; Poweroff must be called in every case, also when Boot fails.
// WaitRunning waits for the boot to finish.
func Boot(ctx context.Context, s Spec, dir string) (*Machine, error) {
	m, err := Mount(s, dir)
	if err != nil {
		return m, err
	}
	return m, m.Boot(ctx)
}

// Mount prepares s's machine without booting it: the overlay of its
// cached root is mounted at Root, where a test may change the root as an
// image build does (Build) before Boot. Poweroff must be called in
// every case.
func Mount(s Spec, dir string) (*Machine, error) {
	base := s.Path()
	var b [4]byte
	_, _ = rand.Read(b[:])
	m := &Machine{Root: filepath.Join(dir, "root"), Name: "molt-" + hex.EncodeToString(b[:]), dir: dir,
		done: make(chan struct{}), booted: s.Booted, killSignal: s.KillSignal}
	for _, d := range []string{"upper", "work", "root"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return m, fmt.Errorf("mount: %w", err)
		}
	}
	opts := "lowerdir=" + base + ",upperdir=" + filepath.Join(dir, "upper") + ",workdir=" + filepath.Join(dir, "work")
	if err := syscall.Mount("overlay", m.Root, "overlay", 0, opts); err != nil {
		return m, fmt.Errorf("mount: overlay of %s: %w", base, err)
	}
	return m, nil
}

// Build runs args in the root before Boot, as an image build does: in a
// container with /proc, /sys and /dev but no init (systemd-nspawn without
// --boot, as mkosi builds images), so systemd is installed but does not
// run. Its output (stdout and stderr) is returned; the error carries it
// too.
func (m *Machine) Build(ctx context.Context, args ...string) (string, error) {
	nsargs := []string{"--quiet", "--directory", m.Root, "--machine", m.Name, "--register=no", "--keep-unit",
		"--link-journal=no", "--console=pipe", "--", "/usr/bin/env", "-i"}
	cmd := exec.CommandContext(ctx, "systemd-nspawn", append(append(nsargs, Env...), args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("build in %s: %s: %w\n%s", m.Root, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Boot boots the mounted root and returns once its init runs.
func (m *Machine) Boot(ctx context.Context) error {
	console, err := os.Create(filepath.Join(m.dir, "console.log"))
	if err != nil {
		return fmt.Errorf("boot: %w", err)
	}
	m.console = console
	// --register=no --keep-unit: the host need not run systemd (no
	// machined, no bus to ask for a scope); the container stays in the
	// cgroup of whoever started it. --link-journal=no: nothing of the
	// container's is linked into the host's /var/log.
	args := []string{"--quiet", "--directory", m.Root, "--machine", m.Name,
		"--boot", "--register=no", "--keep-unit", "--link-journal=no", "--console=read-only"}
	if m.killSignal != "" {
		args = append(args, "--kill-signal="+m.killSignal)
	}
	m.cmd = exec.Command("systemd-nspawn", args...)
	m.cmd.Stdout, m.cmd.Stderr = console, console
	// Its own process group: a Ctrl-C of the test reaches the test, whose
	// cleanup powers the container off, not the container directly.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		m.cmd = nil
		return fmt.Errorf("boot: systemd-nspawn: %w", err)
	}
	go func() { _ = m.cmd.Wait(); close(m.done) }()
	for {
		if pid, ok := m.findLeader(); ok {
			m.leader = pid
			if m.pidns, err = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err != nil {
				return fmt.Errorf("boot: %w", err)
			}
			return nil
		}
		select {
		case <-m.done:
			return fmt.Errorf("boot: systemd-nspawn exited: %v\n%s", m.cmd.ProcessState, m.Console())
		case <-ctx.Done():
			return fmt.Errorf("boot: no init in the container: %w\n%s", ctx.Err(), m.Console())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// findLeader finds the container's PID 1: a descendant of nspawn that is
// PID 1 of its own PID namespace.
func (m *Machine) findLeader() (int, bool) {
	for _, p := range procs() {
		st, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/status")
		if err != nil {
			continue
		}
		var ppid int
		var nspid []string
		for _, line := range strings.Split(string(st), "\n") {
			k, v, _ := strings.Cut(line, ":")
			switch k {
			case "PPid":
				ppid, _ = strconv.Atoi(strings.TrimSpace(v))
			case "NSpid":
				nspid = strings.Fields(v)
			}
		}
		if len(nspid) > 1 && nspid[len(nspid)-1] == "1" && m.descends(ppid) {
			return p, true
		}
	}
	return 0, false
}

func (m *Machine) descends(pid int) bool {
	for i := 0; i < 8 && pid > 1; i++ {
		if pid == m.cmd.Process.Pid {
			return true
		}
		st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return false
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at ')'.
		f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
		if len(f) < 2 {
			return false
		}
		pid, _ = strconv.Atoi(f[1])
	}
	return false
}

// procs lists the host's process ids.
func procs() []int {
	ents, _ := os.ReadDir("/proc")
	var ps []int
	for _, e := range ents {
		if p, err := strconv.Atoi(e.Name()); err == nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// Leader is the host's pid of the container's init.
func (m *Machine) Leader() int { return m.leader }

// Path is the host's path of the container's path p.
func (m *Machine) Path(p string) string { return filepath.Join(m.Root, p) }

// Console is what the container's console printed so far.
func (m *Machine) Console() string {
	b, _ := os.ReadFile(filepath.Join(m.dir, "console.log"))
	return string(b)
}

// Env is the environment of commands run inside.
var Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
	"DEBIAN_FRONTEND=noninteractive", "TERM=dumb", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"}

// Command is args run inside the container (nsenter into its init's
// namespaces and root), as root, with Env.
func (m *Machine) Command(ctx context.Context, args ...string) *exec.Cmd {
	nsargs := []string{"--target", strconv.Itoa(m.leader), "--mount", "--uts", "--ipc", "--pid", "--cgroup",
		"--root", "--wd", "--", "/usr/bin/env", "-i"}
	nsargs = append(append(nsargs, Env...), args...)
	return exec.CommandContext(ctx, "nsenter", nsargs...)
}

// Run runs args inside and returns their output (stdout and stderr); the
// error carries the output too.
func (m *Machine) Run(ctx context.Context, args ...string) (string, error) {
	out, err := m.Command(ctx, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s: %w\n%s", m.Name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// WaitRunning waits until the boot finished and returns the init's word
// for its state: for systemd what `systemctl is-system-running` says
// (running or degraded), else "running" once the Spec's Booted command
// succeeds.
func (m *Machine) WaitRunning(ctx context.Context) (string, error) {
	for {
		var state string
		if m.booted != nil {
			if err := m.Command(ctx, m.booted...).Run(); err == nil {
				return "running", nil
			}
			state = "booting"
		} else {
			out, _ := m.Command(ctx, "systemctl", "is-system-running").Output()
			state = strings.TrimSpace(string(out))
			if state == "running" || state == "degraded" {
				return state, nil
			}
		}
		select {
		case <-m.done:
			return state, fmt.Errorf("wait for boot: the container ended\n%s", m.Console())
		case <-ctx.Done():
			return state, fmt.Errorf("wait for boot: still %q: %w", state, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Proc is a process of the container.
type Proc struct {
	PID     int    // the host's pid
	NSPID   int    // its pid inside
	Comm    string // /proc/PID/comm
	Cmdline string // arguments joined by spaces
}

// Processes lists the container's processes (those in its PID namespace).
func (m *Machine) Processes() []Proc {
	if m.pidns == "" {
		return nil
	}
	var out []Proc
	for _, p := range procs() {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p)); err != nil || l != m.pidns {
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
		cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		pr := Proc{PID: p, Comm: strings.TrimSpace(string(comm)), Cmdline: strings.TrimSpace(strings.ReplaceAll(string(cl), "\x00", " "))}
		for _, line := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
				f := strings.Fields(v)
				pr.NSPID, _ = strconv.Atoi(f[len(f)-1])
			}
		}
		if pr.Comm == "" && pr.Cmdline == "" {
			continue // ended while being read
		}
		out = append(out, pr)
	}
	return out
}

// Poweroff shuts the container down (systemd-nspawn's SIGTERM: an orderly
// poweroff of the container's init), kills it after timeout, unmounts the
// overlay and checks that no process of it is left. It may be called more
// than once and after a failed Boot.
func (m *Machine) Poweroff(timeout time.Duration) error {
	var errs []error
	if m.cmd != nil && m.cmd.Process != nil {
		select {
		case <-m.done:
		default:
			_ = m.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-m.done:
			case <-time.After(timeout):
				errs = append(errs, fmt.Errorf("poweroff: %s did not stop within %s; killed", m.Name, timeout))
				// Killing the PID namespace's init kills all of it.
				if m.leader > 0 {
					_ = syscall.Kill(m.leader, syscall.SIGKILL)
				}
				_ = m.cmd.Process.Kill()
				<-m.done
			}
		}
	}
	if m.pidns != "" {
		deadline := time.Now().Add(5 * time.Second)
		for len(m.Processes()) > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if left := m.Processes(); len(left) > 0 {
			errs = append(errs, fmt.Errorf("poweroff: processes left: %v", left))
		}
	}
	if m.console != nil {
		m.console.Close()
	}
	if err := syscall.Unmount(m.Root, 0); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
		// EINVAL: not mounted (a second call, or Boot failed before).
		errs = append(errs, fmt.Errorf("poweroff: unmount %s: %w", m.Root, err))
	}
	return errors.Join(errs...)
}
