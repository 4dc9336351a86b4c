package server

import (
	"context"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/store"
)

// runsStore is what the runs, their rollout and report, releases and
// quarantines read from the store (their writes are *store.Tx methods).
type runsStore interface {
	Run(ctx context.Context, id int64) (store.Run, error)
	Runs(ctx context.Context, status string, limit int) ([]store.Run, error)
	RunReport(ctx context.Context, id int64, steps []string, step func(store.StepTime)) (store.RunReport, error)
	RunWaveTallies(ctx context.Context, run int64) ([]store.WaveTally, error)
	MovedAgents(ctx context.Context, run int64) ([]store.MovedAgent, error)
	OpenRunTargets(ctx context.Context) ([]store.RunTarget, error)
	Releases(ctx context.Context) ([]protocol.Release, error)
	QuarantinesInForce(ctx context.Context) ([]store.Quarantine, error)
}

var _ runsStore = (*store.DB)(nil)
