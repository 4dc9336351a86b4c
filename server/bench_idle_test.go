package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/config"
	"github.com/moltfleet/molt/protocol"
)

// The idle agents of the check-in benchmark. One process holds one
// connection per agent, so the descriptor limit (ulimit -Hn) bounds the
// agents one load generator can hold: beyond one server, each server's
// share of the fleet runs in a load generator of its own, a child process
// running TestBenchIdleShard, and the measurements are merged.

// idleResult is what a load generator measured of its idle agents.
type idleResult struct {
	Late     []time.Duration // per check-in: answered this long after the server should have
	Connect  []time.Duration // the same for each agent's first check-in, which dials and shakes hands
	Count    int64           // check-ins measured
	ReqErrs  int64
	Status   int64 // answers other than 200
	Early    int64 // answered before the poll wait ended
	NewConns int64 // measured check-ins that dialed
	DialErrs int64
	FirstErr string
	// A child load generator's own CPU seconds and RSS while measuring.
	CPU   float64
	RSSKB int
}

func (r *idleResult) errors() int64 { return r.ReqErrs + r.Status + r.Early + r.DialErrs }

func (r *idleResult) merge(o *idleResult) {
	r.Late = append(r.Late, o.Late...)
	r.Connect = append(r.Connect, o.Connect...)
	r.Count += o.Count
	r.ReqErrs += o.ReqErrs
	r.Status += o.Status
	r.Early += o.Early
	r.NewConns += o.NewConns
	r.DialErrs += o.DialErrs
	if r.FirstErr == "" {
		r.FirstErr = o.FirstErr
	}
}

