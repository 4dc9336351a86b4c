package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/config"
	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/atomicfile"
	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/supervisor"
)

// Exit codes of "status", as LSB init scripts use them.
const (
	exitStatusStopped      = 3
	exitStatusNotInstalled = 4
)

// serviceControl is the host's service manager as the service commands
// use it (platform.Service). Install returns platform.ErrServiceInstalled
// or platform.ErrServiceConflict when a service of the name exists,
// Uninstall platform.ErrServiceNotInstalled when none does.
type serviceControl interface {
	System() string
	Definition() platform.Definition
	Install() error
	Uninstall() error
	Start() error
	Stop() error
	Restart() error
	Status() (platform.ServiceState, error)
}

type newServiceFunc func(platform.ServiceSpec) (serviceControl, error)

func newPlatformService(spec platform.ServiceSpec) (serviceControl, error) {
	return platform.NewService(spec)
}

// serviceFlags are the flags every service command takes.
type serviceFlags struct {
	home string
	name string
}

func (f *serviceFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.home, "home", "", "agent home (default $MOLT_HOME, else "+platform.DefaultHome()+")")
	cmd.Flags().StringVar(&f.name, "name", "", `service name (default "molt-supervisor" for the OS's default home, else derived from --home)`)
}

// spec resolves the flags into the service of one home. Only install
// insists on a readable agent.yaml (the stop timeout it writes comes from
// it); stopping or removing a service must work with a broken one.
func (f *serviceFlags) spec(strict bool) (platform.ServiceSpec, home.Home, error) {
	h := home.New(f.home)
	name := f.name
	if name == "" {
		name = platform.ServiceNameFor(h.Dir)
	}
	grace := platform.DefaultStopGrace
	c, err := config.Load(h.ConfigPath())
	switch {
	case errors.Is(err, config.ErrNotFound):
	case err != nil && !strict:
	case err != nil:
		return platform.ServiceSpec{}, h, cli.Exit(1, fmt.Errorf("%w (the service's stop timeout comes from supervisor.stop_grace)", err))
	case c.Supervisor.StopGrace > 0:
		grace = time.Duration(c.Supervisor.StopGrace)
	}
	spec := platform.ServiceSpec{Name: name, Home: h.Dir, Exe: h.SupervisorBinary(), StopGrace: grace}
	if err := spec.Validate(platform.ServiceSystem()); err != nil {
		return spec, h, cli.Usage("%v", err)
	}
	return spec, h, nil
}

// open resolves the flags and asks newService for the service they name.
func (f *serviceFlags) open(newService newServiceFunc, strict bool) (platform.ServiceSpec, home.Home, serviceControl, error) {
	spec, h, err := f.spec(strict)
	if err != nil {
		return spec, h, nil, err
	}
	svc, err := newService(spec)
	if err != nil {
		return spec, h, nil, serviceErr(err)
	}
	return spec, h, svc, nil
}

// newServiceCmds builds install, uninstall, start, stop, restart and status.
func newServiceCmds(newService newServiceFunc) []*cobra.Command {
	return []*cobra.Command{
		newInstallCmd(newService),
		newUninstallCmd(newService),
		newServiceActionCmd(newService, "start", "Start the installed service", serviceStart),
		newServiceActionCmd(newService, "stop", "Stop the service; the supervisor stops the agent first", serviceStop),
		newServiceActionCmd(newService, "restart", "Stop and start the service", serviceRestart),
		newStatusCmd(newService),
	}
}

const nameHelp = `

Each home has its own service. Its name is "molt-supervisor" for the OS's
default home and "molt-supervisor-<home path as a name>" for any other
(--home /srv/b/molt gives molt-supervisor-srv-b-molt), so two agents on one
host get two services without being told; --name overrides it, and must
then be given to every service command.`

