package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/moltfleet/molt/protocol"
)

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
