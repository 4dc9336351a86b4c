package store

import (
	"context"
	"testing"
)

// Helpers of the tests of the server's core statements (events, start-up
// loading, maintenance, and the scheduler's writes).

// seed runs a statement that puts rows in place for a test, through
// the writer.
func seed(t *testing.T, db *DB, q string, args ...any) {
	t.Helper()
	if _, err := db.w.ExecContext(context.Background(), db.q(q), db.args(args)...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// seedAgent adds agent id with status st.
func seedAgent(t *testing.T, db *DB, id, status string) {
	t.Helper()
	seed(t, db, `INSERT INTO agents (id, cred_hash, fingerprint, enrolled, status) VALUES (?, ?, ?, ?, ?)`, id, "cred-"+id, "fp-"+id, 1, status)
}

// seedRun adds a run in status and returns its id.
func seedRun(t *testing.T, db *DB, status string, ended int64) int64 {
	t.Helper()
	var id int64
	err := db.wqueryRow(context.Background(), `INSERT INTO runs (status, target, scope, max_concurrent, failure_threshold, selection, created, ended)
		VALUES (?, '2.0.0', 'all', 5, 2, '{}', 7, ?) RETURNING id`, status, ended).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// seedDeployment adds a deployment of run (0: none) to agent in state and
// returns its id.
func seedDeployment(t *testing.T, db *DB, run int64, agent, state string) int64 {
	t.Helper()
	var id int64
	err := db.wqueryRow(context.Background(), `INSERT INTO deployments (run_id, agent_id, platform, kind, target, state, created, updated)
		VALUES (?, ?, 'linux/amd64', 'upgrade', '2.0.0', ?, 1, 1) RETURNING id`, run, agent, state).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