func newInstallCmd(newService newServiceFunc) *cobra.Command {
	var f serviceFlags
	var start, replace bool
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install the supervisor of a home as an OS service",
		Long: `Install registers <home>/bin/molt-supervisor with the host's service
manager (systemd, SysV init, OpenRC, upstart, procd, launchd, Windows SCM,
FreeBSD rc.d, Solaris SMF or AIX SRC), to run "molt-supervisor run --home
<home>" at boot and again 1 s after it exits. If <home>/bin/molt-supervisor
does not exist yet, this binary is copied there.

The service manager's stop timeout is the home's supervisor.stop_grace (from
agent.yaml, default 30s) plus 15s; install --replace after changing it.

Installing what is already installed says so and succeeds. A different
service under the same name (another home, or this home's service as an
older molt or another stop_grace wrote it) is refused unless --replace is
given: then it is stopped, removed and installed anew, and started again if
it was running.` + nameHelp,
		Example: `  molt-supervisor install --start
  molt-supervisor install --home /srv/b/molt
  molt-supervisor install --replace`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, h, svc, err := f.open(newService, true)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if err := placeSupervisor(out, h); err != nil {
				return err
			}
			def := svc.Definition()
			err = svc.Install()
			switch {
			case errors.Is(err, platform.ErrServiceInstalled):
				fmt.Fprintf(out, "service %s is already installed (%s%s); nothing to change\n", spec.Name, svc.System(), where(def))
			case errors.Is(err, platform.ErrServiceConflict) && replace:
				if err := replaceService(out, svc, spec); err != nil {
					return err
				}
			case errors.Is(err, platform.ErrServiceConflict):
				return cli.Exit(1, fmt.Errorf("a different service named %s is installed (%s%s); replace it with install --replace, or choose another --name",
					spec.Name, svc.System(), where(def)))
			case err != nil && !errors.Is(err, platform.ErrServiceRecoveryIncomplete):
				return serviceErr(err)
			default:
				fmt.Fprintf(out, "installed service %s (%s%s): %s %s\n", spec.Name, svc.System(), where(def), spec.Exe, strings.Join(spec.Arguments(), " "))
				if err != nil {
					fmt.Fprintf(cli.Stderr, "warning: %v\n", err)
				}
			}
			if _, err := os.Stat(h.ActivePath()); errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintf(out, "note: %s does not exist yet: the service has no agent to run until a version is installed in the home\n", h.ActivePath())
			}
			if !start {
				if st, err := svc.Status(); err == nil && st != platform.ServiceRunning {
					fmt.Fprintf(out, "start it with: molt-supervisor start%s\n", flagsFor(cmd, spec))
				}
				return nil
			}
			return serviceStart(out, svc, spec)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&start, "start", false, "start the service after installing it")
	cmd.Flags().BoolVar(&replace, "replace", false, "replace a different service of the same name (an older definition, a changed stop_grace); a running one is started again")
	return cmd
}

// replaceService removes the service installed under spec's name and
// installs spec's, keeping it running if it ran.
func replaceService(out io.Writer, svc serviceControl, spec platform.ServiceSpec) error {
	st, err := svc.Status()
	if err != nil {
		return serviceErr(err)
	}
	if err := svc.Uninstall(); err != nil && !errors.Is(err, platform.ErrServiceNotInstalled) {
		return serviceErr(err)
	}
	if err := svc.Install(); err != nil && !errors.Is(err, platform.ErrServiceRecoveryIncomplete) {
		return serviceErr(err)
	} else if err != nil {
		fmt.Fprintf(cli.Stderr, "warning: %v\n", err)
	}
	fmt.Fprintf(out, "replaced service %s (%s%s): %s %s\n", spec.Name, svc.System(), where(svc.Definition()), spec.Exe, strings.Join(spec.Arguments(), " "))
	if st == platform.ServiceRunning {
		return serviceStart(out, svc, spec)
	}
	return nil
}

// placeSupervisor copies this binary to <home>/bin when none is there. An
// existing one is left alone: it may be newer, from a self-upgrade.
func placeSupervisor(out io.Writer, h home.Home) error {
	dst := h.SupervisorBinary()
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this executable: %w", err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		return fmt.Errorf("read this executable: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return serviceErr(fmt.Errorf("create %s: %w", filepath.Dir(dst), err))
	}
	if err := atomicfile.WriteFile(dst, b, 0o755); err != nil {
		return serviceErr(fmt.Errorf("copy supervisor to %s: %w", dst, err))
	}
	fmt.Fprintf(out, "copied %s to %s\n", self, dst)
	return nil
}

