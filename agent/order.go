package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/buildinfo"
	"github.com/moltfleet/molt/internal/faults"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/workload/spec"
)

// RunOrder runs one upgrade order: prepare (idempotent, resumable), wait
// until no hold is active, switch, and close Switched. See the package
// documentation for the contract with the check-in loop.
func (d *Daemon) RunOrder(ctx context.Context, o Order) error {
	if !d.running.TryLock() {
		return ErrBusy
	}
	defer d.running.Unlock()
	select {
	case <-d.switched:
		return fmt.Errorf("%w: the agent already switched and is restarting", ErrBusy)
	default:
	}
	if o.Version == "" || (o.PackURL == "") == (o.PackFile == "") {
		return errors.New("order: need a version and exactly one of a pack URL or a pack file")
	}
	log := d.log.With(zap.String("order", o.ID), zap.String("target", o.Version))
	report := func(p Progress) {
		if p.At.IsZero() {
			p.At = d.o.Now().UTC()
		}
		if o.Progress != nil {
			o.Progress(p)
		}
	}
	log.Info("upgrade order", zap.String("pack_url", o.PackURL), zap.String("pack_file", o.PackFile), zap.Bool("revert", o.Revert))
	faults.Point("agent/order-received")
	inner := o
	inner.Progress = report
	// The updater's errors name their step and version ("prepare 1.5.0:
	// ...", "switch 1.5.0: ..."): adding them here again would say it twice.
	if err := d.o.Updater.Prepare(ctx, inner); err != nil {
		log.Warn("upgrade order failed", zap.Error(err))
		return err
	}
	report(Progress{Phase: protocol.StateStaged, Step: "stage", Detail: "versions/" + o.Version + " is staged and valid"})
	if err := d.waitIdle(ctx, report); err != nil {
		return err
	}
	if err := d.o.Updater.Switch(ctx, inner); err != nil {
		log.Warn("switch failed", zap.Error(err))
		return err
	}
	report(Progress{Phase: protocol.StateRestarting, Step: "switch", Detail: "active.json names " + o.Version + " in trial"})
	log.Info("switched; exiting for the supervisor to start the new version")
	d.once.Do(func() { close(d.switched) })
	return nil
}

