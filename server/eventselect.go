package server

import (
	"net/http"
	"strconv"
	"strings"
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

// query is the SQL of a page of events and its arguments: those after
// seq after and at or after since (nanoseconds) that sel selects, the
// first limit of them, or with tail the newest limit, oldest first.
func (sel eventSelect) query(after, since int64, limit int, tail bool) (string, []any) {
	where, args := sel.where()
	args = append(append([]any{after, since}, args...), limit)
	q := `SELECT ` + eventColumns + ` FROM events WHERE seq > ? AND at >= ?` + where + ` ORDER BY seq`
	if tail {
		return `SELECT * FROM (` + q + ` DESC LIMIT ?) ORDER BY seq`, args
	}
	return q + ` LIMIT ?`, args
}

// where returns the SQL conditions of sel, each starting with AND, and
// their arguments.
func (sel eventSelect) where() (string, []any) {
	var b strings.Builder
	var args []any
	if len(sel.ids) > 0 {
		b.WriteString(" AND id IN (?" + strings.Repeat(",?", len(sel.ids)-1) + ")")
		for _, id := range sel.ids {
			args = append(args, id)
		}
	}
	if sel.agent != "" {
		b.WriteString(" AND agent_id = ?")
		args = append(args, sel.agent)
	}
	if sel.run != 0 {
		b.WriteString(" AND run_id = ?")
		args = append(args, sel.run)
	}
	if sel.before != 0 {
		b.WriteString(" AND seq < ?")
		args = append(args, sel.before)
	}
	return b.String(), args
}