func newUninstallCmd(newService newServiceFunc) *cobra.Command {
	var f serviceFlags
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Stop and remove the OS service of a home",
		Long: `Uninstall stops the service if it runs (the supervisor stops the agent
first) and removes it from the service manager. The home itself is left
as it is. Uninstalling what is not installed says so and succeeds.` + nameHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, _, svc, err := f.open(newService, false)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			err = svc.Uninstall()
			switch {
			case errors.Is(err, platform.ErrServiceNotInstalled):
				fmt.Fprintf(out, "service %s is not installed; nothing to remove\n", spec.Name)
			case err != nil:
				return serviceErr(err)
			default:
				fmt.Fprintf(out, "uninstalled service %s (%s)\n", spec.Name, svc.System())
			}
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

type serviceAction func(out io.Writer, svc serviceControl, spec platform.ServiceSpec) error

func newServiceActionCmd(newService newServiceFunc, use, short string, action serviceAction) *cobra.Command {
	var f serviceFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  short + " of a home through the host's service manager." + nameHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, _, svc, err := f.open(newService, false)
			if err != nil {
				return err
			}
			return action(cmd.OutOrStdout(), svc, spec)
		},
	}
	f.register(cmd)
	return cmd
}

func serviceStart(out io.Writer, svc serviceControl, spec platform.ServiceSpec) error {
	return transition{
		hint:    "; install it with: molt-supervisor install --home " + spec.Home,
		settled: platform.ServiceRunning,
		already: "already running",
		act:     svc.Start,
		done:    "started",
	}.run(out, svc, spec)
}

func serviceStop(out io.Writer, svc serviceControl, spec platform.ServiceSpec) error {
	return transition{
		settled: platform.ServiceStopped,
		already: "not running",
		act:     svc.Stop,
		done:    "stopped",
	}.run(out, svc, spec)
}

func serviceRestart(out io.Writer, svc serviceControl, spec platform.ServiceSpec) error {
	return transition{
		settled:   platform.ServiceStopped,
		onSettled: func() error { return serviceStart(out, svc, spec) },
		act:       svc.Restart,
		done:      "restarted",
	}.run(out, svc, spec)
}

// transition is start, stop or restart. The state is asked first so that
// a service not installed gets a clear error and one already where the
// command would take it is told so instead of being changed.
type transition struct {
	hint      string                // added to "service X is not installed"
	settled   platform.ServiceState // the state in which act is not called
	already   string                // says so in that state ("already running")
	onSettled func() error          // or acts so instead of act
	act       func() error
	done      string // past tense of the command, for its one line of output
}

func (t transition) run(out io.Writer, svc serviceControl, spec platform.ServiceSpec) error {
	st, err := svc.Status()
	if err != nil {
		return serviceErr(err)
	}
	switch st {
	case platform.ServiceNotInstalled:
		return cli.Exit(1, fmt.Errorf("service %s is not installed%s", spec.Name, t.hint))
	case t.settled:
		if t.onSettled != nil {
			return t.onSettled()
		}
		fmt.Fprintf(out, "service %s is %s\n", spec.Name, t.already)
		return nil
	}
	if err := t.act(); err != nil {
		return serviceErr(err)
	}
	fmt.Fprintf(out, "%s service %s\n", t.done, spec.Name)
	return nil
}

// serviceStatus is status --json.
type serviceStatus struct {
	Name       string `json:"name"`
	System     string `json:"system"`
	Home       string `json:"home"`
	State      string `json:"state"` // running, stopped, not-installed
	Installed  bool   `json:"installed"`
	Running    bool   `json:"running"`
	Definition string `json:"definition,omitempty"`
	// SupervisorPid is the pid of the supervisor that runs the home (from
	// its lock), whether the service runs it or not; 0 when none runs or
	// its pid cannot be told.
	SupervisorPid int `json:"supervisor_pid,omitempty"`
	// Unmanaged is set when a supervisor runs the home while the service
	// does not (started by hand, or by something else).
	Unmanaged bool `json:"unmanaged,omitempty"`
}

