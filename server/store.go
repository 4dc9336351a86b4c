package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Store is the server's SQLite database. Writes go through one connection
// (SQLite has one writer; a pool would only trade lock waits for busy
// errors), reads through a small pool that WAL lets run beside the writer.
// synchronous=FULL makes every commit durable before it returns, so what the
// server acknowledged survives kill -9 and power loss.
type Store struct {
	w *sql.DB
	r *sql.DB
	// commits counts write transactions committed: each is an fsync
	// (tests check the scheduler batches its writes); changes counts the
	// changes they held (several, when committed as a group).
	commits atomic.Int64
	changes atomic.Int64
	// stmts are the writer's statements, each prepared once: parsing SQL
	// was a tenth of the server's work in a run over 10,000 agents.
	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt
	noted  map[string]bool
}

// migrations are applied in order; each runs once, recorded in the
// migrations table. Never edit one that has shipped: append another.
var migrations = []string{
	`CREATE TABLE tokens (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		name TEXT NOT NULL DEFAULT '',
		role TEXT NOT NULL,
		hash TEXT NOT NULL UNIQUE,
		created INTEGER NOT NULL,
		last_used INTEGER NOT NULL DEFAULT 0,
		revoked INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE enroll_tokens (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		name TEXT NOT NULL DEFAULT '',
		hash TEXT NOT NULL UNIQUE,
		created INTEGER NOT NULL,
		expires INTEGER NOT NULL,
		uses INTEGER NOT NULL,
		used INTEGER NOT NULL DEFAULT 0,
		revoked INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE agents (
		id TEXT PRIMARY KEY,
		cred_hash TEXT NOT NULL UNIQUE,
		fingerprint TEXT NOT NULL,
		enrolled INTEGER NOT NULL,
		last_seen INTEGER NOT NULL DEFAULT 0,
		revoked INTEGER NOT NULL DEFAULT 0,
		desired TEXT NOT NULL DEFAULT '',
		status TEXT NOT NULL
	);
	CREATE TABLE releases (
		version TEXT PRIMARY KEY,
		released INTEGER NOT NULL,
		floor TEXT NOT NULL DEFAULT '',
		platforms TEXT NOT NULL,
		imported INTEGER NOT NULL,
		size INTEGER NOT NULL
	);
	CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
	CREATE TABLE runs (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		text TEXT NOT NULL DEFAULT '',
		status TEXT NOT NULL,
		target TEXT NOT NULL,
		target_for TEXT NOT NULL DEFAULT '{}',
		scope TEXT NOT NULL,
		max_concurrent INTEGER NOT NULL,
		failure_threshold INTEGER NOT NULL,
		selection TEXT NOT NULL,
		created_by TEXT NOT NULL DEFAULT '',
		created INTEGER NOT NULL,
		ended INTEGER NOT NULL DEFAULT 0,
		reason TEXT NOT NULL DEFAULT '',
		ack_failures INTEGER NOT NULL DEFAULT 0,
		plan TEXT NOT NULL DEFAULT '[]',
		excluded TEXT NOT NULL DEFAULT '[]'
	);
	CREATE TABLE deployments (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		run_id INTEGER NOT NULL DEFAULT 0,
		agent_id TEXT NOT NULL,
		agent_name TEXT NOT NULL DEFAULT '',
		platform TEXT NOT NULL,
		kind TEXT NOT NULL,
		from_version TEXT NOT NULL DEFAULT '',
		target TEXT NOT NULL,
		revert INTEGER NOT NULL DEFAULT 0,
		state TEXT NOT NULL,
		reason TEXT NOT NULL DEFAULT '',
		done INTEGER NOT NULL DEFAULT 0,
		total INTEGER NOT NULL DEFAULT 0,
		created INTEGER NOT NULL,
		started INTEGER NOT NULL DEFAULT 0,
		ended INTEGER NOT NULL DEFAULT 0,
		updated INTEGER NOT NULL
	);
	CREATE INDEX deployments_agent ON deployments(agent_id, id);
	CREATE INDEX deployments_run ON deployments(run_id, id);
	CREATE INDEX deployments_state ON deployments(state);
	CREATE TABLE steps (
		seq INTEGER PRIMARY KEY AUTOINCREMENT,
		deployment_id INTEGER NOT NULL,
		at INTEGER NOT NULL,
		name TEXT NOT NULL,
		detail TEXT NOT NULL DEFAULT '',
		UNIQUE(deployment_id, at, name)
	);
	CREATE TABLE cleanups (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		agent_id TEXT NOT NULL,
		deployment_id INTEGER NOT NULL,
		keep TEXT NOT NULL,
		created INTEGER NOT NULL,
		done INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX cleanups_open ON cleanups(done, agent_id);
	CREATE TABLE events (
		seq INTEGER PRIMARY KEY AUTOINCREMENT,
		id INTEGER NOT NULL,
		name TEXT NOT NULL,
		at INTEGER NOT NULL,
		agent_id TEXT NOT NULL DEFAULT '',
		run_id INTEGER NOT NULL DEFAULT 0,
		deployment_id INTEGER NOT NULL DEFAULT 0,
		message TEXT NOT NULL,
		fields TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX events_at ON events(at);`,
	// Workloads (docs/workloads.md): the workload whose failure rolled a
	// deployment back, and the alerts raised about an agent's workloads
	// (name -> crash_looping | unhealthy), so that their events are
	// recorded on transitions only, across restarts. The workloads
	// themselves are part of the agent's status (agents.status).
	`ALTER TABLE deployments ADD COLUMN workload TEXT NOT NULL DEFAULT '';
	ALTER TABLE agents ADD COLUMN workload_alerts TEXT NOT NULL DEFAULT '{}';`,
	// A revoked agent's host (its machine fingerprint) may not enroll
	// again until an operator allows it (docs/server.md): host_refused
	// marks the revoked agents whose fingerprint enrollment refuses, and
	// refused_at is when a refusal was last recorded as an event. Agents
	// revoked before are refused too, unless their host enrolled again
	// since.
	`ALTER TABLE agents ADD COLUMN host_refused INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE agents ADD COLUMN refused_at INTEGER NOT NULL DEFAULT 0;
	CREATE INDEX agents_fingerprint ON agents(fingerprint);
	UPDATE agents SET host_refused = 1 WHERE revoked = 1 AND fingerprint != ''
		AND NOT EXISTS (SELECT 1 FROM agents b WHERE b.fingerprint = agents.fingerprint AND b.revoked = 0);`,
	// Quarantines of releases per platform (docs/server.md): lifted is when
	// an operator lifted one (0 while in force); rollbacks count towards
	// releases.quarantine-after again from then. The row outlives a
	// release's removal, so a re-import of the same version stays
	// quarantined.
	`CREATE TABLE quarantines (
		version TEXT NOT NULL,
		platform TEXT NOT NULL,
		reason TEXT NOT NULL,
		automatic INTEGER NOT NULL DEFAULT 0,
		at INTEGER NOT NULL,
		lifted INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (version, platform)
	);`,
	// Rollout control: a run's controls (protocol.RunControls as JSON),
	// its waves (names and sizes), the wave open now, when the open wave
	// was seen done, and whether it waits for promotion; each deployment's
	// wave and whether it is a canary.
	`ALTER TABLE runs ADD COLUMN controls TEXT NOT NULL DEFAULT '{}';
	ALTER TABLE runs ADD COLUMN waves TEXT NOT NULL DEFAULT '[]';
	ALTER TABLE runs ADD COLUMN wave INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE runs ADD COLUMN wave_done_at INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE runs ADD COLUMN wave_approval INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE deployments ADD COLUMN wave INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE deployments ADD COLUMN canary INTEGER NOT NULL DEFAULT 0;`,
	// Health-driven halt: a deployment's baseline, its agent's workloads
	// before the upgrade (rollout.HealthSample as JSON; '' when none was
	// taken, or once the agent is no longer watched).
	`ALTER TABLE deployments ADD COLUMN baseline TEXT NOT NULL DEFAULT '';`,
	// Console sessions (session.go): a browser's session made from an API
	// token, and one-time sign-in codes. Only SHA-256 hashes of their
	// secrets are kept. csrf is kept as it is: GET /v1/session hands it
	// back, and it is worth nothing without the session's cookie.
	`CREATE TABLE sessions (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		hash TEXT NOT NULL UNIQUE,
		token_id INTEGER NOT NULL,
		csrf TEXT NOT NULL,
		created INTEGER NOT NULL,
		expires INTEGER NOT NULL
	);
	CREATE INDEX sessions_expires ON sessions(expires);
	CREATE INDEX sessions_token ON sessions(token_id);
	CREATE TABLE signin_codes (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		hash TEXT NOT NULL UNIQUE,
		token_id INTEGER NOT NULL,
		created INTEGER NOT NULL,
		expires INTEGER NOT NULL
	);
	CREATE INDEX signin_codes_expires ON signin_codes(expires);`,
	// The history's filters by time and kind (GET /v1/deployments since,
	// until, kind): without these, a page of repairs or of the last day
	// reads every deployment ever made. Neither column changes after the
	// insert, so updates do not touch them.
	`CREATE INDEX deployments_created ON deployments(created);
	CREATE INDEX deployments_kind ON deployments(kind, id);`,
	// The event log's selections (GET /v1/events?agent=&run=&id=, the
	// console's Events page): the newest events of one agent, run or event
	// id are read through these, not by walking the log back through
	// millions of others. An entry carries the rowid (seq), so each index
	// is in seq order within its value.
	`CREATE INDEX events_agent ON events(agent_id);
	CREATE INDEX events_run ON events(run_id);
	CREATE INDEX events_id ON events(id);`,
}

