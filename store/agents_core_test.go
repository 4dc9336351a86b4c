package store

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Setting an agent's desired version touches only that agent.
func TestSetAgentDesired(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		for _, id := range []string{"a-1", "a-2", "a-3"} {
			coreAgent(t, db, id, "{}")
		}
		coreTx(t, db, func(tx *Tx) error { return tx.SetAgentDesired("a-2", "1.4.0") })
		rows, err := db.query(context.Background(), `SELECT desired FROM agents ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var desired []string
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				t.Fatal(err)
			}
			desired = append(desired, d)
		}
		if d := cmp.Diff([]string{"", "1.4.0", ""}, desired); d != "" {
			t.Errorf("desired (-want +got):\n%s", d)
		}
	})
}
