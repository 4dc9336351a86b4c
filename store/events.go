package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// Event is one entry of the event log.
type Event struct {
	// Seq is the event's place in the log, given by InsertEvent (which
	// ignores it).
	Seq          int64
	ID           int    // the catalogue's id (protocol.Ev*)
	Name         string // the catalogue's name of ID
	At           time.Time
	AgentID      string // "" when about no agent
	RunID        int64  // 0 when about no run
	DeploymentID int64  // 0 when about no deployment
	Message      string
	Fields       map[string]string // nil when it has none
}

// InsertEvent records e in t. It runs for nearly every state change, so
// its statement is prepared once.
func (t *Tx) InsertEvent(e Event) error {
	fields := ""
	if len(e.Fields) > 0 {
		b, err := json.Marshal(e.Fields)
		if err != nil {
			return fmt.Errorf("event %d: fields: %w", e.ID, err)
		}
		fields = string(b)
	}
	_, err := t.exec(`INSERT INTO events (id, name, at, agent_id, run_id, deployment_id, message, fields) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.Name, Nanos(e.At), e.AgentID, e.RunID, e.DeploymentID, e.Message, fields)
	return err
}

// EventFilter selects events: each field set narrows the selection.
type EventFilter struct {
	IDs     []int  // any of these catalogue ids
	AgentID string // about this agent
	RunID   int64  // about this run
}

// where is f's conditions, each starting with AND, and their arguments.
func (f EventFilter) where() (string, []any) {
	var b strings.Builder
	var args []any
	if len(f.IDs) > 0 {
		b.WriteString(" AND id IN (?" + strings.Repeat(",?", len(f.IDs)-1) + ")")
		for _, id := range f.IDs {
			args = append(args, id)
		}
	}
	if f.AgentID != "" {
		b.WriteString(" AND agent_id = ?")
		args = append(args, f.AgentID)
	}
	if f.RunID != 0 {
		b.WriteString(" AND run_id = ?")
		args = append(args, f.RunID)
	}
	return b.String(), args
}

// EventPage is a page of the event log (GET /v1/events): the events f
// selects with a seq above After (and below Before, when not 0), at or
// after Since; the first Limit of them, or with Tail the newest Limit,
// oldest first either way.
type EventPage struct {
	EventFilter
	After  int64
	Before int64
	Since  time.Time
	Limit  int
	Tail   bool
}

// eventColumns are the columns scanEvents reads, in its order.
const eventColumns = `seq, id, name, at, agent_id, run_id, deployment_id, message, fields`

// sql is p's query and its arguments. Each selection of one agent, run or
// event id is read through that column's index (events_agent, events_run,
// events_id), whose entries are in seq order within a value, not by
// walking the log back through millions of others.
func (p EventPage) sql() (string, []any) {
	where, args := p.where()
	if p.Before != 0 {
		where += " AND seq < ?"
		args = append(args, p.Before)
	}
	args = append(append([]any{p.After, Nanos(p.Since)}, args...), p.Limit)
	q := `SELECT ` + eventColumns + ` FROM events WHERE seq > ? AND at >= ?` + where + ` ORDER BY seq`
	if p.Tail {
		return `SELECT * FROM (` + q + ` DESC LIMIT ?) AS page ORDER BY seq`, args
	}
	return q + ` LIMIT ?`, args
}

// Events reads page p of the event log.
func (db *DB) Events(ctx context.Context, p EventPage) ([]Event, error) {
	q, args := p.sql()
	rows, err := db.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return scanEvents(rows)
}

// EventsThrough reads the first limit events f selects with a seq above
// after and up to through, in seq order (a live stream's next page: every
// event up to LastEventSeq is committed, so none is missed).
func (db *DB) EventsThrough(ctx context.Context, f EventFilter, after, through int64, limit int) ([]Event, error) {
	where, args := f.where()
	args = append(append([]any{after, through}, args...), limit)
	rows, err := db.query(ctx, `SELECT `+eventColumns+` FROM events WHERE seq > ? AND seq <= ?`+where+` ORDER BY seq LIMIT ?`, args...)
	if err != nil {
		return nil, err
	}
	return scanEvents(rows)
}

// LastEventSeq is the seq of the newest event, 0 when there is none.
func (db *DB) LastEventSeq(ctx context.Context) (int64, error) {
	var n int64
	err := db.queryRow(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&n)
	return n, err
}

// scanEvents reads rows of eventColumns and closes them.
func scanEvents(rows *sql.Rows) ([]Event, error) {
	defer rows.Close()
	out := []Event{}
	for rows.Next() {
		var e Event
		var at int64
		var fields string
		if err := rows.Scan(&e.Seq, &e.ID, &e.Name, &at, &e.AgentID, &e.RunID, &e.DeploymentID, &e.Message, &fields); err != nil {
			return nil, err
		}
		e.At = FromNanos(at)
		if fields != "" {
			if err := json.Unmarshal([]byte(fields), &e.Fields); err != nil {
				return nil, fmt.Errorf("event %d: fields: %w", e.Seq, err)
			}
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// RunHalt is a run_halted event of a run: when, and its fields (signal,
// reason, agents).
type RunHalt struct {
	At     time.Time
	Fields map[string]string
}

// readRunHalts reads run's halts still in the event log, oldest first.
func readRunHalts(query queryFunc, run int64) ([]RunHalt, error) {
	rows, err := query(`SELECT at, fields FROM events WHERE run_id = ? AND id = ? ORDER BY seq`, run, protocol.EvRunHalted)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []RunHalt
	for rows.Next() {
		var h RunHalt
		var at int64
		var fields string
		if err := rows.Scan(&at, &fields); err != nil {
			return nil, err
		}
		if err := unmarshalColumn(fields, &h.Fields); err != nil {
			return nil, err
		}
		h.At = FromNanos(at)
		out = append(out, h)
	}
	return out, rows.Err()
}
