// Package store keeps the control server's state in a SQL database: the
// embedded SQLite file that a single molt serve uses by default, or a
// PostgreSQL database that several replicas share. Every SQL statement
// of the server lives in this package; the server sees methods over
// values. One conformance suite runs against both engines
// (conformance_test.go).
//
// Writes go through one connection per process, in transactions the
// server groups (Tx, with savepoints for each change); reads through a
// small pool beside it. Both engines commit durably before a commit
// returns, so what the server acknowledged survives kill -9.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Engine is the kind of database behind a DB.
type Engine string

const (
	SQLite   Engine = "sqlite"
	Postgres Engine = "postgres"
)

// DB is the server's database.
type DB struct {
	engine Engine
	w      *sql.DB // the writer: one connection
	r      *sql.DB // readers
	l      *sql.DB // leases (PostgreSQL: a connection of their own, so that renewals never wait behind the writer's transactions)

	// fence, when set, is the lease every write transaction checks first
	// (CheckLease): a replica's writes commit only while it leads.
	fence atomic.Pointer[Lease]

	// commits counts write transactions committed (each an fsync: tests
	// check the scheduler batches its writes); changes counts the
	// server's changes they held.
	commits atomic.Int64
	changes atomic.Int64

	// stmts are the writer's statements, each prepared once: parsing SQL
	// was a tenth of the server's work in a run over 10,000 agents.
	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt
	noted  map[string]bool

	rebound sync.Map // query as written -> query for this engine
}

// IsPostgres says whether target names a PostgreSQL database (a
// postgres:// or postgresql:// URL) rather than a SQLite file.
func IsPostgres(target string) bool {
	return strings.HasPrefix(target, "postgres://") || strings.HasPrefix(target, "postgresql://")
}

// Open opens the database target (a SQLite file's path, created when
// missing, or a postgres:// URL) and applies pending migrations.
func Open(ctx context.Context, target string) (*DB, error) {
	if IsPostgres(target) {
		return openPostgres(ctx, target)
	}
	return openSQLite(ctx, target)
}

// Engine is the database's engine.
func (db *DB) Engine() Engine { return db.engine }

// Commits is how many write transactions were committed.
func (db *DB) Commits() int64 { return db.commits.Load() }

// Changes is how many changes the committed transactions held, as the
// server counted them with AddChanges.
func (db *DB) Changes() int64 { return db.changes.Load() }

// AddChanges counts n changes committed together.
func (db *DB) AddChanges(n int) { db.changes.Add(int64(n)) }

// Close closes both pools.
func (db *DB) Close() error {
	db.stmtMu.Lock()
	var errs []error
	for _, st := range db.stmts {
		errs = append(errs, st.Close())
	}
	db.stmts = nil
	db.stmtMu.Unlock()
	errs = append(errs, db.r.Close(), db.w.Close())
	if db.l != db.w {
		errs = append(errs, db.l.Close())
	}
	return errors.Join(errs...)
}

// Fence makes every later write transaction check that l is still held
// (CheckLease) before anything else, so that none commits once another
// replica took the lease.
func (db *DB) Fence(l Lease) { db.fence.Store(&l) }

// fenced runs the fence's check in t, if there is a fence.
func (t *Tx) fenced() error {
	if l := t.db.fence.Load(); l != nil {
		return t.CheckLease(*l)
	}
	return nil
}

// q is query for this engine: PostgreSQL numbers its placeholders.
func (db *DB) q(query string) string {
	if db.engine != Postgres {
		return query
	}
	if r, ok := db.rebound.Load(query); ok {
		return r.(string)
	}
	r := rebind(query)
	db.rebound.Store(query, r)
	return r
}

