package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrTargetNotEmpty is returned by CopyToPostgres when the target
// database already holds molt data: copying into it would mix two
// installations' ids.
var ErrTargetNotEmpty = errors.New("the target database already holds molt data")

// CopiedTable is what CopyToPostgres copied of one table.
type CopiedTable struct {
	Name string `json:"name"`
	Rows int64  `json:"rows"`
	// NextID is the id the target gives the table's next row (0: the
	// table has no id of its own).
	NextID  int64   `json:"next_id,omitempty"`
	Seconds float64 `json:"seconds"`
}

// CopyInfo describes what CopyToPostgres did.
type CopyInfo struct {
	// Snapshot is when the source's snapshot was taken.
	Snapshot      time.Time     `json:"snapshot"`
	SchemaVersion int           `json:"schema_version"`
	Tables        []CopiedTable `json:"tables"`
	Rows          int64         `json:"rows"`
	Seconds       float64       `json:"seconds"`
	// Releases are the versions the source's releases table names: their
	// packs' files are what an artifact store must hold.
	Releases []string `json:"releases"`
}

// notCopied are the tables that must not travel. migrations: the target
// records its own schema, migrated by this molt to the same version as
// the snapshot. leases: a lease names a replica of the source's and a
// fencing token of its database; no process of the source ever runs on
// the target, and the target's first replica takes a fresh lease.
var notCopied = map[string]string{
	"migrations": "the target records its own schema version",
	"leases":     "leases belong to the source's processes",
}

// CopyToPostgres copies the whole state of the SQLite database at src
// into the empty PostgreSQL database dsn. src is never written: a
// consistent snapshot of it (Backup, safe while a server runs) is taken
// in tmpDir (removed afterwards; best on src's file system, which has
// room for a copy), and only the snapshot is migrated to this molt's
// schema. The target is migrated, refused with ErrTargetNotEmpty when
// any of molt's tables holds a row, and filled in one transaction: every
// table but notCopied, columns by name, values converted as the store
// writes them on PostgreSQL; then each identity sequence is moved past
// the highest id the source ever gave (SQLite's AUTOINCREMENT never
// reuses one, even deleted), and each table's row count checked. Either
// all of it is committed or nothing. progress, when not nil, is called
// after each table.
func CopyToPostgres(ctx context.Context, src, dsn, tmpDir string, progress func(CopiedTable)) (CopyInfo, error) {
	start := time.Now()
	if !IsPostgres(dsn) {
		return CopyInfo{}, fmt.Errorf("target %q: want a postgres:// URL", dsn)
	}
	tmp, err := os.MkdirTemp(tmpDir, ".migrate-")
	if err != nil {
		return CopyInfo{}, fmt.Errorf("snapshot: %w", err)
	}
	defer os.RemoveAll(tmp)
	snap := filepath.Join(tmp, "molt.db")
	b, err := Backup(ctx, src, snap)
	if err != nil {
		return CopyInfo{}, fmt.Errorf("snapshot of %s: %w", src, err)
	}
	info := CopyInfo{Snapshot: b.Taken}
	// The snapshot, not src, is brought to this molt's schema, so that
	// both sides have the same tables and columns.
	sdb, err := Open(ctx, snap)
	if err != nil {
		return info, fmt.Errorf("snapshot of %s: %w", src, err)
	}
	if info.SchemaVersion, _, err = sdb.SchemaVersion(ctx); err != nil {
		sdb.Close()
		return info, fmt.Errorf("snapshot of %s: %w", src, err)
	}
	sdb.Close()
	source, err := sql.Open("sqlite", readOnlyDSN(snap))
	if err != nil {
		return info, fmt.Errorf("snapshot of %s: %w", src, err)
	}
	defer source.Close()

	tdb, err := Open(ctx, dsn)
	if err != nil {
		return info, fmt.Errorf("target: %w", err)
	}
	tdb.Close()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return info, fmt.Errorf("target %s: %w", redact(dsn), err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		return info, fmt.Errorf("target %s: %w", redact(dsn), err)
	}
	defer tx.Rollback(context.Background())
	// A molt serve starting on the target meanwhile waits here, at its
	// migration, and then finds the copy.
	if _, err := tx.Exec(ctx, migrationLock); err != nil {
		return info, fmt.Errorf("target: %w", err)
	}

	tables, err := sourceTables(ctx, source)
	if err != nil {
		return info, fmt.Errorf("snapshot: %w", err)
	}
	if err := checkEmpty(ctx, tx, tables); err != nil {
		return info, err
	}
	seqs, err := sqliteSequences(ctx, source)
	if err != nil {
		return info, fmt.Errorf("snapshot: %w", err)
	}
	for _, table := range tables {
		if _, skip := notCopied[table]; skip {
			continue
		}
		t0 := time.Now()
		c, err := copyTable(ctx, source, tx, table, seqs[table])
		if err != nil {
			return info, fmt.Errorf("copy %s: %w", table, err)
		}
		c.Seconds = time.Since(t0).Seconds()
		info.Tables = append(info.Tables, c)
		info.Rows += c.Rows
		if progress != nil {
			progress(c)
		}
	}
	if err := readReleases(ctx, source, &info); err != nil {
		return info, fmt.Errorf("snapshot: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return info, fmt.Errorf("target: commit: %w", err)
	}
	info.Seconds = time.Since(start).Seconds()
	return info, nil
}

// sourceTables are the snapshot's tables, sorted.
func sourceTables(ctx context.Context, src *sql.DB) ([]string, error) {
	names, err := queryNames(ctx, src, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`)
	sort.Strings(names)
	return names, err
}

// queryNames is the one text column of q's rows.
func queryNames(ctx context.Context, db *sql.DB, q string, args ...any) ([]string, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// checkEmpty refuses a target where one of molt's tables but migrations
// holds a row, naming what it found: a database a molt serve already
// ran on has at least its admin token.
func checkEmpty(ctx context.Context, tx pgx.Tx, tables []string) error {
	var found []string
	for _, t := range tables {
		if t == "migrations" {
			continue
		}
		var n int64
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM `+quoteIdent(t)).Scan(&n); err != nil {
			return fmt.Errorf("target: %w", err)
		}
		if n > 0 {
			found = append(found, fmt.Sprintf("%d rows in %s", n, t))
		}
	}
	if len(found) > 0 {
		return fmt.Errorf("%w (%s): give a new, empty database", ErrTargetNotEmpty, strings.Join(found, ", "))
	}
	return nil
}