func newStatusCmd(newService newServiceFunc) *cobra.Command {
	var f serviceFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Say whether the service of a home is installed and running",
		Long: `Status asks the host's service manager about the service of a home, and
the home's lock (state/supervisor.lock) whether a supervisor runs it. A
supervisor that runs while the service does not (started by hand with
"molt-supervisor run") is shown as unmanaged, with its pid; the service
cannot start while it runs.

Exit status is the service's: 0 running, 3 installed but stopped, 4 not
installed (as LSB init scripts answer), 1 when the service manager cannot be
asked. An unmanaged supervisor does not change it.` + nameHelp,
		Example: `  molt-supervisor status
  molt-supervisor status --home /srv/b/molt --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, h, svc, err := f.open(newService, false)
			if err != nil {
				return err
			}
			st, err := svc.Status()
			if err != nil {
				return serviceErr(err)
			}
			pid, runs, err := supervisor.Running(h)
			if err != nil {
				fmt.Fprintf(cli.Stderr, "warning: cannot tell whether a supervisor runs %s: %v\n", h.Dir, err)
			}
			s := serviceStatus{
				Name:      spec.Name,
				System:    svc.System(),
				Home:      spec.Home,
				State:     string(st),
				Installed: st != platform.ServiceNotInstalled,
				Running:   st == platform.ServiceRunning,
			}
			if runs {
				s.SupervisorPid = pid
				s.Unmanaged = st != platform.ServiceRunning
			}
			if s.Installed {
				s.Definition = svc.Definition().Path
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if err := cli.PrintJSON(out, s); err != nil {
					return err
				}
			} else {
				word := map[platform.ServiceState]string{
					platform.ServiceRunning:      "installed, running",
					platform.ServiceStopped:      "installed, stopped",
					platform.ServiceNotInstalled: "not installed",
				}[st]
				fmt.Fprintf(out, "service %s (%s%s): %s%s\n", s.Name, s.System, where(svc.Definition()), word, runningText(s))
			}
			switch st {
			case platform.ServiceStopped:
				return cli.Exit(exitStatusStopped, nil)
			case platform.ServiceNotInstalled:
				return cli.Exit(exitStatusNotInstalled, nil)
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

// runningText adds to the service's state what its lock says: the pid of
// the supervisor that runs the home, and that it runs unmanaged when the
// service does not run.
func runningText(s serviceStatus) string {
	pid := ""
	if s.SupervisorPid > 0 {
		pid = fmt.Sprintf("pid %d", s.SupervisorPid)
	}
	switch {
	case s.Unmanaged && pid != "":
		return "; a supervisor runs this home unmanaged (" + pid + ")"
	case s.Unmanaged:
		return "; a supervisor runs this home unmanaged"
	case pid != "":
		return " (" + pid + ")"
	}
	return ""
}

func where(def platform.Definition) string {
	if def.Path == "" {
		return ""
	}
	return ", " + def.Path
}

// flagsFor repeats the flags a follow-up command needs.
func flagsFor(cmd *cobra.Command, spec platform.ServiceSpec) string {
	var s string
	if cmd.Flags().Changed("home") {
		s += " --home " + spec.Home
	}
	if cmd.Flags().Changed("name") {
		s += " --name " + spec.Name
	}
	return s
}

// serviceErr adds what a user most often needs to hear.
func serviceErr(err error) error {
	switch {
	case errors.Is(err, platform.ErrNotSupported):
		return cli.Exit(1, fmt.Errorf("%w: no service manager molt can use on %s", err, runtime.GOOS))
	case errors.Is(err, fs.ErrPermission):
		who := "root"
		if runtime.GOOS == "windows" {
			who = "Administrator"
		}
		return cli.Exit(1, fmt.Errorf("%w (run as %s)", err, who))
	}
	return err
}