// rebind turns each ? outside quotes into $1, $2, ...
func rebind(query string) string {
	var b strings.Builder
	n := 0
	quote := byte(0)
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// args converts arguments to what both engines store alike: booleans as
// 0 or 1 (the columns are integers), text as valid UTF-8 without NUL
// (PostgreSQL refuses either; an agent may send both).
func (db *DB) args(args []any) []any {
	for i, a := range args {
		switch v := a.(type) {
		case bool:
			if v {
				args[i] = int64(1)
			} else {
				args[i] = int64(0)
			}
		case string:
			args[i] = cleanText(v)
		}
	}
	return args
}

func cleanText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// prepared is q prepared on the writer (sql.Tx.Stmt reuses what the
// connection prepared), or nil the first time q is asked for: it cannot
// be prepared while a transaction holds the writer's one connection, so
// it is noted and prepared before the next transaction (prepareNoted).
// PostgreSQL's driver keeps its own cache of prepared statements.
func (db *DB) prepared(q string) *sql.Stmt {
	if db.engine == Postgres {
		return nil
	}
	db.stmtMu.Lock()
	defer db.stmtMu.Unlock()
	if st := db.stmts[q]; st != nil {
		return st
	}
	if db.noted == nil {
		db.noted = map[string]bool{}
	}
	db.noted[q] = true
	return nil
}

// prepareNoted prepares the statements prepared did not have. A
// statement that cannot be prepared is not tried again: it runs
// unprepared, and its error is returned there, where it is used and its
// caller knows what it was for.
//
// Preparing waits for the writer's one connection, so stmtMu is not held
// meanwhile: a transaction holding the connection (Update) calls prepared,
// which takes stmtMu, and the two would wait for each other for ever.
func (db *DB) prepareNoted(ctx context.Context) {
	db.stmtMu.Lock()
	qs := make([]string, 0, len(db.noted))
	for q := range db.noted {
		qs = append(qs, q)
	}
	clear(db.noted)
	db.stmtMu.Unlock()
	for _, q := range qs {
		st, err := db.w.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		db.stmtMu.Lock()
		if db.stmts == nil {
			db.stmts = map[string]*sql.Stmt{}
		}
		if db.stmts[q] == nil {
			db.stmts[q] = st
			st = nil
		}
		db.stmtMu.Unlock()
		if st != nil {
			st.Close() // prepared meanwhile by another Begin
		}
	}
}

// Tx is a write transaction. The server extends one transaction with
// many changes, each inside a savepoint, and commits them together.
type Tx struct {
	db  *DB
	tx  *sql.Tx
	ctx context.Context
}

// Begin opens a write transaction. Statements run in it are not bound to
// a request's context: a batch outlives the request that opened it, and
// a statement interrupted by a cancelled context would roll back every
// change in it.
func (db *DB) Begin() (*Tx, error) {
	ctx := context.Background()
	db.prepareNoted(ctx)
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	t := &Tx{db: db, tx: tx, ctx: ctx}
	if err := t.fenced(); err != nil {
		_ = tx.Rollback()
		return nil, err
	}
	return t, nil
}

// Commit commits t durably.
func (t *Tx) Commit() error {
	if err := t.tx.Commit(); err != nil {
		return err
	}
	t.db.commits.Add(1)
	return nil
}

// Rollback abandons t.
func (t *Tx) Rollback() error { return t.tx.Rollback() }

// Savepoint marks where RollbackToSavepoint returns to.
func (t *Tx) Savepoint() error {
	_, err := t.exec(`SAVEPOINT change`)
	return err
}

// RollbackToSavepoint takes back what was written since Savepoint and
// releases it.
func (t *Tx) RollbackToSavepoint() error {
	if _, err := t.exec(`ROLLBACK TO SAVEPOINT change`); err != nil {
		return err
	}
	return t.ReleaseSavepoint()
}

// ReleaseSavepoint keeps what was written since Savepoint.
func (t *Tx) ReleaseSavepoint() error {
	_, err := t.exec(`RELEASE SAVEPOINT change`)
	return err
}

func (t *Tx) exec(q string, args ...any) (sql.Result, error) {
	args = t.db.args(args)
	if st := t.db.prepared(q); st != nil {
		return t.tx.StmtContext(t.ctx, st).ExecContext(t.ctx, args...)
	}
	return t.tx.ExecContext(t.ctx, t.db.q(q), args...)
}

func (t *Tx) queryRow(q string, args ...any) *sql.Row {
	args = t.db.args(args)
	if st := t.db.prepared(q); st != nil {
		return t.tx.StmtContext(t.ctx, st).QueryRowContext(t.ctx, args...)
	}
	return t.tx.QueryRowContext(t.ctx, t.db.q(q), args...)
}

func (t *Tx) query(q string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(t.ctx, t.db.q(q), t.db.args(args)...)
}

// affected is how many rows res changed.
func affected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Update runs fn in a transaction of its own and commits it when fn
// returns nil: for writes that are not the server's state changes
// (last-seen times, pruning).
func (db *DB) Update(ctx context.Context, fn func(*Tx) error) error {
	return db.update(ctx, db.w, true, fn)
}

func (db *DB) update(ctx context.Context, pool *sql.DB, fence bool, fn func(*Tx) error) error {
	tx, err := pool.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	t := &Tx{db: db, tx: tx, ctx: ctx}
	if fence {
		if err := t.fenced(); err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	if err := fn(t); err != nil {
		_ = tx.Rollback()
		return err
	}
	return t.Commit()
}

// query and queryRow read through the readers' pool; wquery and wqueryRow
// through the writer's connection, after any transaction it holds.
func (db *DB) wquery(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return db.w.QueryContext(ctx, db.q(q), db.args(args)...)
}

func (db *DB) wqueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return db.w.QueryRowContext(ctx, db.q(q), db.args(args)...)
}

func (db *DB) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return db.r.QueryContext(ctx, db.q(q), db.args(args)...)
}

