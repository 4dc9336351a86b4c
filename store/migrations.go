package store

import (
	"regexp"
	"strings"
)

// migrations are applied in order; each runs once, recorded in the
// migrations table. Never edit one that has shipped: append another.
//
// One list serves both engines. It is written in SQLite's words, which
// PostgreSQL shares but for types: postgresDDL gives PostgreSQL its text.
// Columns keep SQLite's storage: times are Unix nanoseconds, booleans 0
// or 1, JSON documents text.
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
	// Leases (lease.go): which replica holds a role (the scheduler), with
	// a token that grows at each change of holder, checked by the
	// holder's writes so that a replica that lost the role cannot commit
	// after another took it (fencing).
	`CREATE TABLE leases (
		name TEXT PRIMARY KEY,
		holder TEXT NOT NULL,
		address TEXT NOT NULL DEFAULT '',
		token INTEGER NOT NULL,
		acquired INTEGER NOT NULL,
		expires INTEGER NOT NULL
	);`,
}

var (
	ddlAutoID  = regexp.MustCompile(`\bINTEGER PRIMARY KEY AUTOINCREMENT\b`)
	ddlInteger = regexp.MustCompile(`\bINTEGER\b`)
	ddlText    = regexp.MustCompile(`\bTEXT\b`)
)

// postgresDDL is migration q for PostgreSQL. Integers are 64 bits, as
// SQLite's are; ids come from identity columns; text compares and sorts
// byte by byte (collation "C"), as SQLite's does, whatever the database's
// locale, so that listings page and order the same on both engines.
func postgresDDL(q string) string {
	q = ddlAutoID.ReplaceAllString(q, "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
	q = ddlInteger.ReplaceAllString(q, "BIGINT")
	q = ddlText.ReplaceAllString(q, `TEXT COLLATE "C"`)
	return strings.TrimSpace(q)
}
