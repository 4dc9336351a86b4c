package updater

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestDefaultRetryRidesOutAnOutage: with the default retry policy, a
// download cut mid-file whose source then fails every request for 90 s
// of backoff (a store down for a minute, as the tests of issue 13 take
// it down, with room to spare) resumes once the source is back: the
// attempt does not give up first and leave the order to be repeated.
func TestDefaultRetryRidesOutAnOutage(t *testing.T) {
	const size = 1 << 20
	const outage = 90 * time.Second
	for _, tc := range []struct {
		name string
		fail http.HandlerFunc
	}{
		// Through the server: it answers 503 while its store is away.
		{"503", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "the artifact store: connection refused", http.StatusServiceUnavailable)
		}},
		// Straight from the store: the connection fails.
		{"connection dropped", func(w http.ResponseWriter, _ *http.Request) {
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close()
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub, h, srv, _, base, agent := publishRelease(t, size, 1000)
			srv.edit(func() { srv.cuts[agent] = []int64{size / 2} })
			o := testOptions(h, pub)
			o.Retry = Retry{}
			u := New(o)
			var slept time.Duration
			u.sleep = func(_ context.Context, d time.Duration) error {
				// The first wait follows the cut: the source goes down.
				if slept == 0 {
					srv.setOverride(agent, tc.fail)
				}
				slept += d
				if slept >= outage {
					srv.setOverride(agent, nil)
				}
				return nil
			}
			if err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)}); err != nil {
				t.Fatalf("Prepare after %v of backoff: %v", slept, err)
			}
			if got := srv.servedBytes(agent); got != size {
				t.Errorf("served %d bytes of a %d-byte file: want the rest resumed, not all of it again", got, size)
			}
		})
	}
}
