package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// Loaded is the state the server keeps in memory, as it starts: what it
// schedules from and answers agents with. Everything else it reads when
// asked.
type Loaded struct {
	Agents      []LoadedAgent
	Deployments []LoadedDeployment // not ended, by id
	Runs        []LoadedRun        // not ended, by id
	Cleanups    []LoadedCleanup    // not done, by id
	Settings    map[string]string  // those set: key -> value
	Releases    []LoadedRelease
}

// LoadedAgent is an enrolled agent (revoked ones too).
type LoadedAgent struct {
	ID          string
	CredHash    string
	Fingerprint string
	Enrolled    time.Time
	LastSeen    time.Time
	Revoked     bool
	Desired     string
	Status      protocol.Status
	// WorkloadAlerts are the workload alerts in force: workload name ->
	// the alert (nil when none).
	WorkloadAlerts map[string]string
}

// LoadedDeployment is a deployment that has not ended.
type LoadedDeployment struct {
	ID       int64
	RunID    int64 // 0: a repair, of no run
	AgentID  string
	Platform string
	Kind     string
	From     string
	Target   string
	Revert   bool
	State    string
	Reason   string
	Updated  time.Time
	Started  time.Time
	Wave     int
	Canary   bool
}

// LoadedRun is a run that has not ended.
type LoadedRun struct {
	ID               int64
	Text             string
	Status           string
	MaxConcurrent    int
	FailureThreshold int
	AckFailures      int
	Controls         protocol.RunControls
	Waves            []protocol.WaveStatus // names and sizes only
	Wave             int
	WaveDoneAt       time.Time
	WaveApproval     bool
	Created          time.Time
	// Counts are the run's deployments by state.
	Counts map[string]int
}

// LoadedCleanup is a cleanup of an agent's old versions not yet done.
type LoadedCleanup struct {
	ID      int64
	AgentID string
	Keep    []string
}

// LoadedRelease is an imported release.
type LoadedRelease struct {
	Version   string
	Floor     string
	Platforms []string
	Released  time.Time
}

// Load reads the state the server starts from, through the writer's
// connection: it sees every commit made before.
func (db *DB) Load(ctx context.Context) (*Loaded, error) {
	l := &Loaded{Settings: map[string]string{}}
	for _, load := range []func(context.Context, *Loaded) error{
		db.loadAgents, db.loadDeployments, db.loadRuns, db.loadCleanups, db.loadSettings, db.loadReleases,
	} {
		if err := load(ctx, l); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (db *DB) loadAgents(ctx context.Context, l *Loaded) error {
	rows, err := db.wquery(ctx, `SELECT id, cred_hash, fingerprint, enrolled, last_seen, revoked, desired, status, workload_alerts FROM agents`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var a LoadedAgent
		var enrolled, seen int64
		var status, alerts string
		if err := rows.Scan(&a.ID, &a.CredHash, &a.Fingerprint, &enrolled, &seen, &a.Revoked, &a.Desired, &status, &alerts); err != nil {
			return err
		}
		a.Enrolled, a.LastSeen = FromNanos(enrolled), FromNanos(seen)
		if status != "" {
			if err := json.Unmarshal([]byte(status), &a.Status); err != nil {
				return fmt.Errorf("agent %s: %w", a.ID, err)
			}
		}
		if alerts != "" {
			if err := json.Unmarshal([]byte(alerts), &a.WorkloadAlerts); err != nil {
				return fmt.Errorf("agent %s: workload alerts: %w", a.ID, err)
			}
		}
		l.Agents = append(l.Agents, a)
	}
	return rows.Err()
}

func (db *DB) loadDeployments(ctx context.Context, l *Loaded) error {
	rows, err := db.wquery(ctx, `SELECT id, run_id, agent_id, platform, kind, from_version, target, revert, state, reason, updated, started, wave, canary FROM deployments
		WHERE state NOT IN ('succeeded','failed','rolled_back','skipped','cancelled') ORDER BY id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var d LoadedDeployment
		var upd, started int64
		if err := rows.Scan(&d.ID, &d.RunID, &d.AgentID, &d.Platform, &d.Kind, &d.From, &d.Target, &d.Revert, &d.State, &d.Reason, &upd, &started, &d.Wave, &d.Canary); err != nil {
			return err
		}
		d.Updated, d.Started = FromNanos(upd), FromNanos(started)
		l.Deployments = append(l.Deployments, d)
	}
	return rows.Err()
}

func (db *DB) loadRuns(ctx context.Context, l *Loaded) error {
	rows, err := db.wquery(ctx, `SELECT id, text, status, max_concurrent, failure_threshold, ack_failures, controls, waves, wave, wave_done_at, wave_approval, created FROM runs WHERE ended = 0 ORDER BY id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var r LoadedRun
		var controls, waves string
		var done, created int64
		if err := rows.Scan(&r.ID, &r.Text, &r.Status, &r.MaxConcurrent, &r.FailureThreshold, &r.AckFailures, &controls, &waves, &r.Wave, &done, &r.WaveApproval, &created); err != nil {
			return err
		}
		r.WaveDoneAt, r.Created = FromNanos(done), FromNanos(created)
		if controls != "" {
			if err := json.Unmarshal([]byte(controls), &r.Controls); err != nil {
				return fmt.Errorf("run %d: controls: %w", r.ID, err)
			}
		}
		if waves != "" {
			if err := json.Unmarshal([]byte(waves), &r.Waves); err != nil {
				return fmt.Errorf("run %d: waves: %w", r.ID, err)
			}
		}
		l.Runs = append(l.Runs, r)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	for i := range l.Runs {
		r := &l.Runs[i]
		var err error
		if r.Counts, _, err = scanCountsByKey(db.wquery(ctx, runCountsQuery, r.ID)); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) loadCleanups(ctx context.Context, l *Loaded) error {
	rows, err := db.wquery(ctx, `SELECT id, agent_id, keep FROM cleanups WHERE done = 0 ORDER BY id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var c LoadedCleanup
		var keep string
		if err := rows.Scan(&c.ID, &c.AgentID, &keep); err != nil {
			return err
		}
		if keep != "" {
			if err := json.Unmarshal([]byte(keep), &c.Keep); err != nil {
				return fmt.Errorf("cleanup %d: %w", c.ID, err)
			}
		}
		l.Cleanups = append(l.Cleanups, c)
	}
	return rows.Err()
}

func (db *DB) loadSettings(ctx context.Context, l *Loaded) error {
	rows, err := db.wquery(ctx, `SELECT key, value FROM settings`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return err
		}
		l.Settings[k] = v
	}
	return rows.Err()
}

func (db *DB) loadReleases(ctx context.Context, l *Loaded) error {
	rows, err := db.wquery(ctx, `SELECT version, floor, platforms, released FROM releases`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var r LoadedRelease
		var plats string
		var rel int64
		if err := rows.Scan(&r.Version, &r.Floor, &plats, &rel); err != nil {
			return err
		}
		if plats != "" {
			if err := json.Unmarshal([]byte(plats), &r.Platforms); err != nil {
				return fmt.Errorf("release %s: platforms: %w", r.Version, err)
			}
		}
		r.Released = FromNanos(rel)
		l.Releases = append(l.Releases, r)
	}
	return rows.Err()
}
