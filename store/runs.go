package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// Run is a run's row, its JSON columns decoded, with how many of its
// deployments are in each state (Counts, never nil) and, per wave, in
// each state (WaveCounts, filled only for runs of two waves or more: a
// run of one wave has them in Counts).
type Run struct {
	ID               int64
	Text             string
	Status           string
	Target           string
	TargetFor        map[string]string // nil when the run has none
	Scope            string
	MaxConcurrent    int
	FailureThreshold int
	Selection        protocol.Selection
	CreatedBy        string
	Created          time.Time
	Ended            time.Time
	Reason           string
	Plan             []protocol.PlanLine
	Excluded         []protocol.Exclusion
	Controls         protocol.RunControls
	Waves            []protocol.WaveStatus // as stored: wave, name, agents
	Wave             int                   // the wave open now
	WaveDoneAt       time.Time             // when the open wave was seen done (zero: not yet)
	WaveApproval     bool                  // the next wave waits for promotion

	Counts     map[string]int
	WaveCounts map[int]map[string]int
}

const runColumns = `id, text, status, target, target_for, scope, max_concurrent, failure_threshold, selection, created_by, created, ended, reason, plan, excluded, controls, waves, wave, wave_done_at, wave_approval`

func scanRun(sc interface{ Scan(...any) error }) (Run, error) {
	var r Run
	var created, ended, doneAt int64
	var tf, sel, plan, exc, controls, waves string
	if err := sc.Scan(&r.ID, &r.Text, &r.Status, &r.Target, &tf, &r.Scope, &r.MaxConcurrent, &r.FailureThreshold, &sel, &r.CreatedBy, &created, &ended, &r.Reason, &plan, &exc,
		&controls, &waves, &r.Wave, &doneAt, &r.WaveApproval); err != nil {
		return r, err
	}
	r.Created, r.Ended, r.WaveDoneAt = FromNanos(created), FromNanos(ended), FromNanos(doneAt)
	for _, x := range []struct {
		s string
		v any
	}{{tf, &r.TargetFor}, {sel, &r.Selection}, {plan, &r.Plan}, {exc, &r.Excluded}, {controls, &r.Controls}, {waves, &r.Waves}} {
		if err := unmarshalColumn(x.s, x.v); err != nil {
			return r, fmt.Errorf("run %d: %w", r.ID, err)
		}
	}
	if len(r.TargetFor) == 0 {
		r.TargetFor = nil
	}
	return r, nil
}

// unmarshalColumn decodes a JSON column; an empty one leaves v as it is.
func unmarshalColumn(s string, v any) error {
	if s == "" {
		return nil
	}
	return json.Unmarshal([]byte(s), v)
}