// idleFleet holds agents in long polls against the server at url until
// ctx ends. Check-ins sent from mstart on and answered before mend are
// measured; each agent's first check-in is reported on its own. h2 gives
// each agent an HTTP/2 connection instead of the real agent's client.
func idleFleet(ctx context.Context, url string, agents []*procAgent, poll time.Duration, mstart, mend time.Time, h2 bool) *idleResult {
	var (
		mu                                                   sync.Mutex
		res                                                  idleResult
		wg                                                   sync.WaitGroup
		count, reqErrs, badStatus, early, newConns, dialErrs atomic.Int64
	)
	noteErr := func(format string, args ...any) {
		mu.Lock()
		if res.FirstErr == "" {
			res.FirstErr = fmt.Sprintf(format, args...)
		}
		mu.Unlock()
	}
	clientFor := func(a *procAgent) *http.Client {
		if h2 {
			// For comparison: one HTTP/2 connection per agent (the CA is
			// the system's roots, SSL_CERT_FILE).
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.ForceAttemptHTTP2 = true
			return &http.Client{Transport: tr, Timeout: 5 * time.Minute}
		}
		// Exactly the real agent's client: its transport (HTTP/1.1,
		// keep-alive, its timeouts) and credential, one per agent.
		hc, err := agent.NewHTTPClient(&config.Config{Server: url}, func() string { return a.cred })
		if err != nil {
			noteErr("agent client: %v", err)
			reqErrs.Add(1)
			return nil
		}
		return hc
	}
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
			// Every dial counts, failed ones too: a check-in on a new
			// connection is the exception for an agent that keeps its
			// connection alive.
			var dialed atomic.Bool
			tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
				ConnectStart: func(string, string) { dialed.Store(true) },
				ConnectDone: func(_, addr string, err error) {
					if err != nil && ctx.Err() == nil {
						dialErrs.Add(1)
						noteErr("dial %s: %v", addr, err)
					}
				},
			})
			first := true
			for ctx.Err() == nil {
				dialed.Store(false)
				req, _ := http.NewRequestWithContext(tctx, "POST", url+"/v1/agent/checkin", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if h2 {
					req.Header.Set("Authorization", "Bearer "+a.cred)
				}
				t0 := time.Now()
				resp, err := cli.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						reqErrs.Add(1)
						noteErr("check-in: %v", err)
						time.Sleep(time.Second)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				took := time.Since(t0)
				if resp.StatusCode != 200 {
					badStatus.Add(1)
					noteErr("check-in: %s", resp.Status)
					continue
				}
				// Measured: check-ins sent after the warm-up and answered
				// before the end, so each is an idle agent's steady check-in
				// on its kept-alive connection; a dial among them is counted.
				// Each agent's first check-in is reported on its own: it
				// dials and shakes hands while the whole fleet does.
				measured := !t0.Before(mstart) && time.Now().Before(mend)
				wasFirst := first
				first = false
				if measured && dialed.Load() {
					newConns.Add(1)
				}
				if !measured && !wasFirst {
					continue
				}
				if measured {
					count.Add(1)
				}
				// Nothing wakes an idle fleet's polls: the server should
				// answer each when its hold (the poll wait) ends, timed from
				// when it read the check-in, which is after t0. What the
				// agent waits beyond that is the check-in's latency: the
				// request's way in, the server's processing, any lateness of
				// its answer, and the way back. (Molt-Held-Ms, the server's
				// own account of the hold, would hide a late answer.)
				if took < poll {
					early.Add(1)
					noteErr("check-in answered after %s, before its poll wait %s ended", took, poll)
					continue
				}
				mu.Lock()
				if wasFirst {
					res.Connect = append(res.Connect, took-poll)
				} else if measured {
					res.Late = append(res.Late, took-poll)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Count, res.ReqErrs, res.Status, res.Early, res.NewConns, res.DialErrs = count.Load(), reqErrs.Load(), badStatus.Load(), early.Load(), newConns.Load(), dialErrs.Load()
	return &res
}

// shardConfig is what a child load generator is given (MOLT_BENCH_SHARD
// names the file).
type shardConfig struct {
	URL    string
	Agents []shardAgent
	Poll   time.Duration
	Start  time.Time // measuring starts
	End    time.Time // and ends
	H2     bool
	Out    string // where the child writes its idleResult
}

type shardAgent struct{ ID, Cred, Fingerprint string }

// idleShard runs agents against url in a child process (this test binary,
// TestBenchIdleShard). wait returns its measurements once it ended, at
// the end of measuring.
func idleShard(t *testing.T, dir, url string, agents []*procAgent, poll time.Duration, mstart, mend time.Time, h2 bool) (wait func() (*idleResult, error)) {
	cfg := shardConfig{URL: url, Poll: poll, Start: mstart, End: mend, H2: h2, Out: filepath.Join(dir, "result.json")}
	for _, a := range agents {
		cfg.Agents = append(cfg.Agents, shardAgent{ID: a.id, Cred: a.cred, Fingerprint: a.st.Fingerprint})
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cf := filepath.Join(dir, "shard.json")
	if err := os.WriteFile(cf, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchIdleShard$", "-test.count=1", "-test.timeout=60m")
	cmd.Env = append(os.Environ(), "MOLT_BENCH_SHARD="+cf)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("load generator: %v", err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return func() (*idleResult, error) {
		if err := cmd.Wait(); err != nil {
			return nil, fmt.Errorf("load generator for %s: %w\n%s", url, err, out.Bytes())
		}
		b, err := os.ReadFile(cfg.Out)
		if err != nil {
			return nil, fmt.Errorf("load generator for %s: %w\n%s", url, err, out.Bytes())
		}
		var r idleResult
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("load generator for %s: %w", url, err)
		}
		return &r, nil
	}
}

// TestBenchIdleShard is a child load generator of
// TestBenchCheckinCapacity; it runs only when that test starts it.
func TestBenchIdleShard(t *testing.T) {
	f := os.Getenv("MOLT_BENCH_SHARD")
	if f == "" {
		t.Skip("a child of TestBenchCheckinCapacity (MOLT_BENCH_SHARD)")
	}
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	var cfg shardConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	agents := make([]*procAgent, len(cfg.Agents))
	for i, a := range cfg.Agents {
		agents[i] = &procAgent{id: a.ID, cred: a.Cred, st: protocol.Status{Fingerprint: a.Fingerprint}}
	}
	// Check-ins in flight at the end are not measured: the fleet stops
	// just after it.
	ctx, cancel := context.WithDeadline(context.Background(), cfg.End.Add(time.Second))
	defer cancel()
	own := make(chan [2]float64, 1) // CPU seconds while measuring, RSS at the end
	go func() {
		time.Sleep(time.Until(cfg.Start))
		cpu0 := cpuSeconds(os.Getpid())
		time.Sleep(time.Until(cfg.End))
		cpu1, cpu := cpuSeconds(os.Getpid()), -1.0
		if cpu0 >= 0 && cpu1 >= 0 {
			cpu = cpu1 - cpu0
		}
		own <- [2]float64{cpu, float64(rssKB(os.Getpid()))}
	}()
	r := idleFleet(ctx, cfg.URL, agents, cfg.Poll, cfg.Start, cfg.End, cfg.H2)
	m := <-own
	r.CPU, r.RSSKB = m[0], int(m[1])
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.Out, out, 0o600); err != nil {
		t.Fatal(err)
	}
}
