package store

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// Deployment is one row of the deployments table: one agent's upgrade,
// repair or activation, in a run (RunID) or not (0).
type Deployment struct {
	ID        int64
	RunID     int64
	AgentID   string
	AgentName string
	Platform  string
	Kind      string
	From      string
	Target    string
	Revert    bool
	State     string
	Reason    string
	Workload  string
	Done      int64
	Total     int64
	Wave      int
	Canary    bool
	Created   time.Time
	Started   time.Time
	Ended     time.Time
	Updated   time.Time
}

const deploymentColumns = `id, run_id, agent_id, agent_name, platform, kind, from_version, target, revert, state, reason, workload, done, total, created, started, ended, updated, wave, canary`

func scanDeploymentRow(sc interface{ Scan(...any) error }) (Deployment, error) {
	var d Deployment
	var created, started, ended, updated int64
	err := sc.Scan(&d.ID, &d.RunID, &d.AgentID, &d.AgentName, &d.Platform, &d.Kind, &d.From, &d.Target, &d.Revert, &d.State, &d.Reason, &d.Workload, &d.Done, &d.Total, &created, &started, &ended, &updated, &d.Wave, &d.Canary)
	d.Created, d.Started, d.Ended, d.Updated = FromNanos(created), FromNanos(started), FromNanos(ended), FromNanos(updated)
	return d, err
}

