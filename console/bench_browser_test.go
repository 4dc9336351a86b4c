//go:build unix

package console_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/protocol"
)

// TestBenchConsoleFleet measures the Fleet page over a store of
// MOLT_BENCH_CONSOLE_AGENTS (50,000) enrolled agents in a real molt serve:
// the time from opening the console until the first page of agents is in
// the table (target ≤ 1 s), and from a filter's change until the table
// shows its result (target ≤ 300 ms), each the median of 5 tries, with
// the worst. Run it with scripts/bench-console.sh; it prints BENCH lines.
func TestBenchConsoleFleet(t *testing.T) {
	if os.Getenv("MOLT_BENCH") == "" {
		t.Skip("benchmark: run scripts/bench-console.sh (MOLT_BENCH=1)")
	}
	chromium(t)
	n := 50000
	if v := os.Getenv("MOLT_BENCH_CONSOLE_AGENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("MOLT_BENCH_CONSOLE_AGENTS=%q: not a count", v)
		}
	}
	srv := e2etest.StartServer(t, e2etest.ServerOptions{Version: v2})
	start := time.Now()
	enrollSimulated(t, srv, n)
	fmt.Printf("BENCH console agents=%d enrolled in %s\n", n, time.Since(start).Round(time.Millisecond))

	b := newBrowser(t, srv)
	b.signIn((&fleet{t: t, srv: srv}).adminToken())
	rowsShown := `document.querySelectorAll('[data-test=agent-row]').length >= 50`
	var first []time.Duration
	for range 5 {
		b.gotoPath("/console/#/events") // away, so the fleet is opened afresh
		t0 := time.Now()
		b.gotoPath("/console/#/fleet")
		b.pollFast("the first page of agents", rowsShown)
		first = append(first, time.Since(t0))
	}
	b.shot("bench-fleet")
	total := b.text(`[data-test=page-info]`)

	// A filter: the platform (a select: applied at once) and the text
	// search (typed: applied 150 ms after the last key, which the time
	// includes), each from the full table; the page-info line changes when
	// the filtered answer is shown.
	filter := map[string][]time.Duration{}
	for _, f := range []struct{ name, sel, value string }{
		{"platform", `[data-test=filter-platform]`, "windows/amd64"},
		{"search", `[data-test=filter-search]`, "bench-0421"},
	} {
		for range 5 {
			b.gotoPath("/console/#/fleet")
			b.pollFast("the first page of agents", rowsShown)
			before := b.text(`[data-test=page-info]`)
			t0 := time.Now()
			b.fill(f.sel, f.value)
			b.pollFast("the filtered table", fmt.Sprintf(`(document.querySelector('[data-test=page-info]')?.innerText ?? '') !== %s`, jsString(before)))
			filter[f.name] = append(filter[f.name], time.Since(t0))
		}
	}
	b.shot("bench-fleet-filtered")
	fmt.Printf("BENCH console agents=%d fleet first page: median %s, worst %s (target 1s); %s\n", n, median(first), slices.Max(first).Round(time.Millisecond), total)
	fmt.Printf("BENCH console agents=%d filter applied, platform: median %s, worst %s (target 300ms)\n", n, median(filter["platform"]), slices.Max(filter["platform"]).Round(time.Millisecond))
	fmt.Printf("BENCH console agents=%d filter applied, text search: median %s, worst %s (target 300ms; 150 ms of it waits for the typing to end)\n", n, median(filter["search"]), slices.Max(filter["search"]).Round(time.Millisecond))
}

// pollFast waits for a predicate, polling every animation frame, so the
// time measured is the page's and not the poll's.
func (b *browser) pollFast(what, predicate string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](predicate, chromedp.WithPollingTimeout(55*time.Second))); err != nil {
		b.fail("waiting for "+what, err)
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}

// enrollSimulated enrolls n agents over the real enrollment API, spread
// over four platforms, five versions, three rings and two clusters, so
// that filters and the version chart have something to show.
func enrollSimulated(t *testing.T, srv *e2etest.Server, n int) {
	t.Helper()
	var et protocol.EnrollTokenCreated
	srv.JSON(&et, "enroll-token", "create", "--uses", strconv.Itoa(n), "--expires", "2h")
	ca, err := os.ReadFile(srv.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 32, ForceAttemptHTTP2: false}}
	platforms := []struct{ platform, family string }{
		{"linux/amd64", "linux"}, {"linux/arm64", "linux"}, {"windows/amd64", "windows"}, {"darwin/arm64", "unix"}}
	versions := []string{"1.0.0", "1.0.1", "1.1.0", "1.2.0", "1.3.0"}
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || first != nil {
					return
				}
				p := platforms[i%len(platforms)]
				name := fmt.Sprintf("bench-%05d", i)
				req := protocol.EnrollRequest{ProtocolVersion: protocol.Version, EnrollmentToken: et.Secret, Name: name,
					Hostname: name + ".example.net", Platform: p.platform, OSFamily: p.family, Version: versions[(i/7)%len(versions)],
					Supervised: i%10 != 0, SupervisorVersion: versions[(i/7)%len(versions)], Fingerprint: "fp-" + name,
					Labels:  map[string]string{"ring": []string{"canary", "early", "main"}[i%3], "dc": []string{"fra", "iad"}[i%2]},
					Cluster: []string{"", "payments", "search"}[i%3]}
				if err := post(client, srv.URL()+"/v1/agent/enroll", req); err != nil {
					once.Do(func() { first = fmt.Errorf("enroll %s: %w", name, err) })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

func post(c *http.Client, url string, body any) error {
	j, err := json.Marshal(body)
	if err != nil {
		return err
	}
	res, err := c.Post(url, "application/json", bytes.NewReader(j))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		var e protocol.Error
		_ = json.NewDecoder(res.Body).Decode(&e)
		return fmt.Errorf("%d %s", res.StatusCode, e.Error)
	}
	return nil
}