// sqliteSequences are the highest ids AUTOINCREMENT gave, by table.
func sqliteSequences(ctx context.Context, src *sql.DB) (map[string]int64, error) {
	seqs := map[string]int64{}
	var exists int
	if err := src.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_sequence'`).Scan(&exists); err != nil || exists == 0 {
		return seqs, err
	}
	rows, err := src.QueryContext(ctx, `SELECT name, seq FROM sqlite_sequence`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		var s int64
		if err := rows.Scan(&n, &s); err != nil {
			return nil, err
		}
		seqs[n] = s
	}
	return seqs, rows.Err()
}

// column is a target column: its name, whether it holds text (else a
// 64-bit integer) and whether it is an identity column.
type column struct {
	name     string
	text     bool
	identity bool
}

// copyTable copies table from src into tx with COPY, streaming, and
// moves its identity sequence past max(highest id, seq).
func copyTable(ctx context.Context, src *sql.DB, tx pgx.Tx, table string, seq int64) (CopiedTable, error) {
	c := CopiedTable{Name: table}
	cols, err := targetColumns(ctx, tx, table)
	if err != nil {
		return c, err
	}
	have, err := sourceColumns(ctx, src, table)
	if err != nil {
		return c, err
	}
	if err := sameColumns(have, cols); err != nil {
		return c, err
	}
	names := make([]string, len(cols))
	quoted := make([]string, len(cols))
	for i, col := range cols {
		names[i] = col.name
		quoted[i] = quoteIdent(col.name)
	}
	rows, err := src.QueryContext(ctx, `SELECT `+strings.Join(quoted, ", ")+` FROM `+quoteIdent(table))
	if err != nil {
		return c, fmt.Errorf("read: %w", err)
	}
	defer rows.Close()
	n, err := tx.CopyFrom(ctx, pgx.Identifier{table}, names, &rowSource{rows: rows, cols: cols, vals: make([]any, len(cols))})
	if err != nil {
		return c, err
	}
	c.Rows = n
	var want int64
	if err := src.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+quoteIdent(table)).Scan(&want); err != nil {
		return c, fmt.Errorf("count: %w", err)
	}
	var got int64
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM `+quoteIdent(table)).Scan(&got); err != nil {
		return c, fmt.Errorf("count: %w", err)
	}
	if got != want || n != want {
		return c, fmt.Errorf("the target holds %d rows (copied %d), the source %d", got, n, want)
	}
	for _, col := range cols {
		if !col.identity {
			continue
		}
		top := seq
		var max int64
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(`+quoteIdent(col.name)+`), 0) FROM `+quoteIdent(table)).Scan(&max); err != nil {
			return c, fmt.Errorf("sequence of %s: %w", col.name, err)
		}
		if max > top {
			top = max
		}
		c.NextID = 1
		if top > 0 {
			if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, $2), $3)`, quoteIdent(table), col.name, top); err != nil {
				return c, fmt.Errorf("sequence of %s: %w", col.name, err)
			}
			c.NextID = top + 1
		}
	}
	return c, nil
}

// targetColumns are table's columns in the target, in their order.
func targetColumns(ctx context.Context, tx pgx.Tx, table string) ([]column, error) {
	rows, err := tx.Query(ctx, `SELECT column_name, data_type, is_identity FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var name, typ, identity string
		if err := rows.Scan(&name, &typ, &identity); err != nil {
			return nil, err
		}
		switch typ {
		case "text":
		case "bigint":
		default:
			return nil, fmt.Errorf("target column %s.%s is %s: molt's columns are text or bigint", table, name, typ)
		}
		cols = append(cols, column{name: name, text: typ == "text", identity: identity == "YES"})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("the target has no table %s", table)
	}
	return cols, nil
}

