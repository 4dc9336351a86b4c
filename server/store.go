package server

import (
	"encoding/json"
	"time"

	"github.com/moltfleet/molt/store"
)

// Store is the database the server runs on: package store implements it
// for SQLite and PostgreSQL. Reads are its methods, declared by the parts
// of the server that use them (store_*.go); writes are methods of the
// *store.Tx that a batch of changes opens with Begin (group.go).
type Store interface {
	accessStore
	deployStore
	runsStore
	coreStore
	// Fence makes every write check a replica's lease (Options.Fence).
	Fence(store.Lease)
}

var _ Store = (*store.DB)(nil)

// nanos and fromNanos store times as Unix nanoseconds; 0 is the zero time.
func nanos(t time.Time) int64 { return store.Nanos(t) }

func fromNanos(n int64) time.Time { return store.FromNanos(n) }

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called on types that always marshal
	}
	return string(b)
}
