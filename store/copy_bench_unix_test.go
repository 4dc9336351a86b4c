//go:build unix

package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/moltfleet/molt/internal/pgtest"
)

// BenchmarkCopyToPostgres copies an installation of 10,000 agents, 20,000
// deployments with 60,000 steps, and 200,000 events into PostgreSQL and
// reports rows/s (snapshot, migration and checks included).
func BenchmarkCopyToPostgres(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	src := filepath.Join(dir, "molt.db")
	db, err := Open(ctx, src)
	if err != nil {
		b.Fatal(err)
	}
	status := `{"version":"1.4.2","platform":"linux/amd64","hostname":"host-0000.example.com","labels":{"site":"eu-1","role":"edge"}}`
	err = db.Update(ctx, func(tx *Tx) error {
		for i := range 10_000 {
			if _, err := tx.Exec(`INSERT INTO agents (id, cred_hash, fingerprint, enrolled, last_seen, status) VALUES (?, ?, ?, 1, 2, ?)`,
				fmt.Sprintf("agent-%05d", i), fmt.Sprintf("cred-%05d", i), fmt.Sprintf("fp-%05d", i), status); err != nil {
				return err
			}
		}
		for i := range 20_000 {
			if _, err := tx.Exec(`INSERT INTO deployments (run_id, agent_id, platform, kind, from_version, target, state, created, updated) VALUES (?, ?, 'linux/amd64', 'upgrade', '1.4.1', '1.4.2', 'succeeded', 1, 2)`,
				i/5000+1, fmt.Sprintf("agent-%05d", i%10_000)); err != nil {
				return err
			}
			for j, s := range []string{"download", "verify", "activate"} {
				if _, err := tx.Exec(`INSERT INTO steps (deployment_id, at, name, detail) VALUES (?, ?, ?, 'ok')`, i+1, j, s); err != nil {
					return err
				}
			}
		}
		for i := range 200_000 {
			if err := tx.InsertEvent(Event{ID: 264, Name: "upgrade_succeeded", AgentID: fmt.Sprintf("agent-%05d", i%10_000), RunID: int64(i/50_000 + 1), DeploymentID: int64(i%20_000 + 1),
				Message: "agent-00042 upgraded from 1.4.1 to 1.4.2", Fields: map[string]string{"from": "1.4.1", "to": "1.4.2"}}); err != nil {
				return err
			}
		}
		return nil
	})
	db.Close()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var rows int64
	var secs float64
	for range b.N {
		dsn := pgtest.SharedDB(b)
		info, err := CopyToPostgres(ctx, src, dsn, dir, func(c CopiedTable) { b.Logf("%s: %d rows, %.2fs", c.Name, c.Rows, c.Seconds) })
		if err != nil {
			b.Fatal(err)
		}
		rows += info.Rows
		secs += info.Seconds
	}
	b.ReportMetric(float64(rows)/secs, "rows/s")
	b.ReportMetric(secs/float64(b.N), "s/copy")
}
