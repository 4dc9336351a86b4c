package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/config"
	"github.com/moltfleet/molt/protocol"
)

// The capacity numbers come from scripts/bench-server.sh, which runs these
// with MOLT_BENCH=1; plain go test skips them.

func benchEnv(t *testing.T, key string, def int) int {
	if v := os.Getenv(key); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		return n
	}
	return def
}

func rssKB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return -1
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// benchClient is one HTTP/1.1 keep-alive connection per agent, as real
// agents have (HTTP/2 would multiplex them and hide the per-connection cost).
func (p *procServer) benchClient(conns int) *http.Client {
	tr := p.cli.Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = false
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	tr.TLSClientConfig = tr.TLSClientConfig.Clone()
	tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	tr.MaxIdleConnsPerHost = conns
	tr.MaxIdleConns = conns
	return &http.Client{Transport: tr, Timeout: 5 * time.Minute}
}

func enrollMany(t *testing.T, ctx context.Context, p *procServer, n int, version string) []*procAgent {
	var et protocol.EnrollTokenCreated
	if err := p.call(ctx, "POST", "/v1/enroll-tokens", p.tok, protocol.EnrollTokenRequest{Uses: n}, &et); err != nil {
		t.Fatal(err)
	}
	agents := make([]*procAgent, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				name := fmt.Sprintf("bench-%05d", i)
				req := protocol.EnrollRequest{ProtocolVersion: protocol.Version, EnrollmentToken: et.Secret, Name: name, Platform: "linux/amd64", OSFamily: "linux",
					Version: version, Supervised: true, Fingerprint: "fp-" + name, Labels: map[string]string{"bench": "1"}}
				var er protocol.EnrollResponse
				if err := p.call(ctx, "POST", "/v1/agent/enroll", "", req, &er); err != nil {
					t.Error(err)
					return
				}
				agents[i] = &procAgent{id: er.AgentID, cred: er.Credential, acked: map[string]string{}, st: protocol.Status{ProtocolVersion: 1,
					Fingerprint: req.Fingerprint, Name: name, Platform: req.Platform, OSFamily: req.OSFamily, Version: version, Supervised: true}}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return agents
}

// TestBenchCheckinCapacity holds MOLT_BENCH_AGENTS idle agents in long
// polls against a real molt serve and prints check-in latency (without the
// long-poll wait) and the server's RSS.
func TestBenchCheckinCapacity(t *testing.T) {
	if os.Getenv("MOLT_BENCH") == "" {
		t.Skip("set MOLT_BENCH=1 (scripts/bench-server.sh)")
	}
	n := benchEnv(t, "MOLT_BENCH_AGENTS", 10000)
	poll := time.Duration(benchEnv(t, "MOLT_BENCH_POLL_SECONDS", 30)) * time.Second
	measure := time.Duration(benchEnv(t, "MOLT_BENCH_SECONDS", 60)) * time.Second
	data := t.TempDir()
	extra := []string{"--poll-wait", poll.String(), "--log-level", "warn"}
	if a := os.Getenv("MOLT_BENCH_DEBUG_LISTEN"); a != "" {
		extra = append(extra, "--debug-listen", a)
	}
	if m := os.Getenv("MOLT_BENCH_MEMORY_LIMIT_MB"); m != "" {
		extra = append(extra, "--memory-limit", m)
	}
	p := startProc(t, data, "127.0.0.1:0", extra...)
	defer p.stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rss0 := rssKB(p.cmd.Process.Pid)
	start := time.Now()
	agents := enrollMany(t, ctx, p, n, "1.0.0")
	t.Logf("enrolled %d agents in %s (%.0f/s)", n, time.Since(start).Round(time.Millisecond), float64(n)/time.Since(start).Seconds())
	h2 := os.Getenv("MOLT_BENCH_HTTP2") != ""
	// The agents trust the server's CA as system roots: a ca_file per
	// agent would copy the system pool 10,000 times in this one process
	// (hundreds of MB and GC work that would show up as check-in latency),
	// where each real agent has one.
	t.Setenv("SSL_CERT_FILE", filepath.Join(data, "tls", "ca.pem"))
	clientFor := func(a *procAgent) *http.Client {
		if h2 {
			// For comparison: one HTTP/2 connection per agent.
			tr := p.cli.Transport.(*http.Transport).Clone()
			tr.ForceAttemptHTTP2 = true
			return &http.Client{Transport: tr, Timeout: 5 * time.Minute}
		}
		// Exactly the real agent's client: its transport (HTTP/1.1,
		// keep-alive, its timeouts) and credential, one per agent.
		hc, err := agent.NewHTTPClient(&config.Config{Server: p.url}, func() string { return a.cred })
		if err != nil {
			t.Error(err)
			return nil
		}
		return hc
	}
	var mu sync.Mutex
	var lat []time.Duration
	var errs, count, newConns atomic.Int64
	var measuring atomic.Bool
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Agents start spread over one poll period, as a fleet does.
			select {
			case <-time.After(rand.N(poll)):
			case <-ctx.Done():
				return
			}
			cli := clientFor(a)
			if cli == nil {
				return
			}
			// What the agent sends (agent.Client.Checkin): its status and
			// the wait it learned.
			body := []byte(fmt.Sprintf(`{"status":{"protocol_version":1,"fingerprint":%q,"platform":"linux/amd64","os_family":"linux","version":"1.0.0","supervised":true,"labels":{"bench":"1"}},"wait_seconds":%d}`, a.st.Fingerprint, int(poll/time.Second)))
			for ctx.Err() == nil {
				// Counts check-ins that needed a new connection: kept-alive
				// connections are the agents' normal case.
				tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) {
					if !ci.Reused && measuring.Load() {
						newConns.Add(1)
					}
				}})
				req, _ := http.NewRequestWithContext(tctx, "POST", p.url+"/v1/agent/checkin", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if h2 {
					req.Header.Set("Authorization", "Bearer "+a.cred)
				}
				t0 := time.Now()
				resp, err := cli.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
						time.Sleep(time.Second)
					}
					continue
				}
				var buf [4096]byte
				for {
					if _, err := resp.Body.Read(buf[:]); err != nil {
						break
					}
				}
				resp.Body.Close()
				held, _ := strconv.Atoi(resp.Header.Get("Molt-Held-Ms"))
				d := time.Since(t0) - time.Duration(held)*time.Millisecond
				if resp.StatusCode != 200 {
					errs.Add(1)
				}
				if measuring.Load() {
					count.Add(1)
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}
			}
		}()
	}
	// Warm up: every agent has checked in at least once.
	time.Sleep(poll + 5*time.Second)
	h0 := p.checkinBuckets(t)
	measuring.Store(true)
	mstart := time.Now()
	time.Sleep(measure)
	measuring.Store(false)
	elapsed := time.Since(mstart)
	h1 := p.checkinBuckets(t)
	rss := rssKB(p.cmd.Process.Pid)
	genRSS := rssKB(os.Getpid())
	if a := os.Getenv("MOLT_BENCH_DEBUG_LISTEN"); a != "" {
		if resp, err := http.Get("http://" + a + "/debug/pprof/heap"); err == nil {
			f, _ := os.Create(os.Getenv("MOLT_BENCH_HEAP_OUT"))
			io.Copy(f, resp.Body)
			f.Close()
			resp.Body.Close()
		}
	}
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	proto := "http/1.1"
	if h2 {
		proto = "h2"
	}
	fmt.Printf("BENCH checkin proto=%s agents=%d poll=%s measured=%s checkins=%d rate=%.0f/s server_p99<=%s client p50=%s p99=%s max=%s errors=%d new_connections=%d rss_start=%dMB rss=%dMB rss_per_1000_agents=%.1fMB loadgen_rss=%dMB\n",
		proto, n, poll, elapsed.Round(time.Second), count.Load(), float64(count.Load())/elapsed.Seconds(), bucketQuantile(h0, h1, 0.99),
		percentile(lat, 0.50).Round(time.Microsecond), percentile(lat, 0.99).Round(time.Microsecond), percentile(lat, 1).Round(time.Microsecond),
		errs.Load(), newConns.Load(), rss0/1024, rss/1024, float64(rss-rss0)/1024/float64(n)*1000, genRSS/1024)
}

