package updater

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/updater/pack"
)

// Environment of the winflow helper (set by TestWindowsUnderWine only).
const (
	envPack2 = "MOLT_UPDATER_PACK2"
	envStop  = "MOLT_UPDATER_STOP"
)

// winReport is what the winflow helper prints.
type winReport struct {
	Steps         []string    `json:"steps"`
	RemoveRunning string      `json:"remove_running"` // error of deleting the running exe ("" if it worked)
	CleanupErr    string      `json:"cleanup_err"`    // first Cleanup, with 1.0.0 running
	Removed1      []string    `json:"removed_1"`
	Removed2      []string    `json:"removed_2"` // after the process ended
	Active        home.Active `json:"active"`
}

// helperSleep is a stand-in agent: it runs until the stop file appears.
func helperSleep() error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(os.Getenv(envStop)); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// helperLock holds a home's upgrade lock, as a second agent process
// would, until the stop file appears.
func helperLock() error {
	h := home.Home{Dir: os.Getenv(envHome)}
	unlock, err := New(Options{Home: h}).lockHome()
	if err != nil {
		return err
	}
	defer unlock()
	fmt.Println("locked")
	return helperSleep()
}

// helperWinFlow runs on Windows (under Wine in the tests): with 1.0.0's
// molt-agent.exe running, it stages and switches to 1.1.0 and then 1.2.0
// from local packs, and cleans up while the old exe still runs and again
// after it ended.
func helperWinFlow() (err error) {
	rep := winReport{}
	defer func() {
		if err != nil {
			rep.Steps = append(rep.Steps, "error: "+err.Error())
		}
		_ = json.NewEncoder(os.Stdout).Encode(rep)
		err = nil
	}()
	key, err := pack.ParsePublicKey(os.Getenv(envKey))
	if err != nil {
		return err
	}
	h := home.Home{Dir: os.Getenv(envHome)}
	u := New(testOptions(h, key))
	ctx := context.Background()

	self, err := os.Executable()
	if err != nil {
		return err
	}
	agent := h.AgentBinary("1.0.0")
	if err := copyFile(self, agent); err != nil {
		return err
	}
	stop := filepath.Join(h.Dir, "stop")
	cmd := exec.Command(agent, "-test.run=^$")
	cmd.Env = append(os.Environ(), envHelper+"=sleep", envStop+"="+stop)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start 1.0.0: %w", err)
	}
	defer func() {
		_ = os.WriteFile(stop, nil, 0o644)
		_ = cmd.Wait()
	}()
	rep.Steps = append(rep.Steps, "1.0.0 running")
	if err := os.Remove(agent); err != nil {
		rep.RemoveRunning = err.Error()
	} else {
		// Put it back: the rest of the flow needs a runnable 1.0.0.
		if err := copyFile(self, agent); err != nil {
			return err
		}
	}

	for i, v := range []string{"1.1.0", "1.2.0"} {
		src := PackSource(os.Getenv(envPack))
		if i == 1 {
			src = PackSource(os.Getenv(envPack2))
		}
		id := "win-" + v
		if err := u.Prepare(ctx, Order{ID: id, Version: v, Source: src}); err != nil {
			return err
		}
		if err := u.Switch(id); err != nil {
			return err
		}
		// The supervisor's commit of the trial.
		a, err := h.ReadActive()
		if err != nil {
			return err
		}
		a.Trial = nil
		if err := h.WriteActive(a); err != nil {
			return err
		}
		rep.Steps = append(rep.Steps, "switched to "+v)
	}
	removed, cerr := u.Cleanup()
	rep.Removed1 = removed
	if cerr != nil {
		rep.CleanupErr = cerr.Error()
	}
	_ = os.WriteFile(stop, nil, 0o644)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("1.0.0 exit: %w", err)
	}
	rep.Steps = append(rep.Steps, "1.0.0 stopped")
	// Wine may release the image a moment after the process is gone.
	for range 50 {
		removed, cerr = u.Cleanup()
		rep.Removed2 = append(rep.Removed2, removed...)
		if cerr == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if cerr != nil {
		return cerr
	}
	rep.Active, err = h.ReadActive()
	return err
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return errors.Join(os.WriteFile(to, b, 0o755))
}
