package store

import (
	"context"
	"time"
)

// AgentSeen is when an agent was last seen.
type AgentSeen struct {
	ID string
	At time.Time
}

// FlushLastSeen writes agents' last-seen times in one transaction of its
// own: they change at every check-in and are not worth an fsync each.
func (db *DB) FlushLastSeen(ctx context.Context, seen []AgentSeen) error {
	if len(seen) == 0 {
		return nil
	}
	return db.Update(ctx, func(tx *Tx) error {
		for _, s := range seen {
			if _, err := tx.exec(`UPDATE agents SET last_seen = ? WHERE id = ?`, Nanos(s.At), s.ID); err != nil {
				return err
			}
		}
		return nil
	})
}

// PruneEvents deletes the oldest events recorded before cutoff, at most
// limit of them, in a transaction of its own (so that pruning a long log
// never holds the writer for long), and returns how many it deleted.
func (db *DB) PruneEvents(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	var n int64
	err := db.Update(ctx, func(tx *Tx) error {
		var err error
		n, err = affected(tx.exec(`DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE at < ? ORDER BY seq LIMIT ?)`, Nanos(cutoff), limit))
		return err
	})
	return n, err
}
