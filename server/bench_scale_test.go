package server

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/protocol"
)

// The servers the benchmarks measure (scripts/bench-scale.sh): one molt
// serve on SQLite (the default), or MOLT_BENCH_REPLICAS replicas of molt
// serve on one PostgreSQL database (MOLT_BENCH_STORE=postgres), a
// throwaway cluster the benchmark starts (internal/pgtest). The first
// replica starts alone and leads; the others share its dev certificate,
// as replicas behind one name do, and follow: they pass every request to
// the leader.

// benchServers are the molt serve processes of one benchmark.
type benchServers struct {
	store   string        // sqlite or postgres
	servers []*procServer // the first leads
	// pgPIDs lists PostgreSQL's processes now (nil on SQLite), to measure
	// what the database costs besides molt.
	pgPIDs func() []int
}

func startBenchServers(t *testing.T, data string, extra ...string) *benchServers {
	t.Helper()
	store := envOr("MOLT_BENCH_STORE", "sqlite")
	n := benchEnv(t, "MOLT_BENCH_REPLICAS", 1)
	switch {
	case store != "sqlite" && store != "postgres":
		t.Fatalf("MOLT_BENCH_STORE=%q: want sqlite or postgres", store)
	case n < 1:
		t.Fatalf("MOLT_BENCH_REPLICAS=%d: want 1 or more", n)
	case store == "sqlite" && n > 1:
		t.Fatalf("MOLT_BENCH_REPLICAS=%d: replicas share one PostgreSQL database: set MOLT_BENCH_STORE=postgres too", n)
	case store == "sqlite":
		return &benchServers{store: store, servers: []*procServer{startProc(t, data, "127.0.0.1:0", extra...)}}
	}
	dsn, pids := benchPostgres(t)
	b := &benchServers{store: store, pgPIDs: pids}
	for i := range n {
		dir := data
		if i > 0 {
			dir = t.TempDir()
			if err := e2etest.CopyDir(filepath.Join(data, "tls"), filepath.Join(dir, "tls")); err != nil {
				t.Fatal(err)
			}
		}
		b.servers = append(b.servers, startReplicaProc(t, dir, dsn, b.servers, extra...))
	}
	return b
}

// stop stops the followers first: a leader stopped first would hand its
// lease to one of them, which would load the whole state to stop.
func (b *benchServers) stop() {
	for i := len(b.servers) - 1; i >= 0; i-- {
		b.servers[i].stop()
	}
}

// share is the agents of server i: the fleet is dealt out in turn, as a
// load balancer or a list of server URLs spreads it.
func (b *benchServers) share(agents []*procAgent, i int) []*procAgent {
	var out []*procAgent
	for j := i; j < len(agents); j += len(b.servers) {
		out = append(out, agents[j])
	}
	return out
}

// startReplicaProc starts one replica of molt serve on the PostgreSQL
// database dsn, listening on a port of its own and advertising it; the
// first (no others yet) waits until it leads and wrote the admin token,
// which the others use.
func startReplicaProc(t *testing.T, data, dsn string, others []*procServer, extra ...string) *procServer {
	t.Helper()
	bin, err := buildMolt()
	if err != nil {
		t.Fatalf("build molt: %v", err)
	}
	key, _ := testKey()
	addr := freeAddr(t)
	p := &procServer{t: t, bin: bin, data: data, addr: addr, url: "https://" + addr,
		args: append([]string{"serve", "--dev", "--data", data, "--listen", addr, "--trusted-key", key.String(), "--log-file", filepath.Join(data, "server.log"),
			"--store", dsn, "--advertise", "https://" + addr}, extra...)}
	p.cmd = exec.Command(p.bin, p.args...)
	out, _ := p.cmd.StdoutPipe()
	stderr, err := os.Create(filepath.Join(data, "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	p.cmd.Stderr = stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			// Why a replica failed is in its logs, removed with the test.
			t.Logf("replica %s (pid %d): last log lines:\n%s\nstderr:\n%s", addr, p.cmd.Process.Pid, tail(filepath.Join(data, "server.log"), 15), tail(filepath.Join(data, "stderr.log"), 15))
		}
	})
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody listens any more; keep draining
			}
		}
	}()
	lead := len(others) == 0
	for listening, leads := false, !lead; !listening || !leads; {
		select {
		case l := <-lines:
			listening = listening || strings.HasPrefix(l, "listening on ")
			leads = leads || strings.Contains(l, " leads (lease token ")
		case <-time.After(60 * time.Second):
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
			t.Fatalf("replica %s: neither listening nor leading after 60 s", addr)
		}
	}
	ca, err := os.ReadFile(filepath.Join(p.data, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	p.cli = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 100, ForceAttemptHTTP2: true}}
	if !lead {
		p.tok = others[0].tok
		return p
	}
	// The token is written just after the lead is taken.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		tok, err := os.ReadFile(filepath.Join(p.data, "admin.token"))
		if err == nil && len(strings.TrimSpace(string(tok))) > 0 {
			p.tok = strings.TrimSpace(string(tok))
			return p
		}
		if time.Now().After(deadline) {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
			t.Fatalf("replica %s leads but wrote no admin token in 30 s: %v", addr, err)
		}
	}
}

