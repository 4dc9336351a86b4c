package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// TestBenchRun upgrades MOLT_BENCH_RUN_AGENTS simulated agents in one run
// with max-concurrent MOLT_BENCH_MAX_CONCURRENT and prints the time to
// complete and the most deployments ever in progress at once, computed
// from the deployments' start and end times.
func TestBenchRun(t *testing.T) {
	if os.Getenv("MOLT_BENCH") == "" {
		t.Skip("set MOLT_BENCH=1 (scripts/bench-server.sh)")
	}
	n := benchEnv(t, "MOLT_BENCH_RUN_AGENTS", 1000)
	// MOLT_BENCH_MAX_CONCURRENT is a count or a share ("5%");
	// MOLT_BENCH_CANARY and MOLT_BENCH_WAVES ("1%,10%,100%") add rollout
	// control.
	var controls protocol.RunControls
	maxc := 100
	if v := os.Getenv("MOLT_BENCH_MAX_CONCURRENT"); v != "" {
		if p, ok := strings.CutSuffix(v, "%"); ok {
			f, err := strconv.ParseFloat(p, 64)
			if err != nil {
				t.Fatalf("MOLT_BENCH_MAX_CONCURRENT: %v", err)
			}
			controls.MaxConcurrentPercent, maxc = f, max(1, int(f/100*float64(n)))
		} else {
			maxc = benchEnv(t, "MOLT_BENCH_MAX_CONCURRENT", 100)
		}
	}
	controls.Canary = benchEnv(t, "MOLT_BENCH_CANARY", 0)
	if controls.Canary > 0 {
		controls.CanarySoakSeconds = 1
	}
	if v := os.Getenv("MOLT_BENCH_WAVES"); v != "" {
		controls.Waves = strings.Split(v, ",")
	}
	data := t.TempDir()
	extra := []string{"--poll-wait", "10s", "--log-level", "warn"}
	profDir := os.Getenv("MOLT_BENCH_PROFILE_DIR")
	debugAddr := ""
	if profDir != "" {
		debugAddr = freeAddr(t)
		extra = append(extra, "--debug-listen", debugAddr)
	}
	bs := startBenchServers(t, data, extra...)
	defer bs.stop()
	p := bs.servers[0] // leads
	rssStart, _ := bs.sample()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, sk := testKey()
	for _, v := range []string{"1.0.0", "2.0.0"} {
		if err := p.call(ctx, "POST", "/v1/releases", p.tok, makePack(t, sk, v, "", "linux/amd64"), nil); err != nil {
			t.Fatal(err)
		}
	}
	agents := enrollMany(t, ctx, p, n, "1.0.0")
	// Agents are dealt out over the servers (bench_scale_test.go).
	var bps []*procServer
	for _, s := range bs.servers {
		bp := *s
		bp.cli = s.benchClient(n + 10)
		bps = append(bps, &bp)
	}
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Add(1)
		go func() { defer wg.Done(); a.loop(ctx, func() *procServer { return bps[i%len(bps)] }) }()
	}
	// The run starts once every agent checked in: one that has not yet
	// would wait as "never connected", which measures the load generator.
	for deadline := time.Now().Add(2 * time.Minute); ; {
		on, err := p.onlineAgents()
		if err != nil {
			t.Fatal(err)
		}
		if on >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d agents online after 2 minutes", on, n)
		}
		time.Sleep(500 * time.Millisecond)
	}
	pid := p.cmd.Process.Pid
	commits0, _ := p.metric("molt_db_commits_total", "")
	changes0, _ := p.metric("molt_db_changes_total", "")
	sched0, _ := p.metric("molt_scheduler_seconds_total", "")
	started0, _ := p.metric("molt_scheduler_started_total", "")
	cpu0, gen0 := cpuSeconds(pid), cpuSeconds(os.Getpid())
	srv0, pg0 := bs.sample()
	start := time.Now()
	if profDir != "" {
		go func() {
			if err := fetchTo("http://"+debugAddr+"/debug/pprof/profile?seconds=10", filepath.Join(profDir, "run.server.cpu.pprof")); err != nil {
				t.Log(err)
			}
		}()
	}
	var run protocol.Run
	if err := p.call(ctx, "POST", "/v1/runs", p.tok, protocol.RunRequest{Text: "bench", Selection: protocol.Selection{All: true}, Target: "2.0.0", MaxConcurrent: maxc, RunControls: controls}, &run); err != nil {
		t.Fatal(err)
	}
	var r protocol.Run
	apiPeak := 0 // deployments in progress, as the API said, asked of each server in turn
	for k := 0; ; k++ {
		r = protocol.Run{} // json would merge the counts into the last answer's
		if err := bs.servers[k%len(bs.servers)].call(ctx, "GET", "/v1/runs/"+run.ID, p.tok, nil, &r); err != nil {
			t.Fatal(err)
		}
		apiPeak = max(apiPeak, inProgress(r))
		if r.Status != protocol.RunRunning || time.Since(start) > 15*time.Minute {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	took := time.Since(start)
	cpu1, gen1 := cpuSeconds(pid), cpuSeconds(os.Getpid())
	srv1, pg1 := bs.sample()
	commits, err := p.metric("molt_db_commits_total", "")
	if err != nil {
		t.Fatal(err)
	}
	changes, err := p.metric("molt_db_changes_total", "")
	if err != nil {
		t.Fatal(err)
	}
	commits, changes = commits-commits0, changes-changes0
	sched, err := p.metric("molt_scheduler_seconds_total", "")
	if err != nil {
		t.Fatal(err)
	}
	started, err := p.metric("molt_scheduler_started_total", "")
	if err != nil {
		t.Fatal(err)
	}
	sched, started = sched-sched0, started-started0
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
	done := r.Counts[protocol.StateSucceeded]
	perK := "unknown"
	if cpu0 >= 0 && cpu1 >= 0 && done > 0 {
		perK = fmt.Sprintf("%.2fs", (cpu1-cpu0)/float64(done)*1000)
	}
	waves := "none"
	if len(controls.Waves) > 0 {
		waves = strings.Join(controls.Waves, ",")
	}
	fmt.Printf("BENCH run store=%s replicas=%d agents=%d max_concurrent=%d canary=%d waves=%s poll=10s report_gap=20ms | status=%s succeeded=%d took=%s deployments_per_s=%.0f peak_in_progress=%d server_cpu=%s server_cpu_per_1000_deployments=%s load_generator_cpu=%s commits=%.0f changes_per_commit=%.1f scheduler_ms_per_start=%.3f\n",
		bs.store, len(bs.servers), n, maxc, controls.Canary, waves, r.Status, done, took.Round(time.Millisecond), float64(done)/took.Seconds(), peak, cpuUse(cpu0, cpu1, took), perK, cpuUse(gen0, gen1, took),
		commits, changes/max(commits, 1), sched*1000/max(started, 1))
	var shares []int
	for i := range bs.servers {
		shares = append(shares, len(bs.share(agents, i)))
	}
	bs.printServers("run", shares, rssStart, srv0, srv1, pg0, pg1, took)
	printScaleRun(bs, n, maxc, r, took, peak, apiPeak, srv0, srv1, pg0, pg1)
	checkWaveOrder(t, rep)
	if peak > maxc {
		t.Errorf("%d deployments in progress at once, above the limit %d", peak, maxc)
	}
	if apiPeak > maxc {
		t.Errorf("the API showed %d deployments in progress at once, above the limit %d", apiPeak, maxc)
	}
	if r.Status != protocol.RunEndedOK {
		t.Errorf("run %s: %+v", r.Status, r.Counts)
	}
}

// checkWaveOrder checks from the deployments' times that no wave started
// before the wave ahead of it was done: when its first deployment
// started, at least 90 % of the wave before had ended.
func checkWaveOrder(t *testing.T, rep protocol.RunReport) {
	first := map[int]time.Time{}
	size := map[int]int{}
	for _, d := range rep.Deployments {
		size[d.Wave]++
		if !d.Started.IsZero() && (first[d.Wave].IsZero() || d.Started.Before(first[d.Wave])) {
			first[d.Wave] = d.Started
		}
	}
	for w := 1; size[w] > 0; w++ {
		ended := 0
		for _, d := range rep.Deployments {
			if d.Wave == w-1 && !d.Ended.IsZero() && !d.Ended.After(first[w]) {
				ended++
			}
		}
		if ended*100 < 90*size[w-1] {
			t.Errorf("wave %d started at %s with %d of %d of wave %d ended", w, first[w].Format(time.RFC3339Nano), ended, size[w-1], w-1)
		}
	}
}

// onlineAgents sums molt_agents{status="online"} from /metrics.
func (p *procServer) onlineAgents() (int, error) {
	n, err := p.metric("molt_agents", `status="online"`)
	return int(n), err
}

// metric sums the samples of the metric name whose line holds match.
func (p *procServer) metric(name, match string) (float64, error) {
	req, _ := http.NewRequest("GET", p.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+p.tok)
	resp, err := p.cli.Do(req)
	if err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	n := 0.0
	for _, l := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(l, name)
		if ok && (strings.HasPrefix(rest, "{") || strings.HasPrefix(rest, " ")) && strings.Contains(l, match) {
			v, _ := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			n += v
		}
	}
	return n, nil
}
