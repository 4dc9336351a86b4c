package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// InsertAgent records a newly enrolled agent with the status it enrolled
// with; it has not checked in yet.
func (t *Tx) InsertAgent(id, credHash, fingerprint string, enrolled time.Time, status protocol.Status) error {
	b, err := json.Marshal(status)
	if err != nil {
		return fmt.Errorf("agent status: %w", err)
	}
	_, err = t.exec(`INSERT INTO agents (id, cred_hash, fingerprint, enrolled, status) VALUES (?, ?, ?, ?, ?)`,
		id, credHash, fingerprint, Nanos(enrolled), string(b))
	return err
}

// RevokeAgent revokes the agent id and, when it has a machine
// fingerprint, refuses its host at enrollment (host_refused).
func (t *Tx) RevokeAgent(id string) error {
	_, err := t.exec(`UPDATE agents SET revoked = 1, host_refused = CASE WHEN fingerprint != '' THEN 1 ELSE 0 END WHERE id = ?`, id)
	return err
}

// AllowHost stops every agent of the machine fingerprint from refusing
// its host at enrollment and says how many did.
func (t *Tx) AllowHost(fingerprint string) (int64, error) {
	return affected(t.exec(`UPDATE agents SET host_refused = 0, refused_at = 0 WHERE fingerprint = ? AND host_refused = 1`, fingerprint))
}

// RefusedHostAgents are the ids of the revoked agents whose host
// enrollment refuses, in id order.
func (db *DB) RefusedHostAgents(ctx context.Context) ([]string, error) {
	rows, err := db.query(ctx, `SELECT id FROM agents WHERE host_refused = 1 ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// HostRefusal is the agent that refuses a host at enrollment.
type HostRefusal struct {
	AgentID   string
	RefusedAt time.Time // when a refusal was last recorded; zero if never
}

// HostRefusal is the most recently enrolled agent that refuses the host
// of the machine fingerprint, read through the writer's connection;
// sql.ErrNoRows when none does.
func (db *DB) HostRefusal(ctx context.Context, fingerprint string) (HostRefusal, error) {
	var h HostRefusal
	var at int64
	err := db.wqueryRow(ctx, `SELECT id, refused_at FROM agents WHERE fingerprint = ? AND host_refused = 1 ORDER BY enrolled DESC LIMIT 1`, fingerprint).Scan(&h.AgentID, &at)
	if err != nil {
		return HostRefusal{}, err
	}
	h.RefusedAt = FromNanos(at)
	return h, nil
}

// SetHostRefusedAt records when the agent id last refused its host.
func (t *Tx) SetHostRefusedAt(id string, at time.Time) error {
	_, err := t.exec(`UPDATE agents SET refused_at = ? WHERE id = ?`, Nanos(at), id)
	return err
}

// SetWorkloadAlerts stores the workload alerts in force for the agent id
// (workload name -> alert).
func (t *Tx) SetWorkloadAlerts(id string, alerts map[string]string) error {
	b, err := json.Marshal(alerts)
	if err != nil {
		return fmt.Errorf("workload alerts: %w", err)
	}
	_, err = t.exec(`UPDATE agents SET workload_alerts = ? WHERE id = ?`, string(b), id)
	return err
}

// SetAgentDesired records v as the version agent id should run: the last
// target it reached, which a repair brings it back to.
func (t *Tx) SetAgentDesired(id, v string) error {
	_, err := t.exec(`UPDATE agents SET desired = ? WHERE id = ?`, v, id)
	return err
}

// RecordAgentStatus keeps the status agent id checked in with, seen at
// seen.
func (t *Tx) RecordAgentStatus(id string, status protocol.Status, seen time.Time) error {
	b, err := json.Marshal(status)
	if err != nil {
		return fmt.Errorf("agent status: %w", err)
	}
	_, err = t.exec(`UPDATE agents SET status = ?, last_seen = ? WHERE id = ?`, string(b), Nanos(seen), id)
	return err
}
