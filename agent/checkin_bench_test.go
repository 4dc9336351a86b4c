package agent

import (
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// BenchmarkReconnectSpread simulates a fleet whose server is away for 10 s
// (killed and restarted): every agent's check-in fails at once, then each
// retries by the check-in loop's backoff. It reports the peak rate of
// check-ins the restarted server sees (per second, in 100 ms buckets) and
// how long until 99% of the fleet is back, for 50,000 agents.
//
//	go test ./agent -run '^$' -bench ReconnectSpread
func BenchmarkReconnectSpread(b *testing.B) {
	const agents = 50000
	const down = 10 * time.Second
	r := rand.New(rand.NewPCG(1, 2))
	c := NewCheckin(CheckinOptions{Rand: r.Int64N})
	var peak float64
	var p99 time.Duration
	for range b.N {
		arrivals := make([]time.Duration, agents)
		for i := range arrivals {
			var t time.Duration
			for n := 1; ; n++ {
				t += c.backoff(n)
				if t >= down {
					break
				}
			}
			arrivals[i] = t - down
		}
		buckets := map[int64]int{}
		for _, a := range arrivals {
			buckets[int64(a/(100*time.Millisecond))]++
		}
		top := 0
		for _, n := range buckets {
			top = max(top, n)
		}
		peak = float64(top) * 10
		sort.Slice(arrivals, func(i, j int) bool { return arrivals[i] < arrivals[j] })
		p99 = arrivals[agents*99/100]
	}
	b.ReportMetric(peak, "peak-checkins/s")
	b.ReportMetric(p99.Seconds(), "s-to-99%-back")
	b.ReportMetric(agents, "agents")
}
