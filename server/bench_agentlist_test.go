package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// benchFleet puts n agents in e's server as the console's Fleet page
// meets them: three platforms, eight versions, three labels, twenty
// clusters, two workloads each; most online, some offline, busy or
// inactive. The records go straight into memory: enrolling 50,000
// agents over HTTP would take minutes and measures something else.
func benchFleet(e *env, n int) {
	e.importPack("2.0.0", "", "linux/amd64", "linux/arm64", "windows/amd64")
	versions := []string{"1.0.0", "1.2.0", "1.4.0", "1.5.0", "1.9.0", "1.10.0", "1.10.1", "2.0.0"}
	now := e.clock.Now()
	since := now.Add(-24 * time.Hour)
	e.s.mu.Lock()
	defer e.s.mu.Unlock()
	for i := range n {
		platform, osFamily := "linux/amd64", "linux"
		switch i % 20 {
		case 1, 2, 3:
			platform = "linux/arm64"
		case 4, 5, 6:
			platform, osFamily = "windows/amd64", "windows"
		}
		seen := now.Add(-time.Duration(i%60) * time.Second)
		switch {
		case i%50 == 7:
			seen = now.Add(-time.Hour) // offline
		case i%100 == 9:
			seen = now.Add(-1000 * time.Hour) // inactive
		}
		name := fmt.Sprintf("host-%05d", i)
		a := &agentRec{ID: fmt.Sprintf("ag%014x", uint64(i)*2654435761), Enrolled: since, LastSeen: seen, St: protocol.Status{
			ProtocolVersion: protocol.Version, Fingerprint: "fp-" + name, Name: name, Hostname: name + ".example.net",
			Platform: platform, OSFamily: osFamily, Version: versions[(i*7)%len(versions)], Supervised: i%10 != 3,
			SupervisorVersion: "1.3.0", Cluster: fmt.Sprintf("cluster-%02d", i%20), Busy: i%40 == 11,
			Labels: map[string]string{"env": []string{"prod", "staging", "dev"}[i%3], "role": []string{"web", "db", "cache", "batch"}[i%4], "ring": fmt.Sprintf("r%d", i%5)},
			Workloads: []protocol.Workload{
				{Name: "exporter", Version: "1.5.0", State: protocol.WorkloadReady, Since: since},
				{Name: "sensor", Version: "1.4.0", State: protocol.WorkloadReady, Since: since},
			},
		}}
		e.s.agents[a.ID] = a
	}
}

// BenchmarkAgentList50k measures the console's Fleet page requests over
// 50,000 agents, through the whole handler (authentication, the query,
// JSON): the first page sorted by name, a filter by version with a text
// search, the summary; and, for comparison, the whole listing the CLI
// asks for without --limit.
func BenchmarkAgentList50k(b *testing.B) {
	e := newEnv(b)
	benchFleet(e, 50000)
	h := e.s.Handler()
	get := func(b *testing.B, path string) int {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+e.tokens[protocol.RoleViewer])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
		return rec.Body.Len()
	}
	for _, bm := range []struct{ name, path string }{
		{"page50_by_name", "/v1/agents?limit=50"},
		{"page50_by_version_desc_offset_25000", "/v1/agents?limit=50&offset=25000&sort=-version"},
		{"filter_version_search", "/v1/agents?limit=50&version=1.10.0&q=HOST-1"},
		{"filter_label_status", "/v1/agents?limit=50&label=env=prod&status=online&upgrade_status=upgrade_recommended"},
		{"summary", "/v1/agents/summary"},
		{"summary_filtered", "/v1/agents/summary?platform=linux/amd64&q=host-2"},
		{"all_no_limit", "/v1/agents"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			size := 0
			b.ReportAllocs()
			cpu0, ok := processCPU()
			for b.Loop() {
				size = get(b, bm.path)
			}
			// The process's CPU per request (the handler, the collector,
			// the server's own goroutines): unlike ns/op, it does not grow
			// with the machine's load.
			if cpu1, ok1 := processCPU(); ok && ok1 {
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
			}
			b.ReportMetric(float64(size), "bytes/resp")
		})
	}
	// The filter found what the benchmark says it measures.
	var page protocol.Agents
	e.must("GET", "/v1/agents?limit=50&version=1.10.0&q=HOST-1", protocol.RoleViewer, nil, &page)
	if page.Total == 0 || len(page.Agents) != 50 || !strings.HasPrefix(page.Agents[0].Name, "host-1") {
		b.Fatalf("the filtered page: total %d, %d agents", page.Total, len(page.Agents))
	}
}