// procSample is what one process costs at one moment.
type procSample struct {
	rssKB int     // VmRSS, -1 unknown
	cpu   float64 // user+system seconds so far, -1 unknown
	fds   int     // open descriptors, -1 unknown
}

func sampleProc(pid int) procSample {
	fds := -1
	if es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		fds = len(es)
	}
	return procSample{rssKB: rssKB(pid), cpu: cpuSeconds(pid), fds: fds}
}

// sample measures every server, in order, and PostgreSQL: its CPU summed
// over its processes and its memory as their proportional set size
// (their shared buffers counted once).
func (b *benchServers) sample() (servers []procSample, pg procSample) {
	for _, p := range b.servers {
		servers = append(servers, sampleProc(p.cmd.Process.Pid))
	}
	pg = procSample{rssKB: -1, cpu: -1, fds: -1}
	if b.pgPIDs == nil {
		return servers, pg
	}
	pg = procSample{fds: 0}
	for _, pid := range b.pgPIDs() {
		pg.rssKB += pssKB(pid)
		if c := cpuSeconds(pid); c > 0 {
			pg.cpu += c
		}
		pg.fds++ // here: processes
	}
	return servers, pg
}

// pssKB is a process's proportional set size (/proc/PID/smaps_rollup),
// 0 when it cannot be read (the process ended).
func pssKB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Pss:"); ok {
			var n int
			fmt.Sscanf(strings.TrimSpace(v), "%d", &n)
			return n
		}
	}
	return 0
}

// role is what a server says it is on /healthz: leader or follower for
// a replica, single for a server on SQLite.
func (p *procServer) role() string {
	resp, err := p.cli.Get(p.url + "/healthz")
	if err != nil {
		return "unknown"
	}
	resp.Body.Close()
	if r := resp.Header.Get("X-Molt-Role"); r != "" {
		return r
	}
	return "single"
}

// printServers prints one line per server (its share of the agents, its
// role, memory, CPU while measuring, descriptors, log complaints) and
// one for PostgreSQL.
//
// rssStart is from before the agents came; CPU is from s0 to s1, over d.
func (b *benchServers) printServers(bench string, shares []int, rssStart, s0, s1 []procSample, pg0, pg1 procSample, d time.Duration) {
	for i, p := range b.servers {
		fmt.Printf("BENCH %s server=%d role=%s store=%s agents=%d | rss_start=%s rss=%s rss_per_1000_agents=%s cpu=%s fds=%d",
			bench, i, p.role(), b.store, shares[i], mb(rssStart[i].rssKB), mb(s1[i].rssKB), perThousand(rssStart[i].rssKB, s1[i].rssKB, shares[i]), cpuUse(s0[i].cpu, s1[i].cpu, d), s1[i].fds)
		if n, first := logComplaints(filepath.Join(p.data, "server.log")); n > 0 {
			fmt.Printf(" log_warnings=%d first: %s", n, first)
		}
		fmt.Println()
	}
	if b.pgPIDs != nil {
		fmt.Printf("BENCH %s postgres processes=%d | pss=%s cpu=%s\n", bench, pg1.fds, mb(pg1.rssKB), cpuUse(pg0.cpu, pg1.cpu, d))
	}
}

