package store

import (
	"context"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// RunDeployment is a deployment of a run: the protocol's view of it,
// with its ids as numbers (the protocol's ID and RunID are left for the
// server to name).
type RunDeployment struct {
	ID    int64
	RunID int64
	protocol.Deployment
}

const runDeploymentColumns = `id, run_id, agent_id, agent_name, platform, kind, from_version, target, revert, state, reason, workload, done, total, created, started, ended, updated, wave, canary`

// readRunDeployments reads run's deployments, by id.
func readRunDeployments(query queryFunc, run int64) ([]RunDeployment, error) {
	rows, err := query(`SELECT `+runDeploymentColumns+` FROM deployments WHERE run_id = ? ORDER BY id`, run)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []RunDeployment{}
	for rows.Next() {
		var d RunDeployment
		var created, started, ended, updated int64
		if err := rows.Scan(&d.ID, &d.RunID, &d.AgentID, &d.AgentName, &d.Platform, &d.Kind, &d.From, &d.Target, &d.Revert, &d.State, &d.Reason, &d.Workload,
			&d.Done, &d.Total, &created, &started, &ended, &updated, &d.Wave, &d.Canary); err != nil {
			return nil, err
		}
		d.Created, d.Started, d.Ended, d.Updated = FromNanos(created), FromNanos(started), FromNanos(ended), FromNanos(updated)
		out = append(out, d)
	}
	return out, rows.Err()
}

// WaveTally is how many of a run's deployments of one wave are in one
// state, the lowest id among them and the earliest start (zero: none
// started).
type WaveTally struct {
	Wave         int
	State        string
	Count        int
	FirstID      int64
	FirstStarted time.Time
}

// RunWaveTallies tallies run's deployments by wave and state, through
// the writer's connection (read at start-up, before the server writes).
func (db *DB) RunWaveTallies(ctx context.Context, run int64) ([]WaveTally, error) {
	rows, err := db.wquery(ctx, `SELECT wave, state, COUNT(*), MIN(id), MIN(CASE WHEN started > 0 THEN started END) FROM deployments
		WHERE run_id = ? GROUP BY wave, state ORDER BY wave, state`, run)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []WaveTally
	for rows.Next() {
		var t WaveTally
		var started *int64
		if err := rows.Scan(&t.Wave, &t.State, &t.Count, &t.FirstID, &started); err != nil {
			return nil, err
		}
		if started != nil {
			t.FirstStarted = FromNanos(*started)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// MovedAgent is an agent a run moved: from the version it ran to the
// run's target for it.
type MovedAgent struct {
	AgentID, AgentName string
	From, To           string
}

// MovedAgents lists the agents run moved, in the order it moved them:
// its upgrades that succeeded after they were handed to the agent (one
// that found its agent already at the target moved nothing).
func (db *DB) MovedAgents(ctx context.Context, run int64) ([]MovedAgent, error) {
	rows, err := db.query(ctx, `SELECT agent_id, agent_name, from_version, target FROM deployments
		WHERE run_id = ? AND kind = ? AND state = ? AND started > 0 AND from_version != '' AND from_version != target ORDER BY id`,
		run, protocol.KindUpgrade, protocol.StateSucceeded)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []MovedAgent
	for rows.Next() {
		var m MovedAgent
		if err := rows.Scan(&m.AgentID, &m.AgentName, &m.From, &m.To); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