// checkinBuckets reads the server's cumulative check-in histogram.
func (p *procServer) checkinBuckets(t *testing.T) map[string]float64 {
	req, _ := http.NewRequest("GET", p.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+p.tok)
	resp, err := p.cli.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, `molt_checkin_duration_seconds_bucket{le="`); ok {
			le, v, _ := strings.Cut(rest, `"} `)
			out[le], _ = strconv.ParseFloat(v, 64)
		}
	}
	return out
}

// bucketQuantile is the upper bound of the histogram bucket holding
// quantile q of the observations between two scrapes.
func bucketQuantile(h0, h1 map[string]float64, q float64) string {
	total := h1["+Inf"] - h0["+Inf"]
	for _, b := range latencyBuckets {
		le := strconv.FormatFloat(b, 'g', -1, 64)
		if total > 0 && h1[le]-h0[le] >= q*total {
			return (time.Duration(b * float64(time.Second))).String()
		}
	}
	return "+Inf"
}

// TestBenchRun upgrades MOLT_BENCH_RUN_AGENTS simulated agents in one run
// with max-concurrent MOLT_BENCH_MAX_CONCURRENT and prints the time to
// complete and the most deployments ever in progress at once, computed
// from the deployments' start and end times.
func TestBenchRun(t *testing.T) {
	if os.Getenv("MOLT_BENCH") == "" {
		t.Skip("set MOLT_BENCH=1 (scripts/bench-server.sh)")
	}
	n := benchEnv(t, "MOLT_BENCH_RUN_AGENTS", 1000)
	maxc := benchEnv(t, "MOLT_BENCH_MAX_CONCURRENT", 100)
	data := t.TempDir()
	p := startProc(t, data, "127.0.0.1:0", "--poll-wait", "10s", "--log-level", "warn")
	defer p.stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, sk := testKey()
	for _, v := range []string{"1.0.0", "2.0.0"} {
		if err := p.call(ctx, "POST", "/v1/releases", p.tok, makePack(t, sk, v, "", "linux/amd64"), nil); err != nil {
			t.Fatal(err)
		}
	}
	agents := enrollMany(t, ctx, p, n, "1.0.0")
	bp := *p
	bp.cli = p.benchClient(n + 10)
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Add(1)
		go func() { defer wg.Done(); a.loop(ctx, func() *procServer { return &bp }) }()
	}
	time.Sleep(2 * time.Second)
	start := time.Now()
	var run protocol.Run
	if err := p.call(ctx, "POST", "/v1/runs", p.tok, protocol.RunRequest{Text: "bench", Selection: protocol.Selection{All: true}, Target: "2.0.0", MaxConcurrent: maxc}, &run); err != nil {
		t.Fatal(err)
	}
	var r protocol.Run
	for {
		if err := p.call(ctx, "GET", "/v1/runs/"+run.ID, p.tok, nil, &r); err != nil {
			t.Fatal(err)
		}
		if r.Status != protocol.RunRunning || time.Since(start) > 15*time.Minute {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	took := time.Since(start)
	cancel()
	wg.Wait()
	var rep protocol.RunReport
	if err := p.call(context.Background(), "GET", "/v1/runs/"+run.ID+"/report", p.tok, nil, &rep); err != nil {
		t.Fatal(err)
	}
	type edge struct {
		at time.Time
		d  int
	}
	var edges []edge
	for _, d := range rep.Deployments {
		if !d.Started.IsZero() {
			edges = append(edges, edge{d.Started, 1}, edge{d.Ended, -1})
		}
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at.Equal(edges[j].at) {
			return edges[i].d < edges[j].d // an end frees its slot before a start at the same instant takes it
		}
		return edges[i].at.Before(edges[j].at)
	})
	peak, cur := 0, 0
	for _, e := range edges {
		cur += e.d
		peak = max(peak, cur)
	}
	fmt.Printf("BENCH run agents=%d max_concurrent=%d status=%s succeeded=%d took=%s peak_in_progress=%d\n",
		n, maxc, r.Status, r.Counts[protocol.StateSucceeded], took.Round(time.Millisecond), peak)
	if peak > maxc {
		t.Errorf("%d deployments in progress at once, above the limit %d", peak, maxc)
	}
	if r.Status != protocol.RunEndedOK {
		t.Errorf("run %s: %+v", r.Status, r.Counts)
	}
}
