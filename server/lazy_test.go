package server

import (
	"context"
	"database/sql"
	"testing"

	"github.com/moltfleet/molt/protocol"
)

// TestProgressCommitsLazily: a report without an end (progress) is
// committed without its own fsync, and the one writer connection is set
// back to synchronous=FULL after it, so that every other change stays
// durable; the end of a deployment is committed durably.
func TestProgressCommitsLazily(t *testing.T) {
	e := newEnv(t)
	e.importPack("2.0.0", "", "linux/amd64")
	a := e.newAgent("a", "1.0.0")
	o := orderFor(t, e, a)
	synchronous := func() int {
		t.Helper()
		var v int
		if err := e.s.st.w.QueryRowContext(context.Background(), `PRAGMA synchronous`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	const full = 2 // SQLite's PRAGMA synchronous value of FULL
	if v := synchronous(); v != full {
		t.Fatalf("synchronous = %d before any report, want FULL (%d)", v, full)
	}
	for _, tc := range []struct {
		name     string
		req      protocol.ReportRequest
		state    string
		wantLazy int64
	}{
		{"progress", protocol.ReportRequest{OrderID: o.ID, Phase: protocol.StateDownloading, Done: 10, Total: 100}, protocol.StateDownloading, 1},
		{"phase", protocol.ReportRequest{OrderID: o.ID, Phase: protocol.StateStaged}, protocol.StateStaged, 1},
		{"end", protocol.ReportRequest{OrderID: o.ID, End: &protocol.End{Outcome: protocol.EndFailed, Reason: "disk full"}}, protocol.StateFailed, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c0, l0 := e.s.st.commits.Load(), e.s.st.lazy.Load()
			if got := a.report(tc.req); got.State != tc.state {
				t.Fatalf("report: state %s, want %s", got.State, tc.state)
			}
			if l := e.s.st.lazy.Load() - l0; l != tc.wantLazy {
				t.Errorf("%d lazy commits, want %d", l, tc.wantLazy)
			}
			if c := e.s.st.commits.Load() - c0; c < 1 {
				t.Errorf("no commit")
			}
			if v := synchronous(); v != full {
				t.Errorf("synchronous = %d after the report, want FULL (%d)", v, full)
			}
		})
	}
	// A lazy transaction that fails leaves the connection FULL too.
	err := e.s.st.txLazy(context.Background(), func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO no_such_table VALUES (1)`)
		return err
	})
	if err == nil {
		t.Fatal("insert into a missing table succeeded")
	}
	if v := synchronous(); v != full {
		t.Errorf("synchronous = %d after a failed lazy transaction, want FULL (%d)", v, full)
	}
}
