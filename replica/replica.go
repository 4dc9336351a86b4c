// Package replica runs several molt serve processes on one PostgreSQL
// database. One of them, the leader, holds the scheduler's lease and is
// the server: it keeps the fleet's state in memory, schedules runs and
// makes every change. The others are followers: they terminate TLS, hold
// agents' and operators' connections and pass each request to the
// leader, so that any replica answers anyone. When the leader dies or
// loses the database, its lease expires and a follower takes it, loads
// the state from the database and leads.
//
// A leader whose lease another took cannot commit (the server checks the
// lease in each of its transactions: store.Tx.CheckLease), and it stops
// leading before the database lets another take the lease: it counts its
// deadline from before each renewal.
package replica

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/store"
)

// LeaseName is the lease the leader holds.
const LeaseName = "leader"

// Elector takes and keeps the leader's lease for one replica.
type Elector struct {
	DB      *store.DB
	ID      string // this replica's id, unique among replicas
	Address string // the URL other replicas reach this one at
	// TTL is how long a lease lasts without renewal (default 5 s): a dead
	// leader is replaced within about TTL plus the time the new leader
	// takes to load the state.
	TTL time.Duration
	Log *zap.Logger
}

func (e *Elector) ttl() time.Duration {
	if e.TTL <= 0 {
		return 5 * time.Second
	}
	return e.TTL
}

func (e *Elector) log() *zap.Logger {
	if e.Log == nil {
		return zap.NewNop()
	}
	return e.Log
}

// Acquire waits until this replica holds the lease, trying every fifth of
// the TTL (with jitter, so followers do not ask in step).
func (e *Elector) Acquire(ctx context.Context) (store.Lease, error) {
	every := e.ttl() / 5
	for {
		l, held, err := e.DB.AcquireLease(ctx, LeaseName, e.ID, e.Address, e.ttl())
		switch {
		case err != nil:
			e.log().Warn("leader lease", zap.Error(err))
		case held:
			return l, nil
		}
		select {
		case <-ctx.Done():
			return store.Lease{}, ctx.Err()
		case <-time.After(every/2 + rand.N(every)):
		}
	}
}

// Hold renews l every fifth of the TTL until ctx ends (then it releases
// the lease, for a quick handover) or until it can no longer be sure to
// hold it: another replica took it, or no renewal succeeded before this
// replica's own deadline. The deadline falls two fifths of the TTL before
// the earliest moment the database lets another replica take the lease
// (it counts from before the renewal was asked), which leaves room for a
// late timer on a loaded machine. It returns why.
func (e *Elector) Hold(ctx context.Context, l store.Lease) error {
	ttl := e.ttl()
	every := ttl / 5
	margin := 2 * every
	deadline := time.Now().Add(ttl - margin) // l was acquired after this process asked
	var lastErr error
	for {
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := e.DB.ReleaseLease(rctx, l); err != nil {
				e.log().Warn("release the leader lease", zap.Error(err))
			}
			return ctx.Err()
		case <-time.After(max(0, min(every, time.Until(deadline)))):
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w: no renewal succeeded in time: %v", store.ErrLeaseLost, lastErr)
		}
		asked := time.Now()
		rctx, cancel := context.WithDeadline(ctx, deadline)
		nl, err := e.DB.RenewLease(rctx, l, ttl)
		cancel()
		switch {
		case err == nil:
			l, deadline, lastErr = nl, asked.Add(ttl-margin), nil
		case errors.Is(err, store.ErrLeaseLost):
			return fmt.Errorf("%w (replica %s led with token %d)", err, l.Holder, l.Token)
		default:
			lastErr = err
			if ctx.Err() == nil {
				e.log().Warn("renew the leader lease", zap.Error(err))
			}
		}
	}
}