// waitIdle returns once no hold is active and no workload's busy probe
// says busy. It reads the holds afresh (not the watcher's copy) so a hold
// made a moment ago is honoured; the probes are asked every busyEvery.
func (d *Daemon) waitIdle(ctx context.Context, report func(Progress)) error {
	defer d.setProbeHolds(nil)
	var last []string
	var asked time.Time
	for {
		if now := d.o.Now(); asked.IsZero() || now.Sub(asked) >= busyEvery || now.Before(asked) {
			d.setProbeHolds(d.o.Busy.Busy(ctx))
			asked = now
		}
		if err := d.refreshHolds(); err != nil {
			// An unreadable holds directory must not block upgrades
			// forever, nor let one through a hold it cannot see: retry.
			d.log.Warn("holds", zap.Error(err))
		} else if hs := d.Holds(); len(hs) == 0 {
			if last != nil {
				report(Progress{Step: "wait", Detail: "holds released"})
			}
			return nil
		} else if r := Reasons(hs); !slices.Equal(r, last) {
			last = r
			report(Progress{Step: "wait", Detail: fmt.Sprintf("waiting for %d hold(s): %v", len(r), r)})
			d.log.Info("switch waits for holds", zap.Strings("holds", r))
		}
		t := time.NewTimer(d.o.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for holds: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// setProbeHolds records the busy probes' answer for refreshHolds.
func (d *Daemon) setProbeHolds(hs []Hold) {
	d.mu.Lock()
	d.probeHolds = hs
	d.mu.Unlock()
}

// Cleanup runs a cleanup order. The home's own rule decides what stays:
// the current, the previous, a trial and the in-flight version; keep (the
// server's list) is logged when it asks for more, never used to remove
// less safely.
func (d *Daemon) Cleanup(ctx context.Context, keep []string) error {
	if !d.running.TryLock() {
		return ErrBusy
	}
	defer d.running.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	removed, err := d.o.Updater.Cleanup()
	d.log.Info("cleanup", zap.Strings("removed", removed), zap.Strings("server_keep", keep), zap.Error(err))
	return err
}

// Status describes the agent for a check-in.
func (d *Daemon) Status() protocol.Status {
	id := d.Identity()
	hs := d.Holds()
	host, _ := os.Hostname()
	c := d.o.Config
	s := protocol.Status{
		ProtocolVersion:   protocol.Version,
		Fingerprint:       id.Fingerprint,
		Name:              c.Name,
		Hostname:          host,
		Platform:          buildinfo.Platform(),
		OSFamily:          platform.OSFamily(),
		Version:           d.o.Version,
		Supervised:        d.Supervised(),
		SupervisorVersion: d.o.SupervisorVersion,
		Labels:            c.Labels,
		Cluster:           c.Cluster,
		Busy:              len(hs) > 0,
		Holds:             Reasons(hs),
	}
	if s.Name == "" {
		s.Name = host
	}
	if len(s.Holds) > protocol.MaxHolds {
		s.Holds = s.Holds[:protocol.MaxHolds]
	}
	if free, err := platform.FreeDisk(d.o.Home.Dir); err == nil && free <= 1<<62 {
		s.FreeDiskBytes = int64(free)
	}
	// The floor is optional for an Updater: one that does not track it
	// reports none.
	if f, ok := d.o.Updater.(interface{ Floor() (string, error) }); ok {
		if floor, err := f.Floor(); err == nil {
			s.Floor = floor
		}
	}
	if up, err := d.o.Updater.InFlight(); err == nil && up != nil {
		s.Upgrade = up
	}
	if r, ok, err := d.o.Home.ReadResult(); err == nil && ok {
		s.LastResult = TrialResult(r)
	}
	if ws, err := d.o.Home.ReadWorkloadState(); err != nil {
		d.log.Debug("state/workloads.json", zap.Error(err))
	} else {
		s.Workloads = Workloads(ws)
		s.AgentRestarts = min(max(ws.AgentRestarts, 0), 1_000_000_000)
	}
	return s
}

// Bounds of a workload's fields in a check-in, as the server takes them.
const (
	maxWorkloadLastExit = 256
	maxWorkloadReason   = 1024
)

// Workloads converts state/workloads.json to its wire form: at most
// protocol.MaxWorkloads. state/workloads.json is the supervisor's, but the
// server refuses a whole check-in over one bad field, so what it would
// refuse is left out here (an entry with a malformed name, version or
// state) or made printable and cut (a reason or exit carrying a
// workload's own words).
func Workloads(s home.WorkloadState) []protocol.Workload {
	var out []protocol.Workload
	for _, w := range s.Workloads {
		if len(out) == protocol.MaxWorkloads {
			break
		}
		if !spec.ValidName(w.Name) || !pack.ValidVersion(w.Version) || !slices.Contains(workloadStates, w.State) {
			continue
		}
		out = append(out, protocol.Workload{
			Name:     w.Name,
			Version:  w.Version,
			State:    w.State,
			Restarts: max(w.Restarts, 0),
			LastExit: printable(w.LastExit, maxWorkloadLastExit),
			Reason:   printable(w.Reason, maxWorkloadReason),
			Since:    w.Since,
		})
	}
	return out
}

var workloadStates = []string{protocol.WorkloadStarting, protocol.WorkloadReady, protocol.WorkloadUnhealthy,
	protocol.WorkloadCrashed, protocol.WorkloadStopped}

// printable replaces control and bidirectional-override characters (and
// invalid UTF-8) with a space and cuts s to at most n bytes.
func printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || protocol.Unsafe(r) {
			return ' '
		}
		return r
	}, s)
	return truncate(s, n)
}
