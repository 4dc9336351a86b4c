package agent

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/updater"
	"github.com/moltfleet/molt/updater/pack"
)

// orderRun is an order being run.
type orderRun struct {
	cancel context.CancelFunc
	rep    *reporter
}

// start runs o unless it runs already, has ended, or waits for a retry.
// It reports whether the order is one the server repeats while it is in
// hand here (running, waiting for a retry, or under the trial's watch).
func (c *Checkin) start(ctx context.Context, d *Daemon, log *zap.Logger, cred string, o protocol.Order) bool {
	if o.ID == "" || len(o.ID) > protocol.MaxStringLen {
		log.Warn("order without a usable id ignored")
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running[o.ID] != nil || c.ended[o.ID] {
		return true
	}
	if t, ok := c.retryAt[o.ID]; ok && c.o.Now().Before(t) {
		return true
	}
	if o.Kind == protocol.OrderUpgrade {
		switch c.upgradeDone(d, o) {
		case orderWatching:
			return true
		case orderFinished:
			c.ended[o.ID] = true
			return true
		}
	}
	octx, cancel := context.WithCancel(ctx)
	rep := newReporter(c, d, log, cred, o.ID, cancel)
	run := &orderRun{cancel: cancel, rep: rep}
	c.running[o.ID] = run
	log = log.With(zap.String("order", o.ID), zap.String("kind", o.Kind))
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		rep.loop(octx)
	}()
	go func() {
		defer c.wg.Done()
		ended := c.runOrder(octx, d, log, o, rep)
		rep.close()
		// The reporter gets its chance to deliver the last report before
		// the order counts as done.
		rep.wait(ctx)
		cancel()
		c.mu.Lock()
		delete(c.running, o.ID)
		if ended {
			c.ended[o.ID] = true
			delete(c.retryAt, o.ID)
			delete(c.tries, o.ID)
		}
		c.mu.Unlock()
		c.poke()
	}()
	return true
}

// checkUpgradeOrder refuses an upgrade order the agent can never carry
// out as given, so it ends at once instead of being retried.
func checkUpgradeOrder(o protocol.Order) error {
	if !pack.ValidVersion(o.Version) {
		return fmt.Errorf("order %s: %q is not a valid version", o.ID, o.Version)
	}
	u, err := url.Parse(o.PackURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("order %s: pack_url %q is not an http(s) URL", o.ID, o.PackURL)
	}
	return nil
}

// Where an upgrade order stands on this host.
const (
	orderToRun = iota
	// orderWatching: the order switched and its version runs under the
	// supervisor's watch; the trial's end is reported when it comes.
	orderWatching
	// orderFinished: its trial ended (committed or rolled back) and was
	// reported from state/result.json; running it again would undo a
	// rollback.
	orderFinished
)

// upgradeDone tells an upgrade order the server repeats after the switch
// (it does so until the trial's end is known) from one still to run.
func (c *Checkin) upgradeDone(d *Daemon, o protocol.Order) int {
	h := d.Home()
	if r, ok, err := h.ReadResult(); err == nil && ok && r.Order == o.ID {
		return orderFinished
	}
	if a, err := h.ReadActive(); err == nil && a.Trial != nil && a.Trial.Order == o.ID {
		return orderWatching
	}
	return orderToRun
}

// runOrder runs one order and says whether it ended (its end reported,
// cancelled, or switched) or should be tried again when it is delivered
// again.
func (c *Checkin) runOrder(ctx context.Context, d *Daemon, log *zap.Logger, o protocol.Order, rep *reporter) bool {
	switch o.Kind {
	case protocol.OrderCleanup:
		rep.step("cleanup", fmt.Sprintf("keep %v", o.Keep))
		if err := d.Cleanup(ctx, o.Keep); err != nil {
			if errors.Is(err, ErrBusy) || ctx.Err() != nil {
				return false
			}
			log.Warn("cleanup failed", zap.Error(err))
			rep.end(protocol.EndFailed, err.Error(), d.Version())
			return true
		}
		rep.end(protocol.EndSucceeded, "", d.Version())
		return true
	case protocol.OrderUpgrade:
	default:
		rep.end(protocol.EndFailed, fmt.Sprintf("this agent (%s) does not know orders of kind %q", d.Version(), o.Kind), d.Version())
		return true
	}
	if err := checkUpgradeOrder(o); err != nil {
		rep.end(protocol.EndFailed, err.Error(), d.Version())
		return true
	}
	detail := "upgrade to " + o.Version
	switch {
	case o.Revert:
		detail = "revert to " + o.Version
	case o.Repair:
		detail = "repair: back to " + o.Version
	}
	rep.step("order", detail)
	err := d.RunOrder(ctx, Order{
		ID: o.ID, Version: o.Version, PackURL: o.PackURL, Revert: o.Revert,
		Progress: rep.progress,
	})
	switch {
	case err == nil:
		rep.step("exit", fmt.Sprintf("exiting with code 11: the supervisor starts %s under watch", o.Version))
		return true
	case rep.wasCancelled():
		log.Info("order cancelled by the server")
		return true
	case ctx.Err() != nil:
		return false
	case errors.Is(err, ErrBusy):
		log.Info("order waits: another upgrade is in progress", zap.Error(err))
		return false
	case errors.Is(err, updater.ErrAlreadyRunning):
		rep.end(protocol.EndSucceeded, o.Version+" runs already", d.Version())
		return true
	case updater.IsRefusal(err):
		log.Warn("order refused", zap.Error(err))
		rep.end(protocol.EndFailed, err.Error(), d.Version())
		return true
	}
	c.mu.Lock()
	c.tries[o.ID]++
	n := c.tries[o.ID]
	c.mu.Unlock()
	if n >= c.o.OrderAttempts {
		log.Warn("order failed", zap.Error(err), zap.Int("attempts", n))
		rep.end(protocol.EndFailed, fmt.Sprintf("%v (after %d attempts)", err, n), d.Version())
		return true
	}
	retry := c.backoff(n + 2)
	log.Warn("order failed; it resumes when the server repeats it", zap.Error(err), zap.Int("attempt", n), zap.Duration("not_before", retry))
	rep.step("retry", fmt.Sprintf("attempt %d failed: %v", n, err))
	c.mu.Lock()
	c.retryAt[o.ID] = c.o.Now().Add(retry)
	c.mu.Unlock()
	return false
}

// trialSteps turns result.json's steps into report steps, bounded so
// that the trial's end still fits in the report.
func trialSteps(steps []home.Step) []protocol.Step {
	steps = steps[:min(len(steps), protocol.MaxReportSteps-2)]
	out := make([]protocol.Step, 0, len(steps)+2)
	for _, s := range steps {
		out = append(out, protocol.Step{At: s.At.UTC(), Name: truncate(s.Name, 64), Detail: truncate(s.Detail, 4*protocol.MaxStringLen)})
	}
	return out
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
