// Package sleep waits for a while unless a context ends first, so that a
// retry or poll loop stops at once when its caller goes away.
package sleep

import (
	"context"
	"time"
)

// For waits d, or until ctx ends; then it returns ctx's error.
func For(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
