// Package server is the molt control server: the agent protocol (enroll,
// long-poll check-in, reports, packs), the operator API (tokens, agents,
// releases, settings, upgrade runs, history, events), the run scheduler,
// hooks and metrics. State lives in SQLite (see Store); the scheduler keeps
// nothing that is not in the database, so a restarted server carries on
// every run where it stood.
package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/store"
	"github.com/moltfleet/molt/updater/pack"
)

// Clock tells the time; tests pass a fake one.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now().UTC() }

// Options configure a Server.
type Options struct {
	// DataDir holds molt.db, packs/, admin.token and (with --dev) tls/.
	DataDir string
	// Store is the database: empty for the SQLite file DATA/molt.db, or a
	// postgres:// URL (store.Open).
	Store string
	// Fence is the leader's lease of a replica (package replica): every
	// write checks it, so that none commits once another replica leads.
	Fence *store.Lease
	// TrustedKeys verify imported packs.
	TrustedKeys []pack.Key
	// PublicURL is the base URL agents reach the server at, used in pack
	// URLs of orders; empty: taken from each request's Host.
	PublicURL string
	// PollWait overrides the agents.poll-seconds setting (tests use short
	// waits); zero: the setting.
	PollWait time.Duration
	// Tick is how often the scheduler looks at runs without being woken
	// (default 1 s).
	Tick time.Duration
	// HookWorkers bounds concurrently running hooks (default 2).
	HookWorkers int
	Clock       Clock
	Log         *zap.Logger
	// Version is reported by /v1/server and in events.
	Version string
	// StreamKeepalive is how often an idle event stream sends a keepalive
	// comment (default 15 s; tests use short ones).
	StreamKeepalive time.Duration
}

// Server is the control server. Create it with New, serve Handler(), and
// call Run for its background work (scheduler, flusher, hooks).
type Server struct {
	opt   Options
	st    *store.DB
	log   *zap.Logger
	clock Clock

	// mu guards the in-memory mirrors below and orders every state change:
	// a change is written to the database, then mirrored, under mu.
	mu       sync.Mutex
	agents   map[string]*agentRec
	byCred   map[string]string  // credential hash -> agent id
	open     map[string]*depRec // agent id -> its one open (not ended) deployment
	runs     map[int64]*runRec  // runs not ended
	cleanups map[string][]cleanupRec
	waiters  map[string]*waiter // agent id -> its long poll
	settings map[string]string
	releases map[string]releaseRec
	// quarantines are the releases kept from a platform (quarantine.go).
	quarantines map[quarantineKey]quarantineRec

	kick    chan struct{}
	closing chan struct{}
	closed  sync.Once

	// resumed hands connections of answered parked polls back to the
	// http.Server; parking counts answers being written.
	resumed *resumedListener
	parking sync.WaitGroup

	events *eventHub
	hooks  *hookRunner
	met    *metrics

	streams streamGate // the open event streams (stream.go)

	batchState // the changes being committed together (group.go)

	// windows are the default maintenance windows by label, parsed from
	// the settings; windowsOK is false until they are (windows.go).
	windows   []hostWindow
	windowsOK bool

	// agentScan is s.agents in memory order, for the passes of the agents
	// listing (agentquery.go).
	agentScan []*agentRec
}

type agentRec struct {
	ID          string
	CredHash    string
	Fingerprint string
	Enrolled    time.Time
	LastSeen    time.Time
	Revoked     bool
	Desired     string // last successful target; a repair brings the agent back to it
	St          protocol.Status
	persisted   string // status JSON last written, without live fields
	seenDirty   bool
	lastClone   time.Time
	// alerts are the workload alerts in force (agents.workload_alerts):
	// workload name -> alertLooping or alertUnhealthy.
	alerts map[string]string
}

type depRec struct {
	ID       int64
	RunID    int64
	Wave     int  // the run's wave it belongs to (0: the canaries, or the only wave)
	Canary   bool // chosen as a canary of its run
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
}

type runRec struct {
	ID               int64
	Text             string
	Status           string
	MaxConcurrent    int
	FailureThreshold int
	AckFailures      int // failures an operator accepted by resuming
	// Counts are the run's deployments by state, kept by newDeployment
	// and setState: the scheduler reads them at every pass.
	Counts map[string]int
	runRollout
}

// open is how many of r's deployments have not ended.
func (r *runRec) open() int {
	n := 0
	for st, k := range r.Counts {
		if !protocol.Terminal(st) {
			n += k
		}
	}
	return n
}

// failures is how many of r's deployments failed, rolled back or are stuck.
func (r *runRec) failures() int {
	return r.Counts[protocol.StateFailed] + r.Counts[protocol.StateRolledBack] + r.Counts[protocol.StateStuck]
}

type cleanupRec struct {
	ID   int64
	Keep []string
}

type releaseRec struct {
	Version   string
	Floor     string
	Platforms map[string]bool
	Released  time.Time
}