// OpenStore opens (creating if needed) the database at path and applies
// pending migrations.
func OpenStore(ctx context.Context, path string) (*Store, error) {
	if !sqliteAvailable {
		return nil, errors.New("molt serve does not run on this platform: the embedded SQLite driver (modernc.org/sqlite) does not support it; run the server on linux, windows, darwin, freebsd or openbsd (agents on this platform are fully supported)")
	}
	dsn := func(extra string) string {
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Add("_pragma", "foreign_keys(1)")
		return "file:" + path + "?" + q.Encode() + extra
	}
	w, err := sql.Open("sqlite", dsn("&_txlock=immediate"))
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	s := &Store{w: w}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn("&mode=ro"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	r.SetMaxOpenConns(4)
	s.r = r
	return s, nil
}

// Close closes both pools.
func (s *Store) Close() error {
	s.stmtMu.Lock()
	var errs []error
	for _, st := range s.stmts {
		errs = append(errs, st.Close())
	}
	s.stmts = nil
	s.stmtMu.Unlock()
	return errors.Join(append(errs, s.r.Close(), s.w.Close())...)
}

// prepared is q prepared on the writer (sql.Tx.Stmt reuses what the
// connection prepared), or nil the first time q is asked for: it cannot
// be prepared while a transaction holds the writer's one connection, so
// it is noted and prepared before the next batch (prepareNoted).
func (s *Store) prepared(q string) *sql.Stmt {
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	if st := s.stmts[q]; st != nil {
		return st
	}
	if s.noted == nil {
		s.noted = map[string]bool{}
	}
	s.noted[q] = true
	return nil
}

// prepareNoted prepares the statements prepared did not have. Call it
// outside a write transaction. A statement that cannot be prepared is not
// tried again (it is run unprepared, and fails there, where it is used).
func (s *Store) prepareNoted(ctx context.Context) error {
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	var errs []error
	for q := range s.noted {
		delete(s.noted, q)
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if s.stmts == nil {
			s.stmts = map[string]*sql.Stmt{}
		}
		s.stmts[q] = st
	}
	return errors.Join(errs...)
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var have int
	if err := s.w.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM migrations`).Scan(&have); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("migrate: the database has schema version %d, newer than this server knows (%d): run a newer molt", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		err := s.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.Exec(migrations[v-1]); err != nil {
				return err
			}
			_, err := tx.Exec(`INSERT INTO migrations (version, applied) VALUES (?, ?)`, v, time.Now().UnixNano())
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate to schema version %d: %w", v, err)
		}
	}
	return nil
}

// tx runs fn in a write transaction and commits it (durably) when fn
// returns nil.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.commits.Add(1)
	return nil
}

// nanos and fromNanos store times as Unix nanoseconds; 0 is the zero time.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called on types that always marshal
	}
	return string(b)
}