// joined formats one figure per server, server 0 first: 80MB/95MB.
func joined(s []procSample, f func(procSample) string) string {
	var out []string
	for _, x := range s {
		out = append(out, f(x))
	}
	return strings.Join(out, "/")
}

// printScaleCheckin prints the check-in benchmark's figures on one line,
// which scripts/bench-scale.sh sets side by side with other runs'.
func printScaleCheckin(b *benchServers, n int, late []time.Duration, serverP99 string, errs int64, s0, s1 []procSample, pg0, pg1 procSample, d time.Duration, loadgenCPU string) {
	pgPSS, pgCPU := "none", "none"
	var c []string
	for i := range s1 {
		c = append(c, cpuUse(s0[i].cpu, s1[i].cpu, d))
	}
	cpus := strings.Join(c, "/")
	if b.pgPIDs != nil {
		pgPSS, pgCPU = mb(pg1.rssKB), cpuUse(pg0.cpu, pg1.cpu, d)
	}
	fmt.Printf("BENCH scale checkin store=%s replicas=%d agents=%d p50=%s p99=%s p99.9=%s max=%s server_p99_le=%s errors=%d rss=%s cpu=%s fds=%s postgres_pss=%s postgres_cpu=%s loadgen_cpu=%s\n",
		b.store, len(b.servers), n, quantile(late, 0.5), quantile(late, 0.99), quantile(late, 0.999), quantile(late, 1), serverP99, errs,
		joined(s1, func(x procSample) string { return mb(x.rssKB) }),
		cpus,
		joined(s1, func(x procSample) string { return fmt.Sprint(x.fds) }), pgPSS, pgCPU, loadgenCPU)
}

// printScaleRun prints the run benchmark's figures on one line, for
// scripts/bench-scale.sh. peak is computed from the deployments' start
// and end times, apiPeak from the run's counts sampled during the run.
func printScaleRun(b *benchServers, n, maxc int, r protocol.Run, took time.Duration, peak, apiPeak int, s0, s1 []procSample, pg0, pg1 procSample) {
	var c, rss []string
	for i := range s1 {
		c = append(c, cpuUse(s0[i].cpu, s1[i].cpu, took))
		rss = append(rss, mb(s1[i].rssKB))
	}
	pgCPU := "none"
	if b.pgPIDs != nil {
		pgCPU = cpuUse(pg0.cpu, pg1.cpu, took)
	}
	fmt.Printf("BENCH scale run store=%s replicas=%d agents=%d max_concurrent=%d status=%s succeeded=%d took=%s deployments_per_s=%.0f peak_in_progress=%d api_peak_in_progress=%d rss=%s cpu=%s postgres_cpu=%s\n",
		b.store, len(b.servers), n, maxc, r.Status, r.Counts[protocol.StateSucceeded], took.Round(time.Millisecond), float64(r.Counts[protocol.StateSucceeded])/took.Seconds(),
		peak, apiPeak, strings.Join(rss, "/"), strings.Join(c, "/"), pgCPU)
}

// tail is the last n lines of a file.
func tail(file string, n int) string {
	b, _ := os.ReadFile(file)
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// printShare prints the latency of the agents of server i alone.
func printShare(i int, r *idleResult) {
	late := slices.Clone(r.Late)
	slices.Sort(late)
	fmt.Printf("BENCH checkin server=%d its_agents: checkins=%d late p50=%s p99=%s p99.9=%s max=%s errors=%d\n",
		i, r.Count, quantile(late, 0.5), quantile(late, 0.99), quantile(late, 0.999), quantile(late, 1), r.errors())
}
