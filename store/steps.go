package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// InsertStep adds a line to deployment dep's DEPLOY report and says
// whether it did: a step of the same time and name is recorded once, a
// repeat is ignored.
func (t *Tx) InsertStep(dep int64, at time.Time, name, detail string) (bool, error) {
	n, err := affected(t.exec(`INSERT INTO steps (deployment_id, at, name, detail) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, dep, Nanos(at), name, detail))
	return n > 0, err
}

// CountSteps is how many steps deployment dep's report holds, and how
// many of them are named name.
func (t *Tx) CountSteps(dep int64, name string) (all, named int, err error) {
	err = t.queryRow(`SELECT COUNT(*), COUNT(CASE WHEN name = ? THEN 1 END) FROM steps WHERE deployment_id = ?`, name, dep).Scan(&all, &named)
	return all, named, err
}

// HasStep says whether deployment dep's report holds the step name at
// at, read through the writer's connection (after the commits an agent's
// report may follow).
func (db *DB) HasStep(ctx context.Context, dep int64, at time.Time, name string) (bool, error) {
	var one int
	err := db.wqueryRow(ctx, `SELECT 1 FROM steps WHERE deployment_id = ? AND at = ? AND name = ?`, dep, Nanos(at), name).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// Steps is deployment dep's DEPLOY report, in time order (steps of the
// same time in the order they were recorded).
func (db *DB) Steps(ctx context.Context, dep int64) ([]protocol.Step, error) {
	rows, err := db.query(ctx, `SELECT at, name, detail FROM steps WHERE deployment_id = ? ORDER BY at, seq`, dep)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []protocol.Step{}
	for rows.Next() {
		var st protocol.Step
		var at int64
		if err := rows.Scan(&at, &st.Name, &st.Detail); err != nil {
			return nil, err
		}
		st.At = FromNanos(at)
		out = append(out, st)
	}
	return out, rows.Err()
}

// LastStep is the newest step of deployment dep's report (the last
// recorded of those of the newest time); sql.ErrNoRows when it has none.
func (t *Tx) LastStep(dep int64) (name string, at time.Time, err error) {
	var n int64
	if err := t.queryRow(`SELECT name, at FROM steps WHERE deployment_id = ? ORDER BY at DESC, seq DESC LIMIT 1`, dep).Scan(&name, &n); err != nil {
		return "", time.Time{}, err
	}
	return name, FromNanos(n), nil
}

// LastStepNamed is the name of the newest step of deployment dep's report
// that is one of names; sql.ErrNoRows when none is.
func (t *Tx) LastStepNamed(dep int64, names ...string) (string, error) {
	if len(names) == 0 {
		return "", sql.ErrNoRows
	}
	args := []any{dep}
	for _, n := range names {
		args = append(args, n)
	}
	var name string
	err := t.queryRow(`SELECT name FROM steps WHERE deployment_id = ? AND name IN (`+stepNamePlaceholders(len(names))+`) ORDER BY at DESC, seq DESC LIMIT 1`, args...).Scan(&name)
	return name, err
}

// RunDeploymentsMarked is how many deployments of run have a step named
// step in their report (the server's marks, as "server: retried").
func (db *DB) RunDeploymentsMarked(ctx context.Context, run int64, step string) (int, error) {
	var n int
	err := db.queryRow(ctx, `SELECT COUNT(DISTINCT d.id) FROM deployments d JOIN steps st ON st.deployment_id = d.id WHERE d.run_id = ? AND st.name = ?`, run, step).Scan(&n)
	return n, err
}

// stepNamePlaceholders is n placeholders separated by commas, for an IN list.
func stepNamePlaceholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// StepTime is when a deployment's step was recorded.
type StepTime struct {
	Deployment int64
	Name       string
	At         time.Time
}

// readRunStepTimes hands step each step of run's deployments whose name
// is one of names, in no order. No names, no steps.
func readRunStepTimes(query queryFunc, run int64, names []string, step func(StepTime)) error {
	if len(names) == 0 {
		return nil
	}
	marks := make([]string, len(names))
	args := make([]any, 0, len(names)+1)
	args = append(args, run)
	for i, n := range names {
		marks[i] = "?"
		args = append(args, n)
	}
	rows, err := query(`SELECT s.deployment_id, s.name, s.at FROM deployments d JOIN steps s ON s.deployment_id = d.id
		WHERE d.run_id = ? AND s.name IN (`+strings.Join(marks, ", ")+`)`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var st StepTime
		var at int64
		if err := rows.Scan(&st.Deployment, &st.Name, &at); err != nil {
			return err
		}
		st.At = FromNanos(at)
		step(st)
	}
	return rows.Err()
}
