package store

import (
	"context"
	"database/sql"
	"time"
)

// DeploymentState is a deployment's move to a new state.
type DeploymentState struct {
	State  string
	Reason string
	At     time.Time // when: its updated time
	// Started says the deployment starts now (handed to its agent): At
	// becomes its started time. Ended says it ends now: At becomes its
	// ended time.
	Started, Ended bool
}

// The statements of SetDeploymentState, one per combination of Started
// and Ended, so that each is prepared once.
var setDeploymentState = [2][2]string{
	{
		`UPDATE deployments SET state = ?, reason = ?, updated = ? WHERE id = ?`,
		`UPDATE deployments SET state = ?, reason = ?, updated = ?, ended = ? WHERE id = ?`,
	},
	{
		`UPDATE deployments SET state = ?, reason = ?, updated = ?, started = ? WHERE id = ?`,
		`UPDATE deployments SET state = ?, reason = ?, updated = ?, started = ?, ended = ? WHERE id = ?`,
	},
}

// SetDeploymentState moves deployment id to st.
func (t *Tx) SetDeploymentState(id int64, st DeploymentState) error {
	at := Nanos(st.At)
	args := make([]any, 0, 6)
	args = append(args, st.State, st.Reason, at)
	started, ended := 0, 0
	if st.Started {
		args, started = append(args, at), 1
	}
	if st.Ended {
		args, ended = append(args, at), 1
	}
	args = append(args, id)
	_, err := t.exec(setDeploymentState[started][ended], args...)
	return err
}

// SetDeploymentFromVersion records the version deployment id's agent ran
// when the deployment was handed to it.
func (t *Tx) SetDeploymentFromVersion(id int64, version string) error {
	_, err := t.exec(`UPDATE deployments SET from_version = ? WHERE id = ?`, version, id)
	return err
}

const runCountsQuery = `SELECT state, COUNT(*) FROM deployments WHERE run_id = ? GROUP BY state`

// RunCounts counts the deployments of run id by state, and in all.
func (db *DB) RunCounts(ctx context.Context, id int64) (map[string]int, int, error) {
	return scanCountsByKey(db.query(ctx, runCountsQuery, id))
}

// RunCounts is db.RunCounts inside t (a report read in one transaction).
func (t *Tx) RunCounts(id int64) (map[string]int, int, error) {
	return scanCountsByKey(t.query(runCountsQuery, id))
}

// CountDeploymentsByState counts every deployment by state (/metrics).
func (db *DB) CountDeploymentsByState(ctx context.Context) (map[string]int, error) {
	counts, _, err := scanCountsByKey(db.query(ctx, `SELECT state, COUNT(*) FROM deployments GROUP BY state`))
	return counts, err
}

// scanCountsByKey reads the rows of a "SELECT key, COUNT(*) ... GROUP BY
// key" into a map and their sum, and closes them.
func scanCountsByKey(rows *sql.Rows, err error) (map[string]int, int, error) {
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	counts := map[string]int{}
	total := 0
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			return nil, 0, err
		}
		counts[k] = n
		total += n
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	return counts, total, nil
}
