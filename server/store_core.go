package server

import (
	"context"
	"time"

	"github.com/moltfleet/molt/store"
)

// coreStore is what the server's core (start-up, the write batches, the
// event log, maintenance, metrics) needs of its database; *store.DB
// implements it. Writes inside a batch are methods of *store.Tx.
type coreStore interface {
	// Load reads the state the server keeps in memory, at start-up.
	Load(ctx context.Context) (*store.Loaded, error)
	// Begin opens the write transaction a batch of changes extends;
	// AddChanges counts the changes a commit held; Commits and Changes
	// are their totals (/metrics).
	Begin() (*store.Tx, error)
	AddChanges(n int)
	Commits() int64
	Changes() int64
	Close() error

	Events(ctx context.Context, p store.EventPage) ([]store.Event, error)
	EventsThrough(ctx context.Context, f store.EventFilter, after, through int64, limit int) ([]store.Event, error)
	LastEventSeq(ctx context.Context) (int64, error)

	RunCounts(ctx context.Context, id int64) (map[string]int, int, error)
	CountDeploymentsByState(ctx context.Context) (map[string]int, error)
	CountRunsByStatus(ctx context.Context) (map[string]int, error)

	FlushLastSeen(ctx context.Context, seen []store.AgentSeen) error
	PruneEvents(ctx context.Context, cutoff time.Time, limit int) (int64, error)
}

var _ coreStore = (*store.DB)(nil)
