package server

import (
	"context"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/store"
)

// deployStore is what the deployment paths (check-in, report, history,
// stuck, health watch) read from the store outside a write transaction.
type deployStore interface {
	Deployment(ctx context.Context, id int64) (store.Deployment, error)
	Deployments(ctx context.Context, f store.DeploymentFilter, limit, offset int) ([]store.Deployment, error)
	CountDeployments(ctx context.Context, f store.DeploymentFilter) (int, error)
	DeploymentAgentState(ctx context.Context, id int64) (agent, state string, err error)
	Steps(ctx context.Context, dep int64) ([]protocol.Step, error)
}

var _ deployStore = (*store.DB)(nil)