func (db *DB) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return db.r.QueryRowContext(ctx, db.q(q), db.args(args)...)
}

// Nanos and FromNanos store times as Unix nanoseconds; 0 is the zero
// time.
func Nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// FromNanos is the time Nanos stored.
func FromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func (db *DB) migrate(ctx context.Context, lock string) error {
	create := `CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)`
	if db.engine == Postgres {
		create = postgresDDL(create)
	}
	if _, err := db.w.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for {
		done, err := db.migrateOne(ctx, lock)
		if err != nil || done {
			return err
		}
	}
}

// migrateOne applies the next pending migration, if any, in a transaction
// that first takes lock (PostgreSQL: replicas starting together migrate
// one at a time), and says whether none was pending.
func (db *DB) migrateOne(ctx context.Context, lock string) (bool, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if lock != "" {
		if _, err := tx.ExecContext(ctx, lock); err != nil {
			return false, fmt.Errorf("migrate: %w", err)
		}
	}
	var have int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM migrations`).Scan(&have); err != nil {
		return false, fmt.Errorf("migrate: %w", err)
	}
	if have > len(migrations) {
		return false, fmt.Errorf("%w: the database has schema version %d, this server knows up to %d: run a newer molt", ErrSchemaNewer, have, len(migrations))
	}
	if have == len(migrations) {
		return true, nil
	}
	v := have + 1
	m := migrations[v-1]
	if db.engine == Postgres {
		m = postgresDDL(m)
	}
	if _, err := tx.ExecContext(ctx, m); err != nil {
		return false, fmt.Errorf("migrate to schema version %d: %w", v, err)
	}
	if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO migrations (version, applied) VALUES (?, ?)`), v, time.Now().UnixNano()); err != nil {
		return false, fmt.Errorf("migrate to schema version %d: %w", v, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate to schema version %d: %w", v, err)
	}
	return false, nil
}

// ErrSchemaNewer is returned by Open when the database was migrated by a
// newer molt than this one.
var ErrSchemaNewer = errors.New("database schema newer than this server")

// SchemaVersion is the database's schema version and the newest this
// build knows.
func (db *DB) SchemaVersion(ctx context.Context) (have, known int, err error) {
	err = db.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM migrations`).Scan(&have)
	return have, len(migrations), err
}