func scanDeploymentRows(rows *sql.Rows, err error) ([]Deployment, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Deployment{}
	for rows.Next() {
		d, err := scanDeploymentRow(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// InsertDeployment records a new deployment d (its ID is ignored; its
// started and ended times are not set yet) and returns its id.
func (t *Tx) InsertDeployment(d Deployment) (int64, error) {
	var id int64
	err := t.queryRow(`INSERT INTO deployments (run_id, agent_id, agent_name, platform, kind, from_version, target, revert, state, created, updated, wave, canary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		d.RunID, d.AgentID, d.AgentName, d.Platform, d.Kind, d.From, d.Target, d.Revert, d.State, Nanos(d.Created), Nanos(d.Updated), d.Wave, d.Canary).Scan(&id)
	return id, err
}

// Deployment is deployment id, read through the readers' pool;
// sql.ErrNoRows when there is none.
func (db *DB) Deployment(ctx context.Context, id int64) (Deployment, error) {
	return scanDeploymentRow(db.queryRow(ctx, `SELECT `+deploymentColumns+` FROM deployments WHERE id = ?`, id))
}

// DeploymentAgentState is the agent and the state of deployment id, read
// through the writer's connection (after the commits an agent's report
// may follow); sql.ErrNoRows when there is none.
func (db *DB) DeploymentAgentState(ctx context.Context, id int64) (agent, state string, err error) {
	err = db.wqueryRow(ctx, `SELECT agent_id, state FROM deployments WHERE id = ?`, id).Scan(&agent, &state)
	return agent, state, err
}

// AgentDeploymentRun is the run of deployment id when it is agent's;
// sql.ErrNoRows when it is not (or there is none).
func (t *Tx) AgentDeploymentRun(agent string, id int64) (int64, error) {
	var run int64
	err := t.queryRow(`SELECT run_id FROM deployments WHERE id = ? AND agent_id = ?`, id, agent).Scan(&run)
	return run, err
}

// LastDeploymentOf is the id of agent's newest deployment; sql.ErrNoRows
// when it has none.
func (t *Tx) LastDeploymentOf(agent string) (int64, error) {
	var id sql.NullInt64
	if err := t.queryRow(`SELECT MAX(id) FROM deployments WHERE agent_id = ?`, agent).Scan(&id); err != nil {
		return 0, err
	}
	if !id.Valid {
		return 0, sql.ErrNoRows
	}
	return id.Int64, nil
}

// DeploymentEnd is the state of deployment id and when it ended (zero
// while it has not); sql.ErrNoRows when there is none.
func (t *Tx) DeploymentEnd(id int64) (state string, ended time.Time, err error) {
	var at int64
	if err := t.queryRow(`SELECT state, ended FROM deployments WHERE id = ?`, id).Scan(&state, &at); err != nil {
		return "", time.Time{}, err
	}
	return state, FromNanos(at), nil
}

// SetDeploymentProgress records the agent's download progress of
// deployment id (done of total bytes), its updated time unchanged.
func (t *Tx) SetDeploymentProgress(id, done, total int64) error {
	_, err := t.exec(`UPDATE deployments SET done = ?, total = ? WHERE id = ?`, done, total, id)
	return err
}

// ReportDeploymentProgress is SetDeploymentProgress from an agent's
// report: the report is progress, so it also sets the updated time.
func (t *Tx) ReportDeploymentProgress(id, done, total int64, at time.Time) error {
	_, err := t.exec(`UPDATE deployments SET done = ?, total = ?, updated = ? WHERE id = ?`, done, total, Nanos(at), id)
	return err
}

// SetDeploymentUpdated sets deployment id's updated time: the time of its
// last progress.
func (t *Tx) SetDeploymentUpdated(id int64, at time.Time) error {
	_, err := t.exec(`UPDATE deployments SET updated = ? WHERE id = ?`, Nanos(at), id)
	return err
}

// SetDeploymentWorkload names the workload whose failure rolled
// deployment id back.
func (t *Tx) SetDeploymentWorkload(id int64, workload string) error {
	_, err := t.exec(`UPDATE deployments SET workload = ? WHERE id = ?`, workload, id)
	return err
}

// SetDeploymentBaseline keeps deployment id's health baseline (a
// rollout.HealthSample as JSON), or drops it ("").
func (t *Tx) SetDeploymentBaseline(id int64, baseline string) error {
	_, err := t.exec(`UPDATE deployments SET baseline = ? WHERE id = ?`, baseline, id)
	return err
}

// DeploymentBaseline is a deployment of a run with the health baseline
// kept for it.
type DeploymentBaseline struct {
	ID       int64
	AgentID  string
	Wave     int
	State    string
	Ended    time.Time // zero while it has not ended
	Baseline string    // a rollout.HealthSample as JSON
}

// HealthBaselines are the deployments of run that have a baseline and
// still matter to its health watch: those not ended, those that
// succeeded, and those that ended at soakFrom or later. Read through the
// writer's connection, after the baselines the server wrote.
func (db *DB) HealthBaselines(ctx context.Context, run int64, soakFrom time.Time) ([]DeploymentBaseline, error) {
	rows, err := db.wquery(ctx, `SELECT id, agent_id, wave, state, ended, baseline FROM deployments WHERE run_id = ? AND baseline != '' AND (state = ? OR ended = 0 OR ended >= ?)`,
		run, protocol.StateSucceeded, Nanos(soakFrom))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DeploymentBaseline
	for rows.Next() {
		var b DeploymentBaseline
		var ended int64
		if err := rows.Scan(&b.ID, &b.AgentID, &b.Wave, &b.State, &ended, &b.Baseline); err != nil {
			return nil, err
		}
		b.Ended = FromNanos(ended)
		out = append(out, b)
	}
	return out, rows.Err()
}

// DeploymentFilter selects deployments of the history (GET
// /v1/deployments); a zero field selects any.
type DeploymentFilter struct {
	AgentID string
	RunID   int64
	State   string
	Kind    string
	// Since and Until bound the deployments' creation: Since <= created
	// < Until.
	Since, Until time.Time
}

// where is f as SQL conditions and their arguments. The page is read
// newest id first, so a bare condition on created would walk every newer
// deployment (until) or, when few match, every one (since); the id bound,
// taken from the created index, starts and ends that walk where the
// matches are. It narrows nothing (a clock set back leaves created out of
// id order, and the condition on created decides). SQLite is told to use
// the created index for it (INDEXED BY); PostgreSQL's planner picks it.
func (db *DB) deploymentWhere(f DeploymentFilter) (string, []any) {
	var where []string
	var args []any
	add := func(cond string, a ...any) {
		where, args = append(where, cond), append(args, a...)
	}
	if f.AgentID != "" {
		add("agent_id = ?", f.AgentID)
	}
	if f.RunID != 0 {
		add("run_id = ?", f.RunID)
	}
	if f.State != "" {
		add("state = ?", f.State)
	}
	if f.Kind != "" {
		add("kind = ?", f.Kind)
	}
	indexed := " INDEXED BY deployments_created"
	if db.engine == Postgres {
		indexed = ""
	}
	if !f.Since.IsZero() {
		add("created >= ? AND id >= (SELECT MIN(id) FROM deployments"+indexed+" WHERE created >= ?)", Nanos(f.Since), Nanos(f.Since))
	}
	if !f.Until.IsZero() {
		add("created < ? AND id <= (SELECT MAX(id) FROM deployments"+indexed+" WHERE created < ?)", Nanos(f.Until), Nanos(f.Until))
	}
	if len(where) == 0 {
		return "", nil
	}
	return ` WHERE ` + strings.Join(where, " AND "), args
}

// deploymentQueries are the page (newest first; its last two arguments
// are limit and offset) and the count of the deployments f selects.
func (db *DB) deploymentQueries(f DeploymentFilter) (list, count string, args []any) {
	cond, args := db.deploymentWhere(f)
	return `SELECT ` + deploymentColumns + ` FROM deployments` + cond + ` ORDER BY id DESC LIMIT ? OFFSET ?`,
		`SELECT COUNT(*) FROM deployments` + cond, args
}

// Deployments is a page of the deployments f selects, newest first:
// limit of them after skipping offset.
func (db *DB) Deployments(ctx context.Context, f DeploymentFilter, limit, offset int) ([]Deployment, error) {
	list, _, args := db.deploymentQueries(f)
	return scanDeploymentRows(db.query(ctx, list, append(args, limit, offset)...))
}

// CountDeployments is how many deployments f selects.
func (db *DB) CountDeployments(ctx context.Context, f DeploymentFilter) (int, error) {
	_, count, args := db.deploymentQueries(f)
	var n int
	err := db.queryRow(ctx, count, args...).Scan(&n)
	return n, err
}

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
