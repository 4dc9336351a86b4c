package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fdHeadroom is what a process needs besides one descriptor per agent:
// the listener, the database and its journal, logs, the runtime.
const fdHeadroom = 100

// TestBenchCheckinCapacity holds MOLT_BENCH_AGENTS idle agents in long
// polls against a real molt serve (another process) and prints check-in
// latency without the long-poll wait, the server's histogram, CPU and RSS.
// Any failed check-in, refused dial or early answer fails it.
func TestBenchCheckinCapacity(t *testing.T) {
	if os.Getenv("MOLT_BENCH") == "" {
		t.Skip("set MOLT_BENCH=1 (scripts/bench-server.sh)")
	}
	n := benchEnv(t, "MOLT_BENCH_AGENTS", 10000)
	poll := time.Duration(benchEnv(t, "MOLT_BENCH_POLL_SECONDS", 30)) * time.Second
	measure := time.Duration(benchEnv(t, "MOLT_BENCH_SECONDS", 60)) * time.Second
	if measure <= poll {
		t.Fatalf("MOLT_BENCH_SECONDS=%d: the measurement must be longer than the poll wait (%s), which a check-in sent in it takes to be answered", int(measure/time.Second), poll)
	}
	// The load generator holds one connection per agent, as does the
	// server: both need a descriptor limit above the agent count. Go
	// raises its soft limit to the hard one at start, and molt serve
	// does so too, so the hard limit is what counts.
	// With replicas, each holds its share, in a load generator of its own.
	per := (n + benchEnv(t, "MOLT_BENCH_REPLICAS", 1) - 1) / benchEnv(t, "MOLT_BENCH_REPLICAS", 1)
	if soft, hard, ok := fdLimit(); ok && uint64(per+fdHeadroom) > soft {
		t.Fatalf("MOLT_BENCH_AGENTS=%d needs %d file descriptors in each load generator and molt serve, but the limit is %d (hard %d): at most %d agents per server here, or raise the hard limit (ulimit -Hn, LimitNOFILE)",
			n, per+fdHeadroom, soft, hard, int(hard)-fdHeadroom)
	}
	data := t.TempDir()
	// Info: net/http's own complaints (a refused accept, a TLS handshake
	// cut off) are logged at info; the server logs nothing per check-in.
	extra := []string{"--poll-wait", poll.String(), "--log-level", "info"}
	profDir := os.Getenv("MOLT_BENCH_PROFILE_DIR")
	debugAddr := os.Getenv("MOLT_BENCH_DEBUG_LISTEN")
	if debugAddr == "" && profDir != "" {
		debugAddr = freeAddr(t)
	}
	if debugAddr != "" {
		extra = append(extra, "--debug-listen", debugAddr)
	}
	if m := os.Getenv("MOLT_BENCH_MEMORY_LIMIT_MB"); m != "" {
		extra = append(extra, "--memory-limit", m)
	}
	bs := startBenchServers(t, data, extra...)
	defer bs.stop()
	p := bs.servers[0] // leads
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pid := p.cmd.Process.Pid
	smp0, _ := bs.sample()
	start := time.Now()
	agents := enrollMany(t, ctx, p, n, "1.0.0")
	t.Logf("enrolled %d agents in %s (%.0f/s)", n, time.Since(start).Round(time.Millisecond), float64(n)/time.Since(start).Seconds())
	h2 := os.Getenv("MOLT_BENCH_HTTP2") != ""
	// The agents trust the server's CA as system roots: a ca_file per
	// agent would copy the system pool 10,000 times in this one process
	// (hundreds of MB and GC work that would show up as check-in latency),
	// where each real agent has one.
	t.Setenv("SSL_CERT_FILE", filepath.Join(data, "tls", "ca.pem"))
	// Warm up: every agent has checked in at least once and been answered;
	// then measure. Each server's share of the fleet beyond the first runs
	// in a load generator process of its own (bench_idle_test.go).
	mstart := time.Now().Add(poll + 5*time.Second)
	mend := mstart.Add(measure)
	var shards []func() (*idleResult, error)
	var shares []int
	for i := range bs.servers {
		shares = append(shares, len(bs.share(agents, i)))
		if i > 0 {
			shards = append(shards, idleShard(t, t.TempDir(), bs.servers[i].url, bs.share(agents, i), poll, mstart, mend, h2))
		}
	}
	var res *idleResult
	fleetDone := make(chan struct{})
	go func() {
		defer close(fleetDone)
		res = idleFleet(ctx, p.url, bs.share(agents, 0), poll, mstart, mend, h2)
	}()
	if profDir != "" && os.Getenv("MOLT_BENCH_PROFILE_AT") == "start" {
		// While the agents connect (MOLT_BENCH_PROFILE_AT=start).
		go benchProfiles(t, profDir, debugAddr, poll/3, 10*time.Second)
	}
	time.Sleep(time.Until(mstart))
	h0, err := p.checkinBuckets()
	if err != nil {
		t.Fatal(err)
	}
	cpu0, gcpu0 := cpuSeconds(pid), cpuSeconds(os.Getpid())
	srv0, pg0 := bs.sample()
	if profDir != "" && os.Getenv("MOLT_BENCH_PROFILE_AT") != "start" {
		go benchProfiles(t, profDir, debugAddr, measure/3, min(10*time.Second, measure/3))
	}
	time.Sleep(time.Until(mend))
	elapsed := time.Since(mstart)
	// Only check-ins sent in the first elapsed-poll are answered in time
	// to be counted.
	sent := elapsed - poll
	cpu1, gcpu1 := cpuSeconds(pid), cpuSeconds(os.Getpid())
	srv1, pg1 := bs.sample()
	h1, err := p.checkinBuckets()
	if err != nil {
		t.Fatal(err)
	}
	genRSS := rssKB(os.Getpid())
	if f := os.Getenv("MOLT_BENCH_HEAP_OUT"); f != "" && debugAddr != "" {
		if err := fetchTo("http://"+debugAddr+"/debug/pprof/heap", f); err != nil {
			t.Error(err)
		}
	}
	cancel()
	<-fleetDone
	genCPU, genRSSs := cpuUse(gcpu0, gcpu1, elapsed), mb(genRSS)
	if len(shards) > 0 {
		printShare(0, res)
	}
	for i, wait := range shards {
		r, err := wait()
		if err != nil {
			t.Fatal(err)
		}
		printShare(i+1, r)
		res.merge(r)
		genCPU += "+" + cpuUse(0, r.CPU, elapsed)
		genRSSs += "+" + mb(r.RSSKB)
	}
	late, connect := res.Late, res.Connect
	proto := "http/1.1"
	if h2 {
		proto = "h2"
	}
	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
	sort.Slice(connect, func(i, j int) bool { return connect[i] < connect[j] })
	q := func(p float64) string { return quantile(late, p) }
	errs := res.errors()
	rss0, rss := smp0[0].rssKB, srv1[0].rssKB
	fmt.Printf("BENCH checkin store=%s replicas=%d agents=%d poll=%s proto=%s start_spread=%s warmup=%s measured=%s gogc=%s memory_limit_mb=%s | checkins=%d rate=%.0f/s client_late p50=%s p99=%s p99.9=%s max=%s server_p99<=%s errors=%d (requests=%d status=%d early=%d dials=%d) new_connections=%d rss_start=%s rss=%s rss_per_1000_agents=%s server_cpu=%s loadgen_cpu=%s loadgen_rss=%s\n",
		bs.store, len(bs.servers), n, poll, proto, poll, poll+5*time.Second, elapsed.Round(time.Second), envOr("GOGC", "50"), envOr("MOLT_BENCH_MEMORY_LIMIT_MB", "none"),
		res.Count, float64(res.Count)/sent.Seconds(), q(0.50), q(0.99), q(0.999), q(1), bucketQuantile(h0, h1, 0.99),
		errs, res.ReqErrs, res.Status, res.Early, res.DialErrs, res.NewConns,
		mb(rss0), mb(rss), perThousand(rss0, rss, shares[0]), cpuUse(cpu0, cpu1, elapsed), genCPU, genRSSs)
	fmt.Printf("BENCH checkin server_histogram %s\n", bucketDeltas(h0, h1))
	bs.printServers("checkin", shares, smp0, srv0, srv1, pg0, pg1, elapsed)
	fmt.Printf("BENCH checkin first_checkins=%d (dial and TLS handshake, %.0f agents starting per second) late p50=%s p99=%s max=%s\n",
		len(connect), float64(n)/poll.Seconds(), quantile(connect, 0.5), quantile(connect, 0.99), quantile(connect, 1))
	printScaleCheckin(bs, n, late, bucketQuantile(h0, h1, 0.99), errs, srv0, srv1, pg0, pg1, elapsed, genCPU)
	if errs > 0 {
		t.Errorf("%d check-ins failed under load (first: %s): the figures above are not a capacity", errs, res.FirstErr)
	}
	if len(late) == 0 {
		t.Errorf("no check-in answered while measuring")
	}
}

