package store

import (
	"context"
	"maps"
	"testing"
)

// storedSettings reads the settings table.
func storedSettings(t *testing.T, db *DB) map[string]string {
	t.Helper()
	rows, err := db.query(context.Background(), `SELECT key, value FROM settings`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSettings(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		for _, step := range []struct {
			name string
			fn   func(tx *Tx) error
			want map[string]string
		}{
			{"set", func(tx *Tx) error { return tx.SetSetting("a", "1") }, map[string]string{"a": "1"}},
			{"set another", func(tx *Tx) error { return tx.SetSetting("b", "x") }, map[string]string{"a": "1", "b": "x"}},
			{"replace", func(tx *Tx) error { return tx.SetSetting("a", "2") }, map[string]string{"a": "2", "b": "x"}},
			{"delete", func(tx *Tx) error { return tx.DeleteSetting("a") }, map[string]string{"b": "x"}},
			{"delete a missing one", func(tx *Tx) error { return tx.DeleteSetting("a") }, map[string]string{"b": "x"}},
		} {
			inTx(t, db, step.fn)
			if got := storedSettings(t, db); !maps.Equal(got, step.want) {
				t.Fatalf("%s: settings %v, want %v", step.name, got, step.want)
			}
		}
	})
}
