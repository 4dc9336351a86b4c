package platform

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

// RunService runs run until it returns. Started by the SCM, it speaks the
// SCM's protocol: a stop or shutdown request cancels ctx. When run returns
// an error on its own, the service stops with a service-specific exit code,
// which the SCM counts as a (non-crash) failure and answers with the
// recovery action Install set: a restart after 1 s. That is how the
// supervisor restarts itself after replacing its binary. Run by hand, ctx
// is cancelled on Ctrl-C. RunService returns run's error.
func RunService(name string, run func(ctx context.Context) error) error {
	isService, err := svc.IsWindowsService()
	if err != nil {
		return fmt.Errorf("detect service: %w", err)
	}
	if !isService {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		return run(ctx)
	}
	h := &scmHandler{run: run}
	if err := svc.Run(name, h); err != nil {
		return fmt.Errorf("run service %s: %w", name, err)
	}
	return h.err
}

// scmHandler adapts run to svc.Handler. kardianos/service's Run cannot be
// used here: its service only ends on a request from the SCM, never
// because the program itself is done.
type scmHandler struct {
	run func(ctx context.Context) error
	err error
}

func (h *scmHandler) Execute(_ []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.run(ctx) }()
	// Pre-shutdown gives the supervisor the time Install set (its stop
	// grace plus a margin) to stop the agent when the host shuts down;
	// plain shutdown notification allows a few seconds only.
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown | svc.AcceptPreShutdown}
	stopping := false
	for {
		select {
		case err := <-done:
			h.err = err
			if err != nil && !stopping {
				return true, 1
			}
			return false, 0
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- c.CurrentStatus
			case svc.Stop, svc.Shutdown, svc.PreShutdown:
				stopping = true
				status <- svc.Status{State: svc.StopPending}
				cancel()
			}
		}
	}
}

// windowsBinaryPath is the command line mgr.CreateService records.
func windowsBinaryPath(spec ServiceSpec) string {
	s := syscall.EscapeArg(spec.Exe)
	for _, a := range spec.Arguments() {
		s += " " + syscall.EscapeArg(a)
	}
	return s
}

func windowsServiceMatches(spec ServiceSpec) (bool, error) {
	m, err := mgr.Connect()
	if err != nil {
		return false, fmt.Errorf("connect to service manager: %w", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(spec.Name)
	if err != nil {
		return false, fmt.Errorf("open service %s: %w", spec.Name, err)
	}
	defer s.Close()
	bin, err := serviceBinaryPath(s.Handle)
	if err != nil {
		return false, fmt.Errorf("service %s config: %w", spec.Name, err)
	}
	return bin == windowsBinaryPath(spec), nil
}

// serviceBinaryPath reads a service's command line. mgr's Config also asks
// for settings Wine's service manager does not know, and fails there.
func serviceBinaryPath(h windows.Handle) (string, error) {
	n := uint32(1024)
	for {
		b := make([]byte, n)
		p := (*windows.QUERY_SERVICE_CONFIG)(unsafe.Pointer(&b[0]))
		err := windows.QueryServiceConfig(h, p, n, &n)
		if err == nil {
			return windows.UTF16PtrToString(p.BinaryPathName), nil
		}
		if !errors.Is(err, windows.ERROR_INSUFFICIENT_BUFFER) || n <= uint32(len(b)) {
			return "", err
		}
	}
}

// applyWindowsRecovery sets the recovery and the pre-shutdown timeout
// WindowsServiceSettings describes. kardianos sets a single recovery action
// and leaves FailureActionsOnNonCrashFailures off, so an exit with an error
// code would not be restarted.
func applyWindowsRecovery(spec ServiceSpec) error {
	settings := windowsServiceSettings(spec)
	rec := settings.Recovery
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connect to service manager: %w", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(spec.Name)
	if err != nil {
		return fmt.Errorf("open service %s: %w", spec.Name, err)
	}
	defer s.Close()
	actions := make([]mgr.RecoveryAction, len(rec.Actions))
	for i, a := range rec.Actions {
		d, err := time.ParseDuration(a.Delay)
		if err != nil || a.Type != "restart" {
			return fmt.Errorf("recovery action %d: %+v", i, a)
		}
		actions[i] = mgr.RecoveryAction{Type: mgr.ServiceRestart, Delay: d}
	}
	if err := s.SetRecoveryActions(actions, rec.ResetPeriodSeconds); err != nil {
		return fmt.Errorf("set recovery actions: %w", err)
	}
	pre := struct{ timeoutMS uint32 }{settings.PreshutdownTimeoutSeconds * 1000}
	if err := windows.ChangeServiceConfig2(s.Handle, windows.SERVICE_CONFIG_PRESHUTDOWN_INFO, (*byte)(unsafe.Pointer(&pre))); err != nil {
		return fmt.Errorf("set pre-shutdown timeout: %w", err)
	}
	if err := s.SetRecoveryActionsOnNonCrashFailures(rec.OnNonCrashFailures); err != nil {
		if errors.Is(err, windows.ERROR_INVALID_LEVEL) {
			// Wine's service manager has no such setting.
			return fmt.Errorf("%w: restart after a stop with an error code: %v", ErrServiceRecoveryIncomplete, err)
		}
		return fmt.Errorf("set recovery on non-crash failures: %w", err)
	}
	return nil
}

// stopService asks the SCM to stop the service and waits until it has
// stopped, or timeout. kardianos's Stop waits without a limit.
func stopService(spec ServiceSpec) error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connect to service manager: %w", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(spec.Name)
	if err != nil {
		return fmt.Errorf("open service %s: %w", spec.Name, err)
	}
	defer s.Close()
	st, err := s.Control(svc.Stop)
	if errors.Is(err, windows.ERROR_SERVICE_NOT_ACTIVE) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stop service %s: %w", spec.Name, err)
	}
	deadline := time.Now().Add(spec.StopTimeout())
	for st.State != svc.Stopped {
		if time.Now().After(deadline) {
			return fmt.Errorf("service %s did not stop within %s", spec.Name, spec.StopTimeout())
		}
		time.Sleep(100 * time.Millisecond)
		if st, err = s.Query(); err != nil {
			return fmt.Errorf("query service %s: %w", spec.Name, err)
		}
	}
	return nil
}
