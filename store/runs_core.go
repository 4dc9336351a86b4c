package store

import (
	"context"
	"time"
)

// EndRun records that run id ended at at, with status.
func (t *Tx) EndRun(id int64, status string, at time.Time) error {
	_, err := t.exec(`UPDATE runs SET status = ?, ended = ? WHERE id = ?`, status, Nanos(at), id)
	return err
}

// SetRunStatus sets run id's status and the reason it is in it.
func (t *Tx) SetRunStatus(id int64, status, reason string) error {
	_, err := t.exec(`UPDATE runs SET status = ?, reason = ? WHERE id = ?`, status, reason, id)
	return err
}

// CountRunsByStatus counts every run by status (/metrics).
func (db *DB) CountRunsByStatus(ctx context.Context) (map[string]int, error) {
	counts, _, err := scanCountsByKey(db.query(ctx, `SELECT status, COUNT(*) FROM runs GROUP BY status`))
	return counts, err
}
