package server

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/store"
)

// event is an event about to be recorded.
type event struct {
	ID     int
	Agent  string
	Run    int64
	Dep    int64
	Msg    string
	Fields map[string]string
}

// eventHub wakes followers of the event log when events were committed.
type eventHub struct {
	mu sync.Mutex
	ch chan struct{}
}

func newEventHub() *eventHub { return &eventHub{ch: make(chan struct{})} }

func (h *eventHub) publish() {
	h.mu.Lock()
	close(h.ch)
	h.ch = make(chan struct{})
	h.mu.Unlock()
}

func (h *eventHub) wait() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ch
}

// emit records one event on its own.
func (s *Server) emit(ctx context.Context, e event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.change(ctx, func(w *writer) error { return w.event(e) }); err != nil {
		s.log.Warn("record event", zap.Int("event", e.ID), zap.Error(err))
	}
}

const maxEventsPage = 1000

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request, _ caller) error {
	q := r.URL.Query()
	var after int64
	var since time.Time
	limit := 100
	if v := q.Get("after_id"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return badRequest("after_id: %q is not a sequence number", v)
		}
		after = n
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			d, derr := time.ParseDuration(v)
			if derr != nil || d <= 0 {
				return badRequest("since: %q is neither an RFC 3339 time nor a duration like 1h", v)
			}
			t = s.clock.Now().Add(-d)
		}
		since = t
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxEventsPage {
			return badRequest("limit: %q is not a number from 1 to %d", v, maxEventsPage)
		}
		limit = n
	}
	sel, err := s.parseEventSelect(r)
	if err != nil {
		return err
	}
	follow := q.Get("follow") == "1" || q.Get("follow") == "true"
	// Without after_id and since, the newest page is shown (like tail),
	// before before_id when given.
	tail := after == 0 && since.IsZero() && !follow
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		wake := s.events.wait()
		evs, err := s.queryEvents(r.Context(), sel, after, since, limit, tail)
		if err != nil {
			return err
		}
		if len(evs) > 0 || !follow {
			next := after
			if len(evs) > 0 {
				next = evs[len(evs)-1].Seq
			}
			writeJSON(w, 200, protocol.Events{Events: evs, Next: next})
			return nil
		}
		select {
		case <-wake:
		case <-deadline.C:
			follow = false
		case <-s.closing:
			follow = false
		case <-r.Context().Done():
			return r.Context().Err()
		}
	}
}

func (s *Server) queryEvents(ctx context.Context, sel eventSelect, after int64, since time.Time, limit int, tail bool) ([]protocol.Event, error) {
	evs, err := s.st.Events(ctx, sel.page(after, since, limit, tail))
	if err != nil {
		return nil, err
	}
	return protocolEvents(evs), nil
}

// protocolEvents are evs as the API shows them.
func protocolEvents(evs []store.Event) []protocol.Event {
	out := make([]protocol.Event, len(evs))
	for i, e := range evs {
		out[i] = protocol.Event{Seq: e.Seq, ID: e.ID, Name: e.Name, At: e.At, AgentID: e.AgentID, RunID: runID(e.RunID), Message: e.Message, Fields: e.Fields}
		if e.DeploymentID != 0 {
			out[i].DeploymentID = depID(e.DeploymentID)
		}
	}
	return out
}
