package store

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

func TestRecordAgentStatus(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		deployTx(t, db, func(tx *Tx) error {
			for _, id := range []string{"a", "b"} {
				if _, err := tx.exec(`INSERT INTO agents (id, cred_hash, fingerprint, enrolled, status) VALUES (?, ?, '', 1, '{}')`, id, "h-"+id); err != nil {
					return err
				}
			}
			return tx.RecordAgentStatus("a", protocol.Status{Name: "web-1", Version: "2.0.0", Platform: "linux/amd64"}, t0.Add(time.Minute))
		})
		for _, tt := range []struct {
			id   string
			name string
			seen time.Time
		}{{"a", "web-1", t0.Add(time.Minute)}, {"b", "", time.Time{}}} {
			var status string
			var seen int64
			if err := db.queryRow(ctx, `SELECT status, last_seen FROM agents WHERE id = ?`, tt.id).Scan(&status, &seen); err != nil {
				t.Fatal(err)
			}
			var st protocol.Status
			if err := json.Unmarshal([]byte(status), &st); err != nil {
				t.Fatal(err)
			}
			if st.Name != tt.name || !FromNanos(seen).Equal(tt.seen) {
				t.Errorf("agent %s: status %s, seen %v; want name %q seen %v", tt.id, status, FromNanos(seen), tt.name, tt.seen)
			}
		}
	})
}
