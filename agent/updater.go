package agent

import (
	"context"
	"strings"
	"sync"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/updater"
)

// NewUpdater returns the daemon's Updater over package updater. Options'
// Progress is kept and called first; each order's own Progress gets the
// download progress of that order.
func NewUpdater(o updater.Options) Updater {
	a := &homeUpdater{home: o.Home}
	inner := o.Progress
	o.Progress = func(p updater.Progress) {
		if inner != nil {
			inner(p)
		}
		a.mu.Lock()
		f := a.progress
		a.mu.Unlock()
		if f == nil {
			return
		}
		if p.Method != "" {
			// How a file was obtained: a "delta" or "full" step of the
			// DEPLOY report, with the reason (patch.go in package updater).
			if !strings.HasPrefix(p.File, "workload/") || p.Total >= stepFileSize {
				f(Progress{Phase: protocol.StateDownloading, Step: p.Method, Detail: methodDetail(p)})
			}
			return
		}
		step := "download"
		if strings.HasPrefix(p.File, "workload/") && p.Total < stepFileSize {
			// A workload's tree can be thousands of small files: they
			// move the byte counters, but a line each would crowd the
			// report's other steps out.
			step = ""
		}
		f(Progress{Phase: protocol.StateDownloading, Step: step, Detail: p.File, Done: p.Done, Total: p.Total})
	}
	a.u = updater.New(o)
	return a
}

// methodDetail is a "delta" or "full" step's detail: "agent: patch from
// 1.4.0, 48.1 KiB instead of 9.8 MiB", or the reason alone for the whole
// order.
func methodDetail(p updater.Progress) string {
	if p.File == "*" {
		return p.Reason
	}
	return p.File + ": " + p.Reason
}

// stepFileSize is the size from which a workload's file gets lines of its
// own in the DEPLOY report.
const stepFileSize = 1 << 20

type homeUpdater struct {
	u    *updater.Updater
	home home.Home

	mu       sync.Mutex
	progress func(Progress)
}

func source(o Order) updater.Source {
	if o.PackFile != "" {
		return updater.PackSource(o.PackFile)
	}
	return updater.HTTPSource(o.PackURL)
}

func (a *homeUpdater) Prepare(ctx context.Context, o Order) error {
	report := o.Progress
	if report == nil {
		report = func(Progress) {}
	}
	a.mu.Lock()
	a.progress = report
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.progress = nil
		a.mu.Unlock()
	}()
	report(Progress{Phase: protocol.StateDownloading, Step: "preflight", Detail: "from " + source(o).String()})
	return a.u.Prepare(ctx, updater.Order{ID: o.ID, Version: o.Version, Source: source(o)})
}

func (a *homeUpdater) Switch(_ context.Context, o Order) error { return a.u.Switch(o.ID) }

func (a *homeUpdater) Cleanup() ([]string, error) { return a.u.Cleanup() }

func (a *homeUpdater) Finish(orderID string) error { return a.u.Finish(orderID) }

// Floor is the highest floor of any verified manifest seen so far.
func (a *homeUpdater) Floor() (string, error) { return a.u.Floor() }

func (a *homeUpdater) InFlight() (*protocol.UpgradeProgress, error) {
	st, err := a.u.State()
	if err != nil {
		return nil, err
	}
	return upgradeProgress(st, a.home), nil
}

// upgradeProgress maps the updater's phase to a deployment state; orders
// that ended (or never began) are not in flight.
func upgradeProgress(st updater.UpgradeState, h home.Home) *protocol.UpgradeProgress {
	p := &protocol.UpgradeProgress{OrderID: st.Order, Version: st.Version}
	switch st.Phase {
	case updater.PhasePreflight, updater.PhaseDownloading, updater.PhaseVerified:
		p.Phase = protocol.StateDownloading
	case updater.PhaseStaged:
		p.Phase = protocol.StateStaged
	case updater.PhaseSwitched:
		p.Phase = protocol.StateRestarting
		if a, err := h.ReadActive(); err == nil && a.Trial != nil && a.Trial.Order == st.Order && !a.Trial.Started.IsZero() {
			p.Phase = protocol.StateWatching
		}
	default:
		return nil
	}
	for _, f := range st.Files {
		p.Done += f.Done
		p.Total += f.Size
	}
	return p
}
