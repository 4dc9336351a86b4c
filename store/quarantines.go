package store

import (
	"context"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// Quarantine keeps release Version from Platform (docs/server.md,
// "Quarantine"); Automatic when rollbacks caused it.
type Quarantine struct {
	Version, Platform string
	Reason            string
	Automatic         bool
	At                time.Time
}

// SetQuarantine puts q in force, replacing a lifted quarantine of the
// same version and platform.
func (t *Tx) SetQuarantine(q Quarantine) error {
	_, err := t.exec(`INSERT INTO quarantines (version, platform, reason, automatic, at, lifted) VALUES (?, ?, ?, ?, ?, 0)
		ON CONFLICT(version, platform) DO UPDATE SET reason = excluded.reason, automatic = excluded.automatic, at = excluded.at, lifted = 0`,
		q.Version, q.Platform, q.Reason, q.Automatic, Nanos(q.At))
	return err
}

// LiftQuarantine ends the quarantine of version for platform at at:
// rollbacks count towards the next from then. The row stays, so that a
// re-import of the version knows it.
func (t *Tx) LiftQuarantine(version, platform string, at time.Time) error {
	_, err := t.exec(`UPDATE quarantines SET lifted = ? WHERE version = ? AND platform = ?`, Nanos(at), version, platform)
	return err
}

// RollbacksSinceLift counts the deployments to version on platform that
// rolled back (ended) since its last quarantine was lifted, or ever when
// it never was quarantined.
func (t *Tx) RollbacksSinceLift(version, platform string) (int, error) {
	var n int
	err := t.queryRow(`SELECT COUNT(*) FROM deployments WHERE target = ? AND platform = ? AND state = ?
		AND ended > COALESCE((SELECT lifted FROM quarantines WHERE version = ? AND platform = ?), 0)`,
		version, platform, protocol.StateRolledBack, version, platform).Scan(&n)
	return n, err
}

// QuarantinesInForce lists the quarantines not lifted, by version and
// platform, through the writer's connection (read at start-up).
func (db *DB) QuarantinesInForce(ctx context.Context) ([]Quarantine, error) {
	rows, err := db.wquery(ctx, `SELECT version, platform, reason, automatic, at FROM quarantines WHERE lifted = 0 ORDER BY version, platform`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Quarantine
	for rows.Next() {
		var q Quarantine
		var at int64
		if err := rows.Scan(&q.Version, &q.Platform, &q.Reason, &q.Automatic, &at); err != nil {
			return nil, err
		}
		q.At = FromNanos(at)
		out = append(out, q)
	}
	return out, rows.Err()
}