// quantile of sorted durations, unknown when there are none.
func quantile(d []time.Duration, p float64) string {
	if len(d) == 0 {
		return "unknown"
	}
	return d[min(len(d)-1, int(float64(len(d))*p))].Round(time.Microsecond).String()
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// mb formats a VmRSS in kB; -1 (unreadable) is unknown, never 0.
func mb(kb int) string {
	if kb < 0 {
		return "unknown"
	}
	return fmt.Sprintf("%dMB", kb/1024)
}

func perThousand(kb0, kb1, n int) string {
	if kb0 < 0 || kb1 < 0 || n == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.1fMB", float64(kb1-kb0)/1024/float64(n)*1000)
}

// cpuSeconds is the user+system CPU time of process pid from
// /proc/PID/stat, or -1 when it cannot be read.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// Fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// cpuUse is CPU seconds between two readings and the cores that makes.
func cpuUse(c0, c1 float64, d time.Duration) string {
	if c0 < 0 || c1 < 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.1fs(%.2f_cores)", c1-c0, (c1-c0)/d.Seconds())
}

// checkinBuckets reads the server's cumulative check-in histogram.
func (p *procServer) checkinBuckets() (map[string]float64, error) {
	req, _ := http.NewRequest("GET", p.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+p.tok)
	resp, err := p.cli.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	out := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, `molt_checkin_duration_seconds_bucket{le="`); ok {
			le, v, _ := strings.Cut(rest, `"} `)
			out[le], _ = strconv.ParseFloat(v, 64)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("metrics: no molt_checkin_duration_seconds histogram")
	}
	return out, nil
}

