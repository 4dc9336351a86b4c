package server

import (
	"context"

	"github.com/moltfleet/molt/store"
)

// accessStore is what tokens, sessions, enrollment, settings and agents
// read from the store outside a write transaction.
type accessStore interface {
	Update(ctx context.Context, fn func(*store.Tx) error) error
	Tokens(ctx context.Context) ([]store.Token, error)
	TokenByHash(ctx context.Context, hash string) (store.Token, error)
	TokenKnown(ctx context.Context, hash string) (bool, error)
	TokenCount(ctx context.Context) (int, error)
	EnrollTokens(ctx context.Context) ([]store.EnrollToken, error)
	EnrollTokenByHash(ctx context.Context, hash string) (store.EnrollToken, error)
	SessionByHash(ctx context.Context, hash string) (store.Session, error)
	SigninCodeKnown(ctx context.Context, hash string) (bool, error)
	RefusedHostAgents(ctx context.Context) ([]string, error)
	HostRefusal(ctx context.Context, fingerprint string) (store.HostRefusal, error)
}

var _ accessStore = (*store.DB)(nil)
