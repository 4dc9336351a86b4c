package platform

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kardianos/service"
)

// ServiceState is what Status reports.
type ServiceState string

const (
	ServiceRunning      ServiceState = "running"
	ServiceStopped      ServiceState = "stopped"
	ServiceNotInstalled ServiceState = "not-installed"
)

// Service installs and controls the molt-supervisor service of one home
// through the host's service manager (github.com/kardianos/service, with
// our own definitions: see RenderService).
type Service struct {
	spec ServiceSpec
	def  Definition
	ks   service.Service
}

// noProgram satisfies kardianos's Interface; Service only installs and
// controls, the running side is RunService.
type noProgram struct{}

func (noProgram) Start(service.Service) error { return nil }
func (noProgram) Stop(service.Service) error  { return nil }

// ServiceSystem names the host's service manager (one of the System
// constants), or "" when molt cannot install a service here.
func ServiceSystem() string {
	if s := service.ChosenSystem(); s != nil {
		return s.String()
	}
	return ""
}

// NewService prepares the service of spec for this host's service manager.
// It returns ErrNotSupported where there is none (OpenBSD).
func NewService(spec ServiceSpec) (*Service, error) {
	system := ServiceSystem()
	if system == "" {
		return nil, fmt.Errorf("service: %w", ErrNotSupported)
	}
	def, err := RenderService(system, spec)
	if err != nil {
		return nil, err
	}
	cfg := &service.Config{
		Name:        spec.Name,
		DisplayName: spec.DisplayName(),
		Description: spec.Description(),
		Executable:  spec.Exe,
		Arguments:   spec.Arguments(),
		Option:      service.KeyValue{},
	}
	if def.Option != "" {
		cfg.Option[def.Option] = def.Text
	}
	if system == SystemWindows {
		// kardianos applies one recovery action; applyRecovery below
		// completes it (more actions, non-crash failures).
		cfg.Option["OnFailure"] = "restart"
		cfg.Option["OnFailureDelayDuration"] = restartDelay.String()
		cfg.Option["OnFailureResetPeriod"] = 86400
	}
	ks, err := service.New(noProgram{}, cfg)
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	return &Service{spec: spec, def: def, ks: ks}, nil
}

// System is the service manager in use.
func (s *Service) System() string { return s.def.System }

// Definition is what Install writes (or, on Windows, sets).
func (s *Service) Definition() Definition { return s.def }

// Install installs the service; it does not start it. It returns
// ErrServiceInstalled when the same definition is already installed and
// ErrServiceConflict when another one of that name is. An error wrapping
// ErrServiceRecoveryIncomplete leaves the service installed.
func (s *Service) Install() error {
	st, err := s.Status()
	if err != nil {
		return err
	}
	if st != ServiceNotInstalled {
		same, err := s.installedMatches()
		if err != nil {
			return err
		}
		if same {
			return ErrServiceInstalled
		}
		return ErrServiceConflict
	}
	// A definition left behind by a half-done uninstall would make
	// kardianos refuse; ours (same content) is replaced, others are not.
	if s.def.Path != "" {
		if b, err := os.ReadFile(s.def.Path); err == nil {
			if string(b) != s.def.Text {
				return ErrServiceConflict
			}
			if err := os.Remove(s.def.Path); err != nil {
				return fmt.Errorf("install: %w", err)
			}
		}
	}
	if err := s.ks.Install(); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if err := s.afterInstall(); errors.Is(err, ErrServiceRecoveryIncomplete) {
		return err
	} else if err != nil {
		_ = s.ks.Uninstall()
		return fmt.Errorf("install: %w", err)
	}
	return nil
}

// installedMatches reports whether the installed definition is ours.
func (s *Service) installedMatches() (bool, error) {
	if s.def.System == SystemWindows {
		return windowsServiceMatches(s.spec)
	}
	b, err := os.ReadFile(s.def.Path)
	if errors.Is(err, os.ErrNotExist) {
		// Installed by other means (an SRC subsystem without the script).
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", s.def.Path, err)
	}
	return string(b) == s.def.Text, nil
}

