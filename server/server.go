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

	"github.com/moltfleet/molt/artifacts"
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
	// Artifacts keep the packs' files (default: the directory
	// DATA/packs); replicas share an S3 bucket (package artifacts).
	Artifacts artifacts.Store
	// ArtifactRedirect, when positive, sends agents straight to the
	// artifact store with pre-signed URLs valid that long, where the
	// store has them (S3); otherwise the server serves the files.
	ArtifactRedirect time.Duration
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
	st    Store
	art   artifacts.Store
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
	// importing are the versions whose files are being published
	// (ImportPack).
	importing map[string]bool
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

// depRec is an open deployment as the server keeps it in memory: the
// record the store loads it as, so that the two cannot drift apart.
type depRec store.LoadedDeployment

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
	art := opt.Artifacts
	if art == nil {
		if art, err = artifacts.NewDir(filepath.Join(opt.DataDir, "packs")); err != nil {
			st.Close()
			return nil, err
		}
	}
	s := &Server{
		opt: opt, st: st, art: art, log: opt.Log, clock: opt.Clock,
		agents: map[string]*agentRec{}, byCred: map[string]string{}, open: map[string]*depRec{},
		runs: map[int64]*runRec{}, cleanups: map[string][]cleanupRec{}, waiters: map[string]*waiter{},
		settings: map[string]string{}, releases: map[string]releaseRec{}, importing: map[string]bool{},
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

// Store returns the server's database.
func (s *Server) Store() Store { return s.st }

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
	l, err := s.st.Load(ctx)
	if err != nil {
		return err
	}
	for _, la := range l.Agents {
		a := &agentRec{ID: la.ID, CredHash: la.CredHash, Fingerprint: la.Fingerprint, Enrolled: la.Enrolled, LastSeen: la.LastSeen,
			Revoked: la.Revoked, Desired: la.Desired, St: la.Status, alerts: la.WorkloadAlerts}
		a.persisted = persistKey(a.St)
		s.agents[a.ID] = a
		s.byCred[a.CredHash] = a.ID
	}
	for _, ld := range l.Deployments {
		d := depRec(ld)
		s.open[ld.AgentID] = &d
	}
	for _, lr := range l.Runs {
		r := &runRec{ID: lr.ID, Text: lr.Text, Status: lr.Status, MaxConcurrent: lr.MaxConcurrent, FailureThreshold: lr.FailureThreshold,
			AckFailures: lr.AckFailures, Counts: lr.Counts}
		r.Wave, r.WaveApproval = lr.Wave, lr.WaveApproval
		s.runs[r.ID] = r
		if err := s.loadRollout(ctx, r, mustJSON(lr.Controls), mustJSON(lr.Waves), nanos(lr.Created), nanos(lr.WaveDoneAt)); err != nil {
			return err
		}
	}
	for _, c := range l.Cleanups {
		s.cleanups[c.AgentID] = append(s.cleanups[c.AgentID], cleanupRec{ID: c.ID, Keep: c.Keep})
	}
	s.settings = l.Settings
	for _, lr := range l.Releases {
		r := releaseRec{Version: lr.Version, Floor: lr.Floor, Platforms: map[string]bool{}, Released: lr.Released}
		for _, p := range lr.Platforms {
			r.Platforms[p] = true
		}
		s.releases[r.Version] = r
	}
	return s.loadQuarantines(ctx)
}

// flushSeen writes last-seen times in one transaction. They are not worth
// an fsync per check-in: after a crash an agent's last-seen time may be a
// few seconds old, which its next check-in corrects.
func (s *Server) flushSeen(ctx context.Context) {
	s.mu.Lock()
	var batch []store.AgentSeen
	for _, a := range s.agents {
		if a.seenDirty {
			batch = append(batch, store.AgentSeen{ID: a.ID, At: a.LastSeen})
			a.seenDirty = false
		}
	}
	s.mu.Unlock()
	if err := s.st.FlushLastSeen(ctx, batch); err != nil && !errors.Is(err, context.Canceled) {
		s.log.Warn("flush last-seen times", zap.Error(err))
	}
}

// pruneBatch is how many events one transaction of pruneEvents deletes.
const pruneBatch = 5000

// pruneEvents deletes events older than the events.keep setting, in
// batches so the writer is never held for long. Deployments and their DEPLOY
// reports are history and are kept.
func (s *Server) pruneEvents(ctx context.Context) {
	s.mu.Lock()
	cutoff := s.clock.Now().Add(-s.durationSetting("events.keep"))
	s.mu.Unlock()
	for ctx.Err() == nil {
		n, err := s.st.PruneEvents(ctx, cutoff, pruneBatch)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("prune events", zap.Error(err))
			}
			return
		}
		if n < pruneBatch {
			return
		}
	}
}

// Handler is the HTTP API.
func (s *Server) Handler() http.Handler { return s.routes() }