// bucketQuantile is the upper bound of the histogram bucket holding
// quantile q of the observations between two scrapes.
func bucketQuantile(h0, h1 map[string]float64, q float64) string {
	total := h1["+Inf"] - h0["+Inf"]
	if total == 0 {
		return "unknown"
	}
	for _, b := range latencyBuckets {
		le := strconv.FormatFloat(b, 'g', -1, 64)
		if h1[le]-h0[le] >= q*total {
			return (time.Duration(b * float64(time.Second))).String()
		}
	}
	return "+Inf"
}

// bucketDeltas lists the check-ins the server observed between two
// scrapes per bucket (not cumulative): le=<bound>:<count> ...
func bucketDeltas(h0, h1 map[string]float64) string {
	var b strings.Builder
	prev := 0.0
	for _, bound := range latencyBuckets {
		le := strconv.FormatFloat(bound, 'g', -1, 64)
		c := h1[le] - h0[le]
		fmt.Fprintf(&b, "le=%s:%.0f ", time.Duration(bound*float64(time.Second)), c-prev)
		prev = c
	}
	fmt.Fprintf(&b, "le=+Inf:%.0f", h1["+Inf"]-h0["+Inf"]-prev)
	return b.String()
}

// benchProfiles saves, for d after the given time, the server's
// CPU profile and execution trace (from --debug-listen) and the load
// generator's own, to tell a stalled server from a stalled client.
func benchProfiles(t *testing.T, dir, debugAddr string, after, d time.Duration) {
	time.Sleep(after)
	secs := strconv.Itoa(int(d / time.Second))
	var wg sync.WaitGroup
	for name, path := range map[string]string{"server.cpu.pprof": "/debug/pprof/profile?seconds=" + secs, "server.trace": "/debug/pprof/trace?seconds=" + secs} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fetchTo("http://"+debugAddr+path, filepath.Join(dir, name)); err != nil {
				t.Log(err)
			}
		}()
	}
	cf, err := os.Create(filepath.Join(dir, "loadgen.cpu.pprof"))
	if err == nil {
		defer cf.Close()
		if err := pprof.StartCPUProfile(cf); err == nil {
			defer pprof.StopCPUProfile()
		}
	}
	tf, err := os.Create(filepath.Join(dir, "loadgen.trace"))
	if err == nil {
		defer tf.Close()
		if err := trace.Start(tf); err == nil {
			defer trace.Stop()
		}
	}
	time.Sleep(d)
	wg.Wait()
}

func fetchTo(url, file string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// logComplaints counts the warnings, errors and net/http complaints in
// molt serve's JSON log (a refused accept, a TLS handshake cut off) and
// returns the first; the
// log is in the test's data directory, which is removed afterwards.
func logComplaints(path string) (int, string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, ""
	}
	n, first := 0, ""
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `"level":"warn"`) || strings.Contains(l, `"level":"error"`) || strings.Contains(l, `"logger":"http"`) {
			if n == 0 {
				first = l
			}
			n++
		}
	}
	return n, first
}