func (s *Service) afterInstall() error {
	switch s.def.System {
	case SystemWindows:
		return applyWindowsRecovery(s.spec)
	case SystemAIX:
		// kardianos's mkssys gives the supervisor 30 s between SIGTERM and
		// SIGKILL: exactly its default stop grace, no margin.
		return runQuiet("chssys", "-s", s.spec.Name, "-w", fmt.Sprint(int(s.spec.StopTimeout().Seconds())))
	}
	return nil
}

// Uninstall stops the service if it runs and removes it. It returns
// ErrServiceNotInstalled when there is nothing to remove.
func (s *Service) Uninstall() error {
	st, err := s.Status()
	if err != nil {
		return err
	}
	if st == ServiceNotInstalled {
		return ErrServiceNotInstalled
	}
	if st == ServiceRunning {
		if err := s.Stop(); err != nil {
			return err
		}
	}
	if err := s.ks.Uninstall(); err != nil {
		return fmt.Errorf("uninstall: %w", err)
	}
	if s.def.System == SystemSysV {
		s.removeRCLinks()
	}
	return nil
}

// removeRCLinks removes the /etc/rc?.d links kardianos made for a SysV
// script; its Uninstall leaves them dangling.
func (s *Service) removeRCLinks() {
	for _, rl := range []string{"0", "1", "2", "3", "4", "5", "6"} {
		for _, prefix := range []string{"S50", "K02"} {
			link := filepath.Join("/etc", "rc"+rl+".d", prefix+s.spec.Name)
			if target, err := os.Readlink(link); err == nil && target == s.def.Path {
				_ = os.Remove(link)
			}
		}
	}
}

// Start starts the installed service.
func (s *Service) Start() error {
	if err := s.ks.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	return nil
}

// Stop stops the service; the supervisor stops its agent first.
func (s *Service) Stop() error {
	if s.def.System == SystemWindows {
		return stopService(s.spec)
	}
	if err := s.ks.Stop(); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	return nil
}

// Restart stops and starts the service.
func (s *Service) Restart() error {
	if s.def.System == SystemWindows {
		if err := stopService(s.spec); err != nil {
			return err
		}
		return s.Start()
	}
	if err := s.ks.Restart(); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	return nil
}

// Status reports whether the service is installed and running.
func (s *Service) Status() (ServiceState, error) {
	switch s.def.System {
	case SystemSysV, SystemRCS:
		// kardianos reads "service NAME status" and takes the LSB exit
		// status 3 (stopped) for an error; ask the script ourselves.
		return scriptStatus(s.def.Path)
	case SystemOpenRC:
		// OpenRC 0.45 (Debian 12) answers "rc-service NAME status" for a
		// service it does not know with exit 1, which kardianos takes for
		// an error (it expects 2): every install failed with "status:
		// exit status 1". Without our script there is no service.
		if _, err := os.Stat(s.def.Path); errors.Is(err, os.ErrNotExist) {
			return ServiceNotInstalled, nil
		}
	}
	st, err := s.ks.Status()
	if errors.Is(err, service.ErrNotInstalled) {
		return ServiceNotInstalled, nil
	}
	if err != nil {
		return "", fmt.Errorf("status: %w", err)
	}
	switch st {
	case service.StatusRunning:
		return ServiceRunning, nil
	case service.StatusStopped:
		return ServiceStopped, nil
	}
	return "", fmt.Errorf("status: unknown")
}

// scriptStatus runs an init script's status action: exit 0 is running, 3
// (LSB) or 1 is stopped.
func scriptStatus(script string) (ServiceState, error) {
	if _, err := os.Stat(script); errors.Is(err, os.ErrNotExist) {
		return ServiceNotInstalled, nil
	}
	out, err := exec.Command(script, "status").CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return ServiceRunning, nil
	case errors.As(err, &ee) && (ee.ExitCode() == 3 || ee.ExitCode() == 1):
		return ServiceStopped, nil
	}
	return "", fmt.Errorf("status: %s status: %v: %s", script, err, strings.TrimSpace(string(out)))
}

func runQuiet(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}
