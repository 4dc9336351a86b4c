//go:build unix

package pgtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A cluster starts, takes a database and rows, keeps them across a
// restart and a kill -9 of its postmaster, and leaves nothing behind.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster (skipped with -short)")
	}
	var dir string
	t.Run("cluster", func(t *testing.T) {
		c := Start(t)
		dir = c.dir
		dsn := c.CreateDB(t, "molt")
		exec := func(sql string, args ...any) {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatalf("connect %s: %v", dsn, err)
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, sql, args...); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
		count := func() int {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer conn.Close(ctx)
			var n int
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM agents`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		exec(`CREATE TABLE agents (id TEXT PRIMARY KEY)`)
		exec(`INSERT INTO agents VALUES ($1)`, "a-1")

		c.Stop()
		if _, err := pgx.Connect(context.Background(), dsn); err == nil {
			t.Fatal("a stopped cluster accepted a connection")
		}
		c.Start()
		exec(`INSERT INTO agents VALUES ($1)`, "a-2")
		if n := count(); n != 2 {
			t.Fatalf("%d rows after a restart, want 2", n)
		}

		c.Kill9()
		c.Start()
		if n := count(); n != 2 {
			t.Fatalf("%d rows after kill -9 and a start, want 2", n)
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the cluster's directory %s is still there (%v)", dir, err)
	}
}