// New opens the store in opt.DataDir and loads the server's state.
func New(ctx context.Context, opt Options) (*Server, error) {
	if opt.Clock == nil {
		opt.Clock = realClock{}
	}
	if opt.Log == nil {
		opt.Log = zap.NewNop()
	}
	if opt.Tick == 0 {
		opt.Tick = time.Second
	}
	if opt.HookWorkers == 0 {
		opt.HookWorkers = 2
	}
	if err := os.MkdirAll(filepath.Join(opt.DataDir, "packs"), 0o755); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	// Imports and removals interrupted by a crash leave their temporary
	// directories behind; nothing refers to them.
	for _, pat := range []string{".incoming-*", ".removed-*", ".pack-upload-*"} {
		left, _ := filepath.Glob(filepath.Join(opt.DataDir, "packs", pat))
		for _, d := range left {
			_ = os.RemoveAll(d)
		}
	}
	target := opt.Store
	if target == "" {
		target = filepath.Join(opt.DataDir, "molt.db")
	}
	st, err := store.Open(ctx, target)
	if err != nil {
		return nil, err
	}
	if opt.Fence != nil {
		st.Fence(*opt.Fence)
	}
	s := &Server{
		opt: opt, st: st, log: opt.Log, clock: opt.Clock,
		agents: map[string]*agentRec{}, byCred: map[string]string{}, open: map[string]*depRec{},
		runs: map[int64]*runRec{}, cleanups: map[string][]cleanupRec{}, waiters: map[string]*waiter{},
		settings: map[string]string{}, releases: map[string]releaseRec{},
		kick: make(chan struct{}, 1), closing: make(chan struct{}),
		batchState: batchState{failed: make(chan struct{})},
		events:     newEventHub(), met: newMetrics(), resumed: newResumedListener(),
	}
	s.hooks = newHookRunner(s, opt.HookWorkers)
	if err := s.load(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("load state: %w", err)
	}
	return s, nil
}

// AgentCount is the number of agents enrolled and not revoked: each holds
// a connection to the server (molt serve checks its descriptor limit
// against it).
func (s *Server) AgentCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, a := range s.agents {
		if !a.Revoked {
			n++
		}
	}
	return n
}

// Close releases the database. Call it after Run returned.
func (s *Server) Close() error { return s.st.Close() }

// Store returns the server's database (tests inspect it).
func (s *Server) Store() *store.DB { return s.st }

// Run does the background work until ctx ends: the scheduler's tick, the
// flush of agents' last-seen times and the hook workers. On return every
// long poll has been released.
func (s *Server) Run(ctx context.Context) error {
	s.emit(context.Background(), event{ID: protocol.EvServerStarted, Msg: "server started", Fields: map[string]string{"version": s.opt.Version}})
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.hooks.run(ctx) }()
	t := time.NewTicker(s.opt.Tick)
	defer t.Stop()
	flush := time.NewTicker(5 * time.Second)
	defer flush.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	s.pruneEvents(ctx)
	s.Schedule(ctx)
	for {
		select {
		case <-ctx.Done():
			s.Shutdown()
			s.flushSeen(context.Background())
			wg.Wait()
			s.parking.Wait()
			return nil
		case <-s.failed:
			s.Shutdown()
			stop()
			wg.Wait()
			s.parking.Wait()
			return s.failErr
		case <-t.C:
			s.Schedule(ctx)
		case <-s.kick:
			s.Schedule(ctx)
		case <-flush.C:
			s.flushSeen(ctx)
		case <-prune.C:
			s.pruneEvents(ctx)
		}
	}
}

// Shutdown releases every long poll (they answer with no orders) and makes
// new requests answer 503. Call it before http.Server.Shutdown.
func (s *Server) Shutdown() {
	s.closed.Do(func() {
		close(s.closing)
		// Held polls see closing; parked ones are answered here.
		s.mu.Lock()
		for id, w := range s.waiters {
			if w.park != nil {
				w.release()
				delete(s.waiters, id)
			}
		}
		s.mu.Unlock()
	})
}

func (s *Server) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// notify wakes agent id's long poll. Call with s.mu held.
func (s *Server) notify(id string) {
	if w, ok := s.waiters[id]; ok {
		w.release()
		delete(s.waiters, id)
	}
}