// marshalColumn encodes a JSON column (of types that always encode).
func marshalColumn(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// queryFunc runs a query in a pool or a transaction.
type queryFunc func(q string, args ...any) (*sql.Rows, error)

func (db *DB) reader(ctx context.Context) queryFunc {
	return func(q string, args ...any) (*sql.Rows, error) { return db.query(ctx, q, args...) }
}

// readRun reads run id and its counts; sql.ErrNoRows when there is none.
func readRun(query queryFunc, id int64) (Run, error) {
	rows, err := query(`SELECT `+runColumns+` FROM runs WHERE id = ?`, id)
	if err != nil {
		return Run{}, err
	}
	if !rows.Next() {
		rows.Close()
		if err := rows.Err(); err != nil {
			return Run{}, err
		}
		return Run{}, sql.ErrNoRows
	}
	r, err := scanRun(rows)
	rows.Close()
	if err != nil {
		return r, err
	}
	return r, readRunCounts(query, &r)
}

// readRunCounts fills r's Counts and, for a run of waves, its WaveCounts.
func readRunCounts(query queryFunc, r *Run) error {
	rows, err := query(`SELECT wave, state, COUNT(*) FROM deployments WHERE run_id = ? GROUP BY wave, state`, r.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	r.Counts = map[string]int{}
	for rows.Next() {
		var w, n int
		var st string
		if err := rows.Scan(&w, &st, &n); err != nil {
			return err
		}
		r.Counts[st] += n
		if len(r.Waves) >= 2 {
			if r.WaveCounts == nil {
				r.WaveCounts = map[int]map[string]int{}
			}
			if r.WaveCounts[w] == nil {
				r.WaveCounts[w] = map[string]int{}
			}
			r.WaveCounts[w][st] = n
		}
	}
	return rows.Err()
}

// Run reads run id with its counts; sql.ErrNoRows when there is none.
func (db *DB) Run(ctx context.Context, id int64) (Run, error) {
	return readRun(db.reader(ctx), id)
}

// Runs lists up to limit runs, newest first, those of status only unless
// it is "", each with its Counts.
func (db *DB) Runs(ctx context.Context, status string, limit int) ([]Run, error) {
	q := `SELECT ` + runColumns + ` FROM runs ORDER BY id DESC LIMIT ?`
	args := []any{limit}
	if status != "" {
		q = `SELECT ` + runColumns + ` FROM runs WHERE status = ? ORDER BY id DESC LIMIT ?`
		args = []any{status, limit}
	}
	rows, err := db.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	out := []Run{}
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	query := db.reader(ctx)
	for i := range out {
		if err := readRunCounts(query, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// InsertRun records a new run from r (its ID, Ended, Reason, wave state
// and counts are not stored: a run starts at wave 0) and returns its id.
func (t *Tx) InsertRun(r Run) (int64, error) {
	tf := r.TargetFor
	if tf == nil {
		tf = map[string]string{}
	}
	cols := make([]any, 0, 7)
	for _, v := range []any{tf, r.Selection, r.Plan, r.Excluded, r.Controls, r.Waves} {
		s, err := marshalColumn(v)
		if err != nil {
			return 0, fmt.Errorf("insert run: %w", err)
		}
		cols = append(cols, s)
	}
	var id int64
	err := t.queryRow(`INSERT INTO runs (text, status, target, target_for, scope, max_concurrent, failure_threshold, selection, created_by, created, plan, excluded, controls, waves)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		r.Text, r.Status, r.Target, cols[0], r.Scope, r.MaxConcurrent, r.FailureThreshold, cols[1], r.CreatedBy, Nanos(r.Created), cols[2], cols[3], cols[4], cols[5]).Scan(&id)
	return id, err
}

// SetRunStatus sets run id's status and the reason for it.
func (t *Tx) SetRunStatus(id int64, status, reason string) error {
	_, err := t.exec(`UPDATE runs SET status = ?, reason = ? WHERE id = ?`, status, reason, id)
	return err
}

// SetRunStatusAck is SetRunStatus that also records how many failures
// the operator acknowledged (a resume: the threshold counts from there).
func (t *Tx) SetRunStatusAck(id int64, status, reason string, ackFailures int) error {
	_, err := t.exec(`UPDATE runs SET status = ?, reason = ?, ack_failures = ? WHERE id = ?`, status, reason, ackFailures, id)
	return err
}

// SetWaveDone records that run id's open wave was seen done at, and
// whether the next waits for promotion.
func (t *Tx) SetWaveDone(id int64, at time.Time, approval bool) error {
	_, err := t.exec(`UPDATE runs SET wave_done_at = ?, wave_approval = ? WHERE id = ?`, Nanos(at), approval, id)
	return err
}

// OpenWave opens wave w of run id: neither done nor waiting yet.
func (t *Tx) OpenWave(id int64, w int) error {
	_, err := t.exec(`UPDATE runs SET wave = ?, wave_done_at = 0, wave_approval = 0 WHERE id = ?`, w, id)
	return err
}

// RunTarget is where an open run sends its agents: one target, or one
// per platform.
type RunTarget struct {
	ID        int64
	Target    string
	TargetFor map[string]string
}

// OpenRunTargets lists the targets of the runs not ended, by id, through
// the writer's connection (the caller holds the server's lock and must
// see its last commit).
func (db *DB) OpenRunTargets(ctx context.Context) ([]RunTarget, error) {
	rows, err := db.wquery(ctx, `SELECT id, target, target_for FROM runs WHERE ended = 0 ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []RunTarget
	for rows.Next() {
		var r RunTarget
		var tf string
		if err := rows.Scan(&r.ID, &r.Target, &tf); err != nil {
			return nil, err
		}
		// A target_for that does not decode names no version.
		_ = unmarshalColumn(tf, &r.TargetFor)
		out = append(out, r)
	}
	return out, rows.Err()
}

// RunReport is what a run's report is made of, read in one snapshot.
type RunReport struct {
	Run         Run
	Deployments []RunDeployment // by id
	Halts       []RunHalt       // its halts, oldest first
}

// RunReport reads run id, its deployments and its halts in one read-only
// snapshot, and hands step each server step of its deployments named in
// steps (in no order), streamed: a run of 10,000 has about 70,000.
// sql.ErrNoRows when there is no run id.
func (db *DB) RunReport(ctx context.Context, id int64, steps []string, step func(StepTime)) (RunReport, error) {
	opts := &sql.TxOptions{ReadOnly: true}
	if db.engine == Postgres {
		// Read committed would take a snapshot per statement.
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := db.r.BeginTx(ctx, opts)
	if err != nil {
		return RunReport{}, err
	}
	defer func() { _ = tx.Rollback() }() // read only: nothing to undo
	query := func(q string, args ...any) (*sql.Rows, error) {
		return tx.QueryContext(ctx, db.q(q), db.args(args)...)
	}
	var rep RunReport
	if rep.Run, err = readRun(query, id); err != nil {
		return rep, err
	}
	if rep.Deployments, err = readRunDeployments(query, id); err != nil {
		return rep, fmt.Errorf("deployments: %w", err)
	}
	if err := readRunStepTimes(query, id, steps, step); err != nil {
		return rep, fmt.Errorf("steps: %w", err)
	}
	if rep.Halts, err = readRunHalts(query, id); err != nil {
		return rep, fmt.Errorf("health: %w", err)
	}
	return rep, nil
}

// EndRun records that run id ended at at, with status.
func (t *Tx) EndRun(id int64, status string, at time.Time) error {
	_, err := t.exec(`UPDATE runs SET status = ?, ended = ? WHERE id = ?`, status, Nanos(at), id)
	return err
}

// CountRunsByStatus counts every run by status (/metrics).
func (db *DB) CountRunsByStatus(ctx context.Context) (map[string]int, error) {
	counts, _, err := scanCountsByKey(db.query(ctx, `SELECT status, COUNT(*) FROM runs GROUP BY status`))
	return counts, err
}
