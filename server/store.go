package server

import (
	"encoding/json"
	"time"

	"github.com/moltfleet/molt/store"
)

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
