package runner

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/platform"
)

// staleKillWait bounds the wait for a stale process after its kill.
const staleKillWait = 10 * time.Second

// StopStale stops a workload process recorded by a previous supervisor
// (state/workloads.json, after a kill -9 of the supervisor), with its
// whole process group: sig ("kill" skips it), then a kill after grace.
// It signals only the very process recorded (pid, start time and
// executable): a pid that now belongs to another process, or no process,
// is left alone and StopStale returns nil. It returns once the process
// is gone, or an error when it survives the kill or cannot be checked.
func StopStale(id platform.ProcessIdentity, sig string, grace time.Duration, log *zap.Logger) error {
	if log == nil {
		log = zap.NewNop()
	}
	log = log.With(zap.Int("pid", id.PID))
	same, err := stillSame(id)
	if err != nil {
		return fmt.Errorf("stale workload %s: %w", id, err)
	}
	if !same {
		log.Debug("the recorded workload process is gone; nothing to stop")
		return nil
	}
	g, err := platform.OpenGroup(id.PID)
	if errors.Is(err, platform.ErrNoProcess) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stale workload %s: %w", id, err)
	}
	defer g.Close()
	wait := func(d time.Duration) (bool, error) {
		deadline := time.Now().Add(d)
		for {
			same, err := stillSame(id)
			if err != nil || !same {
				return !same, err
			}
			if !time.Now().Before(deadline) {
				return false, nil
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	log.Warn("a workload of a previous supervisor still runs; stopping it", zap.String("signal", sig), zap.Duration("grace", grace))
	if sig != "kill" {
		if err := g.Signal(sig); err != nil && !errors.Is(err, platform.ErrNoProcess) {
			log.Warn("signal the stale workload", zap.Error(err))
		}
		if gone, err := wait(grace); err != nil || gone {
			// The rest of its group follows it, as at the exit of an
			// instance this supervisor runs.
			_ = g.Kill()
			return err
		}
		log.Warn("the stale workload did not stop within its grace; killing its process group")
	}
	if err := g.Kill(); err != nil && !errors.Is(err, platform.ErrNoProcess) {
		return fmt.Errorf("kill stale workload %s: %w", id, err)
	}
	gone, err := wait(staleKillWait)
	if err != nil {
		return fmt.Errorf("stale workload %s: %w", id, err)
	}
	if !gone {
		return fmt.Errorf("stale workload %s survives a kill", id)
	}
	return nil
}

// stillSame reports whether id's pid is still the process id names.
func stillSame(id platform.ProcessIdentity) (bool, error) {
	cur, err := platform.IdentifyProcess(id.PID)
	if errors.Is(err, platform.ErrNoProcess) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return sameWorkload(cur, id), nil
}

// sameWorkload reports whether cur is the workload process recorded as
// id. The executable may differ: the identity is taken right after the
// start, and a workload whose command is a script that execs its program
// (exec java ..., the usual wrapper) was then still the script's
// interpreter. Where the OS gives the start time exactly (clock ticks on
// Linux, 100 ns on Windows), the same pid with the very same start time
// is the same process; where it is rounded to the second (ps), the
// executable must match too, as for any process
// (platform.ProcessIdentity.Same).
func sameWorkload(cur, id platform.ProcessIdentity) bool {
	if exactStart && cur.PID == id.PID && cur.Start == id.Start && id.Start != 0 {
		return true
	}
	return cur.Same(id)
}

// exactStart: platform.IdentifyProcess gives the start time exactly.
const exactStart = runtime.GOOS == "linux" || runtime.GOOS == "windows"

// Found is a running workload instance found by Unrecorded: its name and
// version as its environment gives them.
type Found struct {
	Name, Version string
	Process       platform.ProcessIdentity
}