func (s *Server) load(ctx context.Context) error {
	db := s.st.Writer()
	rows, err := db.QueryContext(ctx, `SELECT id, cred_hash, fingerprint, enrolled, last_seen, revoked, desired, status, workload_alerts FROM agents`)
	if err != nil {
		return err
	}
	for rows.Next() {
		a := &agentRec{}
		var enrolled, seen int64
		var status, alerts string
		if err := rows.Scan(&a.ID, &a.CredHash, &a.Fingerprint, &enrolled, &seen, &a.Revoked, &a.Desired, &status, &alerts); err != nil {
			rows.Close()
			return err
		}
		a.Enrolled, a.LastSeen = fromNanos(enrolled), fromNanos(seen)
		if err := jsonUnmarshal(status, &a.St); err != nil {
			rows.Close()
			return fmt.Errorf("agent %s: %w", a.ID, err)
		}
		if err := jsonUnmarshal(alerts, &a.alerts); err != nil {
			rows.Close()
			return fmt.Errorf("agent %s: workload alerts: %w", a.ID, err)
		}
		a.persisted = persistKey(a.St)
		s.agents[a.ID] = a
		s.byCred[a.CredHash] = a.ID
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = db.QueryContext(ctx, `SELECT id, run_id, agent_id, platform, kind, from_version, target, revert, state, reason, updated, started, wave, canary FROM deployments WHERE state NOT IN ('succeeded','failed','rolled_back','skipped','cancelled')`)
	if err != nil {
		return err
	}
	for rows.Next() {
		d := &depRec{}
		var upd, started int64
		if err := rows.Scan(&d.ID, &d.RunID, &d.AgentID, &d.Platform, &d.Kind, &d.From, &d.Target, &d.Revert, &d.State, &d.Reason, &upd, &started, &d.Wave, &d.Canary); err != nil {
			rows.Close()
			return err
		}
		d.Updated, d.Started = fromNanos(upd), fromNanos(started)
		s.open[d.AgentID] = d
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = db.QueryContext(ctx, `SELECT id, text, status, max_concurrent, failure_threshold, ack_failures, controls, waves, wave, wave_done_at, wave_approval, created FROM runs WHERE ended = 0`)
	if err != nil {
		return err
	}
	type rollout struct {
		controls, waves string
		created, done   int64
	}
	ro := map[int64]rollout{}
	for rows.Next() {
		r := &runRec{}
		var x rollout
		if err := rows.Scan(&r.ID, &r.Text, &r.Status, &r.MaxConcurrent, &r.FailureThreshold, &r.AckFailures, &x.controls, &x.waves, &r.Wave, &x.done, &r.WaveApproval, &x.created); err != nil {
			rows.Close()
			return err
		}
		s.runs[r.ID], ro[r.ID] = r, x
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range s.runs {
		if r.Counts, _, err = s.runCounts(ctx, db, r.ID); err != nil {
			return err
		}
		x := ro[r.ID]
		if err := s.loadRollout(ctx, r, x.controls, x.waves, x.created, x.done); err != nil {
			return err
		}
	}
	rows, err = db.QueryContext(ctx, `SELECT id, agent_id, keep FROM cleanups WHERE done = 0`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var c cleanupRec
		var agent, keep string
		if err := rows.Scan(&c.ID, &agent, &keep); err != nil {
			rows.Close()
			return err
		}
		if err := jsonUnmarshal(keep, &c.Keep); err != nil {
			rows.Close()
			return err
		}
		s.cleanups[agent] = append(s.cleanups[agent], c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = db.QueryContext(ctx, `SELECT key, value FROM settings`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return err
		}
		s.settings[k] = v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = db.QueryContext(ctx, `SELECT version, floor, platforms, released FROM releases`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var r releaseRec
		var plats string
		var rel int64
		if err := rows.Scan(&r.Version, &r.Floor, &plats, &rel); err != nil {
			rows.Close()
			return err
		}
		var ps []string
		if err := jsonUnmarshal(plats, &ps); err != nil {
			rows.Close()
			return err
		}
		r.Platforms = map[string]bool{}
		for _, p := range ps {
			r.Platforms[p] = true
		}
		r.Released = fromNanos(rel)
		s.releases[r.Version] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	return s.loadQuarantines(ctx)
}

// flushSeen writes last-seen times in one transaction. They are not worth
// an fsync per check-in: after a crash an agent's last-seen time may be a
// few seconds old, which its next check-in corrects.
func (s *Server) flushSeen(ctx context.Context) {
	s.mu.Lock()
	type seen struct {
		id string
		at int64
	}
	var batch []seen
	for _, a := range s.agents {
		if a.seenDirty {
			batch = append(batch, seen{a.ID, nanos(a.LastSeen)})
			a.seenDirty = false
		}
	}
	s.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		for _, b := range batch {
			if _, err := tx.Exec(`UPDATE agents SET last_seen = ? WHERE id = ?`, b.at, b.id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Warn("flush last-seen times", zap.Error(err))
	}
}

// pruneEvents deletes events older than the events.keep setting, in
// batches so the writer is never held for long. Deployments and their DEPLOY
// reports are history and are kept.
func (s *Server) pruneEvents(ctx context.Context) {
	s.mu.Lock()
	cutoff := s.clock.Now().Add(-s.durationSetting("events.keep"))
	s.mu.Unlock()
	for ctx.Err() == nil {
		var n int64
		err := s.st.Update(ctx, func(tx *store.Tx) error {
			res, err := tx.Exec(`DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE at < ? ORDER BY seq LIMIT 5000)`, nanos(cutoff))
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("prune events", zap.Error(err))
			}
			return
		}
		if n < 5000 {
			return
		}
	}
}

// Handler is the HTTP API.
func (s *Server) Handler() http.Handler { return s.routes() }
