package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// seedAll puts rows in every table of db, some with text PostgreSQL
// refuses (NUL, invalid UTF-8) written past the store's conversion, as
// an older molt could have, and deletes the newest event so that
// SQLite's sequence is ahead of the highest id.
func seedAll(t *testing.T, db *DB) {
	t.Helper()
	for i := range 5 {
		seedAgent(t, db, fmt.Sprintf("agent-%d", i), `{"version":"1.0.0"}`)
	}
	seed(t, db, `INSERT INTO tokens (name, role, hash, created) VALUES ('admin', 'admin', 'th1', 1), ('ci', 'operator', 'th2', 2)`)
	seed(t, db, `INSERT INTO enroll_tokens (name, hash, created, expires, uses, used) VALUES ('e', 'eh', 1, 99, 5, 2)`)
	seed(t, db, `INSERT INTO releases (version, released, platforms, imported, size) VALUES ('1.1.0', 1, '["linux/amd64"]', 2, 1234)`)
	seed(t, db, `INSERT INTO settings (key, value) VALUES ('agents.poll-seconds', '2')`)
	seed(t, db, `INSERT INTO quarantines (version, platform, reason, automatic, at) VALUES ('1.2.0', 'linux/amd64', 'crash', 1, 5)`)
	seed(t, db, `INSERT INTO sessions (hash, token_id, csrf, created, expires) VALUES ('sh', 1, 'c', 1, 9)`)
	seed(t, db, `INSERT INTO signin_codes (hash, token_id, created, expires) VALUES ('ch', 1, 1, 9)`)
	seed(t, db, `INSERT INTO leases (name, holder, token, acquired, expires) VALUES ('scheduler', 'old', 7, 1, 2)`)
	run := seedRun(t, db, "ended_ok", 9)
	for i := range 5 {
		d := seedDeployment(t, db, run, fmt.Sprintf("agent-%d", i), "succeeded")
		seed(t, db, `INSERT INTO steps (deployment_id, at, name, detail) VALUES (?, 1, 'download', 'ok'), (?, 2, 'verify', 'ok')`, d, d)
		seed(t, db, `INSERT INTO cleanups (agent_id, deployment_id, keep, created) VALUES (?, ?, '["1.0.0"]', 3)`, fmt.Sprintf("agent-%d", i), d)
	}
	ctx := context.Background()
	for i := range 300 {
		if err := db.Update(ctx, func(tx *Tx) error {
			return tx.InsertEvent(Event{ID: 101, Name: "test", AgentID: fmt.Sprintf("agent-%d", i%5), RunID: run, Message: fmt.Sprintf("event %d", i), Fields: map[string]string{"i": fmt.Sprint(i)}})
		}); err != nil {
			t.Fatal(err)
		}
	}
	// Straight through the driver: the store would clean these.
	if _, err := db.w.ExecContext(ctx, `INSERT INTO events (id, name, at, message) VALUES (102, 'raw', 1, ?), (103, 'raw', 2, ?)`, "nul\x00here", "bad\xffutf8"); err != nil {
		t.Fatal(err)
	}
	seed(t, db, `DELETE FROM events WHERE seq = (SELECT MAX(seq) FROM events)`)
}

// dump is every row of every table of db but notCopied, as text, sorted:
// what a copy must carry over.
func dump(t *testing.T, db *DB) map[string][]string {
	t.Helper()
	ctx := context.Background()
	out := map[string][]string{}
	for _, table := range []string{"agents", "cleanups", "deployments", "enroll_tokens", "events", "quarantines", "releases", "runs", "sessions", "settings", "signin_codes", "steps", "tokens"} {
		rows, err := db.Reader().QueryContext(ctx, `SELECT * FROM `+table)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for i, c := range cols {
				v := vals[i]
				if s, ok := v.(string); ok {
					v = cleanText(s) // what the copy must have made of it
				}
				fmt.Fprintf(&b, "%s=%v ", c, v)
			}
			out[table] = append(out[table], b.String())
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		sort.Strings(out[table])
	}
	return out
}

func TestCopyToPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("PostgreSQL: skipped with -short")
	}
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "molt.db")
	sdb, err := Open(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	seedAll(t, sdb)
	want := dump(t, sdb)
	var lastSeq int64
	if err := sdb.Reader().QueryRow(`SELECT seq FROM sqlite_sequence WHERE name = 'events'`).Scan(&lastSeq); err != nil {
		t.Fatal(err)
	}
	dsn := postgresDSN(t)

	var seen []string
	info, err := CopyToPostgres(ctx, src, dsn, dir, func(c CopiedTable) { seen = append(seen, c.Name) })
	if err != nil {
		t.Fatal(err)
	}
	if info.SchemaVersion != len(migrations) || info.Rows == 0 || len(seen) != len(info.Tables) {
		t.Errorf("info %+v, progress %v", info, seen)
	}
	if d := cmp.Diff([]string{"1.1.0"}, info.Releases); d != "" {
		t.Errorf("releases (-want +got):\n%s", d)
	}
	for _, c := range info.Tables {
		if _, skip := notCopied[c.Name]; skip {
			t.Errorf("copied %s", c.Name)
		}
		if c.Rows != int64(len(want[c.Name])) {
			t.Errorf("%s: %d rows copied, want %d", c.Name, c.Rows, len(want[c.Name]))
		}
	}
	tdb := openDSN(t, dsn)
	if d := cmp.Diff(want, dump(t, tdb)); d != "" {
		t.Errorf("target differs from the source (-source +target):\n%s", d)
	}
	var leases int
	if err := tdb.Reader().QueryRow(`SELECT COUNT(*) FROM leases`).Scan(&leases); err != nil || leases != 0 {
		t.Errorf("target leases: %d %v, want none", leases, err)
	}

	// Ids continue past the highest the source ever gave, deleted ones
	// included.
	var seq int64
	if err := tdb.Update(ctx, func(tx *Tx) error {
		if err := tx.InsertEvent(Event{ID: 101, Name: "test", Message: "after"}); err != nil {
			return err
		}
		return tx.QueryRow(`SELECT MAX(seq) FROM events`).Scan(&seq)
	}); err != nil {
		t.Fatal(err)
	}
	if seq != lastSeq+1 {
		t.Errorf("new event seq %d, want %d", seq, lastSeq+1)
	}
	if id := seedRun(t, tdb, "running", 0); id != 2 {
		t.Errorf("new run id %d, want 2", id)
	}
	if id := seedDeployment(t, tdb, 0, "agent-0", "pending"); id != 6 {
		t.Errorf("new deployment id %d, want 6", id)
	}

	// A second copy into the same database is refused, naming what is
	// there, and changes nothing.
	before := dump(t, tdb)
	_, err = CopyToPostgres(ctx, src, dsn, dir, nil)
	if !errors.Is(err, ErrTargetNotEmpty) || !strings.Contains(err.Error(), "5 rows in agents") {
		t.Errorf("second copy: %v, want ErrTargetNotEmpty naming 5 rows in agents", err)
	}
	if d := cmp.Diff(before, dump(t, tdb)); d != "" {
		t.Errorf("a refused copy changed the target:\n%s", d)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".migrate-*"))
	if len(left) > 0 {
		t.Errorf("snapshots left behind: %v", left)
	}
}

// A source at an older schema is migrated in the snapshot only: the
// user's file keeps its version (a rollback to the older molt still
// works).
func TestCopyToPostgresOlderSource(t *testing.T) {
	if testing.Short() {
		t.Skip("PostgreSQL: skipped with -short")
	}
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "molt.db")
	sdb, err := Open(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	seedAgent(t, sdb, "a", "{}")
	seed(t, sdb, `DROP TABLE leases`)
	seed(t, sdb, `DELETE FROM migrations WHERE version = ?`, len(migrations))
	sdb.Close()
	fi, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	info, err := CopyToPostgres(ctx, src, postgresDSN(t), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.SchemaVersion != len(migrations) {
		t.Errorf("copied at schema %d, want %d", info.SchemaVersion, len(migrations))
	}
	raw, err := sql.Open("sqlite", readOnlyDSN(src))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var v int
	if err := raw.QueryRow(`SELECT MAX(version) FROM migrations`).Scan(&v); err != nil || v != len(migrations)-1 {
		t.Errorf("source schema %d %v, want %d (untouched)", v, err, len(migrations)-1)
	}
	if fi2, err := os.Stat(src); err != nil || !fi2.ModTime().Equal(fi.ModTime()) {
		t.Errorf("source file changed: %v", err)
	}
}

// openDSN opens target, closed when t ends.
func openDSN(t *testing.T, target string) *DB {
	t.Helper()
	db, err := Open(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
