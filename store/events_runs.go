package store

import (
	"time"

	"github.com/moltfleet/molt/protocol"
)

// RunHalt is a run_halted event of a run: when, and its fields (signal,
// reason, agents).
type RunHalt struct {
	At     time.Time
	Fields map[string]string
}

// readRunHalts reads run's halts still in the event log, oldest first.
func readRunHalts(query queryFunc, run int64) ([]RunHalt, error) {
	rows, err := query(`SELECT at, fields FROM events WHERE run_id = ? AND id = ? ORDER BY seq`, run, protocol.EvRunHalted)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []RunHalt
	for rows.Next() {
		var h RunHalt
		var at int64
		var fields string
		if err := rows.Scan(&at, &fields); err != nil {
			return nil, err
		}
		if err := unmarshalColumn(fields, &h.Fields); err != nil {
			return nil, err
		}
		h.At = FromNanos(at)
		out = append(out, h)
	}
	return out, rows.Err()
}
