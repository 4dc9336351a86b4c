package server

import (
	"context"
	"time"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/store"
)

// deployStore is what the deployment paths (check-in, reports, the
// history, stuck deployments, the health watch) read from the store
// outside the writer's transactions; their writes are *store.Tx methods.
type deployStore interface {
	Deployment(ctx context.Context, id int64) (store.Deployment, error)
	Deployments(ctx context.Context, f store.DeploymentFilter, limit, offset int) ([]store.Deployment, error)
	CountDeployments(ctx context.Context, f store.DeploymentFilter) (int, error)
	DeploymentAgentState(ctx context.Context, id int64) (agent, state string, err error)
	Steps(ctx context.Context, dep int64) ([]protocol.Step, error)
	HasStep(ctx context.Context, dep int64, at time.Time, name string) (bool, error)
	CleanupAgent(ctx context.Context, id int64) (agent string, done bool, err error)
	HealthBaselines(ctx context.Context, run int64, soakFrom time.Time) ([]store.DeploymentBaseline, error)
	RunDeploymentsMarked(ctx context.Context, run int64, step string) (int, error)
}

var _ deployStore = (*store.DB)(nil)
