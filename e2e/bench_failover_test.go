//go:build unix

package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/internal/pgtest"
)

// BenchmarkFailover measures the time from a kill -9 of the leading
// replica to another replica leading (it has loaded the state and serves),
// over 10 failovers of three replicas on PostgreSQL; the killed one comes
// back as a follower each time. It prints the median and the worst:
//
//	go test ./e2e/ -run '^$' -bench Failover -benchtime 1x
func BenchmarkFailover(b *testing.B) {
	if testing.Short() {
		b.Skip("starts real replicas (skipped with -short)")
	}
	pg := pgtest.Start(b)
	r := e2etest.StartReplicas(b, 3, pg.CreateDB(b, "molt"), e2etest.ServerOptions{Version: newVersion})
	var took []time.Duration
	for range 10 {
		old := r.Leader()
		if old < 0 {
			b.Fatal("no replica leads")
		}
		r.Servers[old].Kill9()
		killed := time.Now()
		r.WaitLeader(old, 30*time.Second)
		took = append(took, time.Since(killed))
		r.Servers[old].Start()
	}
	slices.Sort(took)
	median := (took[4] + took[5]) / 2
	b.ReportMetric(median.Seconds(), "s/failover-median")
	b.ReportMetric(took[9].Seconds(), "s/failover-max")
	fmt.Printf("failover after kill -9 of the leader, 10 times: median %v, min %v, max %v\n",
		median.Round(time.Millisecond), took[0].Round(time.Millisecond), took[9].Round(time.Millisecond))
}
