package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// InsertCleanup orders agent to remove the versions it no longer needs
// after deployment dep, keeping those of keep, and returns the cleanup's
// id.
func (t *Tx) InsertCleanup(agent string, dep int64, keep []string, created time.Time) (int64, error) {
	b, err := json.Marshal(keep)
	if err != nil {
		return 0, fmt.Errorf("cleanup keep: %w", err)
	}
	var id int64
	err = t.queryRow(`INSERT INTO cleanups (agent_id, deployment_id, keep, created) VALUES (?, ?, ?, ?) RETURNING id`, agent, dep, string(b), Nanos(created)).Scan(&id)
	return id, err
}

// CleanupAgent is the agent of cleanup id and whether it is done, read
// through the writer's connection (after the commits an agent's report
// may follow); sql.ErrNoRows when there is none.
func (db *DB) CleanupAgent(ctx context.Context, id int64) (agent string, done bool, err error) {
	err = db.wqueryRow(ctx, `SELECT agent_id, done FROM cleanups WHERE id = ?`, id).Scan(&agent, &done)
	return agent, done, err
}

// FinishCleanup marks cleanup id done (whatever its outcome: it is not
// ordered again).
func (t *Tx) FinishCleanup(id int64) error {
	_, err := t.exec(`UPDATE cleanups SET done = 1 WHERE id = ?`, id)
	return err
}
