package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/moltfleet/molt/store"
)

// eventSelect is what GET /v1/events selects within its window (after_id,
// since, limit): event ids, an agent, a run, and before_id, which pages
// back from the newest page (the console's "Load older"). Without
// before_id or after_id, and with since empty, the answer is the newest
// matching events, as without a selection.
type eventSelect struct {
	ids    []int
	agent  string // an agent id
	run    int64
	before int64 // only events with a lower seq; 0: no bound
}

// parseEventSelect reads id, agent and run as the live stream reads them
// (one meaning for both, so a console view and its live tail agree) and
// before_id.
func (s *Server) parseEventSelect(r *http.Request) (eventSelect, error) {
	f, err := s.parseStreamFilter(r)
	if err != nil {
		return eventSelect{}, err
	}
	sel := eventSelect{ids: f.ids, agent: f.agent, run: f.run}
	if v := r.URL.Query().Get("before_id"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return sel, badRequest("before_id: %q is not an event sequence number (the seq of the oldest event shown, e.g. 1042)", v)
		}
		sel.before = n
	}
	return sel, nil
}

// page is the page of events after seq after and at or after since that
// sel selects: the first limit of them, or with tail the newest limit.
func (sel eventSelect) page(after int64, since time.Time, limit int, tail bool) store.EventPage {
	return store.EventPage{
		EventFilter: store.EventFilter{IDs: sel.ids, AgentID: sel.agent, RunID: sel.run},
		After:       after, Before: sel.before, Since: since, Limit: limit, Tail: tail,
	}
}
