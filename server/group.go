package server

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/store"
)

// Changes are committed in groups. A change joins the batch: the one open
// write transaction, which it extends inside a savepoint, so that a change
// that fails takes back only its own writes. Its mirrored state is applied
// at once, under s.mu, so that memory and the transaction never disagree
// for whoever holds s.mu next. Then either
//
//   - change commits the batch before it returns, still under s.mu (the
//     scheduler and operators' actions), or
//   - changeGrouped returns a wait, which the caller calls once it has
//     released s.mu and before it answers: the first waiter of a batch
//     commits it, with every change that joined it meanwhile (agents'
//     reports and check-ins, hundreds a second in a large run).
//
// Either way nothing is answered before it is durable (synchronous=FULL),
// but one fsync and one write of each page serve many changes. A commit
// that fails leaves memory ahead of the database, which no request may see:
// the server stops (Run returns the error) and starts again from what the
// database holds.
type batch struct {
	tx      *store.Tx
	changes int
	hooks   []hookJob
	once    sync.Once
	done    chan struct{}
	err     error
}

// batchMu guards s.batch. Joining holds it for the whole change, under
// s.mu; taking a batch to commit holds it only to detach the batch, so a
// commit never needs s.mu.
type batchState struct {
	batchMu sync.Mutex
	batch   *batch
	failed  chan struct{} // closed when a commit failed
	failErr error
	failOne sync.Once
}

// change runs fn in the open batch and commits the batch before it
// returns. Call with s.mu held.
func (s *Server) change(ctx context.Context, fn func(w *writer) error) error {
	b, err := s.join(fn)
	if err != nil {
		return err
	}
	return s.finish(b)
}

// changeGrouped runs fn in the open batch and returns the wait for its
// commit. Call with s.mu held; call wait after releasing s.mu and before
// answering. fn's mirrored changes are already applied when it returns.
func (s *Server) changeGrouped(fn func(w *writer) error) (wait func() error, err error) {
	b, err := s.join(fn)
	if err != nil {
		return nil, err
	}
	return func() error { return s.finish(b) }, nil
}

// join runs fn in the open batch (opening one when none is), inside a
// savepoint, and applies its mirrored changes. Call with s.mu held.
func (s *Server) join(fn func(w *writer) error) (*batch, error) {
	if err := s.dbFailed(); err != nil {
		return nil, err
	}
	s.batchMu.Lock()
	defer s.batchMu.Unlock()
	b := s.batch
	if b == nil {
		tx, err := s.st.Begin()
		if err != nil {
			return nil, err
		}
		b = &batch{tx: tx, done: make(chan struct{})}
		s.batch = b
	}
	w := &writer{s: s, ctx: context.Background(), tx: b.tx, now: s.clock.Now()}
	if err := b.tx.Savepoint(); err != nil {
		return nil, s.poison(b, err)
	}
	if err := fn(w); err != nil {
		if rerr := b.tx.RollbackToSavepoint(); rerr != nil {
			return nil, s.poison(b, rerr)
		}
		if b.changes == 0 {
			// Nothing else joined the batch: no waiter will commit it,
			// and its transaction would hold the database until the next
			// change (a refused transition must not stall readers).
			s.batch = nil
			b.once.Do(func() {
				defer close(b.done)
				if rerr := b.tx.Rollback(); rerr != nil {
					s.log.Warn("roll back an empty batch", zap.Error(rerr))
				}
			})
		}
		return nil, err
	}
	if err := b.tx.ReleaseSavepoint(); err != nil {
		return nil, s.poison(b, err)
	}
	for _, f := range w.after {
		f()
	}
	b.changes++
	b.hooks = append(b.hooks, w.hooks...)
	return b, nil
}

// poison ends a batch whose transaction can no longer be trusted (a
// savepoint that cannot be rolled back): its changes that already joined
// are mirrored in memory, so it fails as a commit would. Call with
// s.batchMu held.
func (s *Server) poison(b *batch, err error) error {
	if s.batch == b {
		s.batch = nil
	}
	b.once.Do(func() {
		_ = b.tx.Rollback()
		b.err = fmt.Errorf("database: %w", err)
		s.stopOnFailure(b.err)
		close(b.done)
	})
	return b.err
}

// finish commits b, unless another waiter of b does or did, and returns
// how the commit went.
func (s *Server) finish(b *batch) error {
	s.batchMu.Lock()
	if s.batch == b {
		s.batch = nil
	}
	s.batchMu.Unlock()
	b.once.Do(func() {
		defer close(b.done)
		if err := b.tx.Commit(); err != nil {
			b.err = fmt.Errorf("database commit: %w", err)
			s.stopOnFailure(b.err)
			return
		}
		s.st.AddChanges(b.changes)
		s.events.publish()
		for _, h := range b.hooks {
			s.hooks.enqueue(h)
		}
	})
	<-b.done
	return b.err
}

// stopOnFailure stops the server after a commit failed: Run returns err,
// and every request is answered 503 from now on.
func (s *Server) stopOnFailure(err error) {
	s.failOne.Do(func() {
		s.failErr = err
		s.log.Error("a database commit failed: the server stops, to start again from what the database holds", zap.Error(err))
		close(s.failed)
		go s.Shutdown()
	})
}

// dbFailed is the commit failure that stops the server, or nil.
func (s *Server) dbFailed() error {
	select {
	case <-s.failed:
		return errf(http.StatusServiceUnavailable, protocol.CodeUnavailable, "the server is stopping after a database failure: %v", s.failErr)
	default:
		return nil
	}
}
