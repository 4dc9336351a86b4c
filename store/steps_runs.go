package store

import (
	"strings"
	"time"
)

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
