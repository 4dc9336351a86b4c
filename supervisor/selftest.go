package supervisor

import (
	"errors"
	"fmt"
	"os"

	"github.com/moltfleet/molt/config"
	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/updater/pack"
)

// Selftest checks what a supervisor needs to run h: state/active.json
// reads and names a complete version whose agent binary exists,
// agent.yaml (when present) parses, and the directories the supervisor
// writes are writable. It returns every problem found, each a one-line
// error; none means the home can be run. A staged supervisor answers this
// before it replaces the running one.
func Selftest(h home.Home) []error {
	var problems []error
	act, err := h.ReadActive()
	switch {
	case err != nil:
		problems = append(problems, err)
	case !pack.ValidVersion(act.Current):
		problems = append(problems, fmt.Errorf("state/active.json: current %q is not a version", act.Current))
	default:
		if !h.IsValid(act.Current) {
			problems = append(problems, fmt.Errorf("versions/%s: no %s marker (incomplete version)", act.Current, home.ValidMarker))
		}
		if fi, err := os.Stat(h.AgentBinary(act.Current)); err != nil {
			problems = append(problems, fmt.Errorf("agent of version %s: %w", act.Current, err))
		} else if !fi.Mode().IsRegular() {
			problems = append(problems, fmt.Errorf("agent of version %s: %s is not a file", act.Current, h.AgentBinary(act.Current)))
		}
	}
	if _, err := config.Load(h.ConfigPath()); err != nil && !errors.Is(err, config.ErrNotFound) {
		problems = append(problems, err)
	}
	for _, dir := range []string{h.StateDir(), h.LogsDir(), h.BinDir()} {
		if err := writable(dir); err != nil {
			problems = append(problems, fmt.Errorf("%s is not writable: %w", dir, err))
		}
	}
	return problems
}

func writable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".selftest*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
