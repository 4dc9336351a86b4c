//go:build linux

package faults

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/e2etest"
)

// netCase is a network fault during one host's upgrade through a Proxy.
type netCase struct {
	name string
	// trips are where the proxy cuts (and refuses connections for down),
	// as positions in the download: the file (0 agent, 1 supervisor, in
	// the order the updater fetches them) and the fraction of it.
	trips []netTrip
	// downFor is how long the server is unreachable in all (the run ends
	// after that).
	downFor  time.Duration
	converge time.Duration
}

type netTrip struct {
	file int
	at   float64
	down time.Duration
}

// The agent may receive more than the artifacts' bytes: slack for TLS and
// HTTP framing, manifest and signature, check-ins and reports; and per cut
// what was on its way (in the HTTP/2 stream's buffers, discarded with the
// connection; about 0.8 MiB measured on loopback). A download that
// started over after a cut would cost the file's whole prefix again, and
// every trip is placed 4 MiB or more into its file.
const (
	slack     = 768 << 10
	perCut    = 1280 << 10
	minPrefix = 4 << 20
)

var netCases = []netCase{
	{
		// The control: what an upgrade receives without a fault.
		name: "no-fault",
	},
	{
		name:  "cut-mid-download",
		trips: []netTrip{{file: 0, at: 0.6}, {file: 1, at: 0.6}},
	},
	{
		name:    "server-gone-a-minute",
		trips:   []netTrip{{file: 0, at: 0.5, down: time.Minute}},
		downFor: time.Minute, converge: 4 * time.Minute,
	},
	{
		name: "flap-five-times",
		trips: []netTrip{{file: 0, at: 0.35, down: 2 * time.Second}, {file: 0, at: 0.65, down: 2 * time.Second},
			{file: 0, at: 0.95, down: 2 * time.Second}, {file: 1, at: 0.45, down: 2 * time.Second}, {file: 1, at: 0.9, down: 2 * time.Second}},
		downFor: 10 * time.Second, converge: 3 * time.Minute,
	},
}

// TestNetwork upgrades a host whose connection to the server breaks in
// the middle of the download: cut, gone for a minute, flapping. Each run
// must end succeeded, and the bytes the agent received must show that
// nothing fetched before a cut was fetched again.
func TestNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes (skipped with -short)")
	}
	// Beside the other suite: the network cases mostly wait.
	t.Parallel()
	// However this test ends, the crash cases wait no longer for it.
	defer networkQueued()
	bin := e2etest.Binaries(t, newVersion)
	e2etest.Binaries(t, oldVersion)
	var sizes []int64
	for _, f := range []string{"molt-agent", "molt-supervisor"} {
		st, err := os.Stat(filepath.Join(bin, f))
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, st.Size())
	}
	var sum summary
	t.Run("net", func(t *testing.T) {
		for _, c := range netCases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				start := time.Now()
				detail := networkCase(t, c, sizes)
				sum.add(outcome{name: c.name, proc: "network", recovered: !t.Failed(), detail: detail, took: time.Since(start)})
			})
		}
		// Every case waits for its turn now: the crash cases may queue.
		networkQueued()
	})
	sum.report(t, "network")
}

func networkCase(t *testing.T, c netCase, sizes []int64) string {
	var p *Proxy
	f := newFleet(t, 1, nil, nil, func(s *e2etest.Server) string {
		p = startProxy(t, s.Addr)
		return "https://" + p.Addr()
	}, false)
	f.converge, f.mustSucceed = c.converge, true
	base := p.Stats().BytesDown
	size := sizes[0] + sizes[1]
	for _, tr := range c.trips {
		into := int64(tr.at * float64(sizes[tr.file]))
		if into < minPrefix {
			t.Fatalf("trip %+v is %d bytes into its file, less than %d", tr, into, minPrefix)
		}
		at := base + into
		if tr.file == 1 {
			at += sizes[0]
		}
		p.TripAt(at, tr.down)
	}
	start := time.Now()
	detail := f.upgrade("")
	took := time.Since(start)
	st := p.Stats()
	got := st.BytesDown - base
	if st.TripsLeft != 0 || st.Cuts < len(c.trips) {
		t.Errorf("proxy: %+v; want every trip fired and at least %d cuts", st, len(c.trips))
	}
	if limit := size + slack + int64(st.Cuts)*perCut; got > limit {
		t.Errorf("the agent received %d bytes for %d bytes of artifacts, more than %d: fetched bytes were fetched again", got, size, limit)
	}
	if took < c.downFor {
		t.Errorf("the run ended %s after it started, within the %s the server was gone", took, c.downFor)
	}
	return fmt.Sprintf("%s; received %.1f MiB for %.1f MiB of artifacts; %d cuts, %d connections refused",
		detail, float64(got)/(1<<20), float64(size)/(1<<20), st.Cuts, st.Refused)
}
