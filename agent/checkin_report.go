package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/protocol"
)

// maxOrderSteps bounds the steps one order records, so a looping step
// cannot grow a report without end.
const maxOrderSteps = 512

// reporter sends one order's DEPLOY report: steps with their times, the
// phase, download progress (coalesced: at most one report per
// ReportEvery) and the end. What could not be sent is kept and sent again,
// so a server restart loses no step.
type reporter struct {
	c           *Checkin
	log         *zap.Logger
	cred, id    string
	cancelOrder context.CancelFunc

	mu          sync.Mutex
	steps       []protocol.Step
	phase       string
	phaseSent   string
	done, total int64
	progDirty   bool
	endv        *protocol.End
	recorded    map[string]bool
	count       int
	cancelled   bool
	closed      bool

	kick     chan struct{}
	closedCh chan struct{}
	finished chan struct{}
}

func newReporter(c *Checkin, d *Daemon, log *zap.Logger, cred, id string, cancel context.CancelFunc) *reporter {
	return &reporter{
		c: c, log: log, cred: cred, id: id, cancelOrder: cancel,
		recorded: map[string]bool{}, kick: make(chan struct{}, 1),
		closedCh: make(chan struct{}), finished: make(chan struct{}),
	}
}

func (r *reporter) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// step records a step now.
func (r *reporter) step(name, detail string) {
	r.progress(Progress{At: r.c.o.Now(), Step: name, Detail: detail})
}

// progress takes a step of the daemon's RunOrder. Byte progress updates
// the done/total counters; of a step's many progress calls only the first
// and the last (done == total) become lines of the report.
func (r *reporter) progress(p Progress) {
	if p.At.IsZero() {
		p.At = r.c.o.Now()
	}
	r.mu.Lock()
	if p.Phase != "" {
		r.phase = p.Phase
	}
	if p.Total > 0 {
		r.done, r.total, r.progDirty = p.Done, p.Total, true
	}
	record := p.Step != ""
	if record && p.Total > 0 {
		// First and last progress of each file only.
		key := fmt.Sprintf("%s|%s|%t", p.Step, p.Detail, p.Done >= p.Total)
		record = !r.recorded[key]
		r.recorded[key] = true
	}
	if record && r.count < maxOrderSteps {
		detail := p.Detail
		if p.Total > 0 {
			detail = strings.TrimPrefix(fmt.Sprintf("%s: %d of %d bytes", p.Detail, p.Done, p.Total), ": ")
		}
		if len(detail) > protocol.MaxStringLen*4 {
			detail = detail[:protocol.MaxStringLen*4]
		}
		r.steps = append(r.steps, protocol.Step{At: p.At.UTC(), Name: p.Step, Detail: detail})
		r.count++
	}
	r.mu.Unlock()
	r.poke()
}

// end records the order's end; the reporter stops once it is delivered.
func (r *reporter) end(outcome, reason, version string) {
	if len(reason) > protocol.MaxStringLen*4 {
		reason = reason[:protocol.MaxStringLen*4]
	}
	r.mu.Lock()
	r.endv = &protocol.End{Outcome: outcome, Reason: reason, Version: version}
	r.mu.Unlock()
	r.poke()
}

// close says no more steps come: the loop delivers what is left, then ends.
func (r *reporter) close() {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.closedCh)
	}
	r.mu.Unlock()
	r.poke()
}

// wait returns when everything was delivered or ctx ended.
func (r *reporter) wait(ctx context.Context) {
	select {
	case <-r.finished:
	case <-ctx.Done():
	}
}

func (r *reporter) markCancelled() {
	r.mu.Lock()
	r.cancelled = true
	r.mu.Unlock()
	r.cancelOrder()
}

func (r *reporter) wasCancelled() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cancelled
}

// take removes what is pending into one request; ok is false when
// nothing is.
func (r *reporter) take() (req protocol.ReportRequest, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	req.OrderID = r.id
	if r.phase != r.phaseSent {
		req.Phase = r.phase
	}
	n := min(len(r.steps), protocol.MaxReportSteps)
	req.Steps = append([]protocol.Step(nil), r.steps[:n]...)
	r.steps = r.steps[n:]
	if r.progDirty {
		req.Done, req.Total = r.done, r.total
		r.progDirty = false
	}
	if len(r.steps) == 0 && r.endv != nil {
		req.End = r.endv
		r.endv = nil
	}
	ok = req.Phase != "" || len(req.Steps) > 0 || req.Total > 0 || req.End != nil
	return req, ok
}

// putBack returns an undelivered request's content to the front.
func (r *reporter) putBack(req protocol.ReportRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps = append(req.Steps, r.steps...)
	if req.Total > 0 && !r.progDirty {
		r.progDirty = true
	}
	if req.End != nil && r.endv == nil {
		r.endv = req.End
	}
}

func (r *reporter) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// loop delivers reports until the end is delivered, the order is closed
// with nothing left, the server cancels the order, or ctx ends.
func (r *reporter) loop(ctx context.Context) {
	defer close(r.finished)
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
		for {
			req, ok := r.take()
			if !ok {
				if r.isClosed() {
					return
				}
				break
			}
			resp, err := r.c.o.Client.Report(ctx, r.cred, req)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				if Transient(err) {
					r.putBack(req)
					failures++
					if !sleepOrDone(ctx, r.c.backoff(failures)) {
						return
					}
					continue
				}
				// The server refuses this report for good (the order is
				// gone or ended): nothing to send again.
				r.log.Warn("report refused", zap.Error(err))
				if errors.Is(err, ErrOrderGone) {
					// The server no longer has the order: it is not
					// carried out on its own.
					r.markCancelled()
					return
				}
				continue
			}
			failures = 0
			r.mu.Lock()
			if req.Phase != "" {
				r.phaseSent = req.Phase
			}
			r.mu.Unlock()
			if resp.Cancelled {
				r.markCancelled()
				return
			}
			if req.End != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(r.c.o.ReportEvery):
			case <-r.closedCh:
			}
		}
	}
}

func sleepOrDone(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