// sourceColumns are the names of table's columns in the snapshot.
func sourceColumns(ctx context.Context, src *sql.DB, table string) ([]string, error) {
	return queryNames(ctx, src, `SELECT name FROM pragma_table_info(?)`, table)
}

// sameColumns checks that both sides have the same columns by name:
// both were migrated by this molt, so a difference is a database someone
// changed by hand.
func sameColumns(src []string, dst []column) error {
	in := map[string]bool{}
	for _, c := range dst {
		in[c.name] = true
	}
	for _, n := range src {
		if !in[n] {
			return fmt.Errorf("column %s is in the source but not in the target", n)
		}
		delete(in, n)
	}
	for n := range in {
		return fmt.Errorf("column %s is in the target but not in the source", n)
	}
	return nil
}

// rowSource feeds COPY from the snapshot's rows, converting each value to
// its target column's type.
type rowSource struct {
	rows *sql.Rows
	cols []column
	vals []any
	err  error
}

func (s *rowSource) Next() bool { return s.err == nil && s.rows.Next() }

func (s *rowSource) Values() ([]any, error) {
	raw := make([]any, len(s.cols))
	ptrs := make([]any, len(s.cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	if err := s.rows.Scan(ptrs...); err != nil {
		s.err = err
		return nil, err
	}
	for i, col := range s.cols {
		v, err := convert(raw[i], col.text)
		if err != nil {
			s.err = fmt.Errorf("column %s: %w", col.name, err)
			return nil, s.err
		}
		s.vals[i] = v
	}
	return s.vals, nil
}

func (s *rowSource) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.rows.Err()
}

// convert is SQLite value v as PostgreSQL stores it in a text or bigint
// column: text as DB.args writes it (valid UTF-8, no NUL); integers as
// they are. SQLite's columns are typed by affinity only, so a value of
// the other kind is converted when it is exactly representable.
func convert(v any, text bool) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []byte:
		v = string(x)
	case bool:
		if x {
			v = int64(1)
		} else {
			v = int64(0)
		}
	}
	if text {
		switch x := v.(type) {
		case string:
			return cleanText(x), nil
		case int64:
			return strconv.FormatInt(x, 10), nil
		case float64:
			return strconv.FormatFloat(x, 'g', -1, 64), nil
		}
	} else {
		switch x := v.(type) {
		case int64:
			return x, nil
		case float64:
			if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
				return int64(x), nil
			}
		case string:
			if n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
				return n, nil
			}
		}
	}
	return nil, fmt.Errorf("value %#v does not fit the column", v)
}

// readReleases lists the versions of the snapshot's releases.
func readReleases(ctx context.Context, src *sql.DB, info *CopyInfo) error {
	rows, err := src.QueryContext(ctx, `SELECT version FROM releases ORDER BY version`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return err
		}
		info.Releases = append(info.Releases, v)
	}
	return rows.Err()
}

// quoteIdent quotes a table or column name for either engine.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
