//go:build unix

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/internal/s3test"
	"github.com/moltfleet/molt/protocol"
)

const (
	// storeOutage is how long the S3 store stays down while agents
	// download from it.
	storeOutage = 60 * time.Second
	// storeRate paces what the store sends on each connection until the
	// outage, so that every agent is still in its first file (a binary of
	// about 15 MiB, 5 s at this rate) when the store goes down.
	storeRate = 3 << 20
	// midDownload is how much of its first file every agent has before
	// the store goes down.
	midDownload = 1 << 20
	// outageAgents is the number of agents of each download mode.
	outageAgents = 2
)

// outageMode is one way agents download: through the server, or straight
// from the store with a pre-signed URL.
type outageMode struct {
	name     string // also the store prefix and the agents' name prefix
	redirect string // --artifact-redirect
	proxy    *storeProxy
	srv      *e2etest.Server
	hosts    []*e2etest.Host
	run      protocol.Run
	// last is each deployment as last seen; before, as last seen before
	// the store went down.
	last, before map[string]protocol.Deployment
	// regress notes a deployment seen with fewer bytes of its file after
	// the outage than before it.
	regress []string
}

// TestS3Outage: the S3 store goes down for a minute while agents download
// a release from it, through the server and straight from the store
// (--artifact-redirect), then comes back on the same address. Meanwhile
// the server answers "unavailable", not "not found", and no deployment
// ends; afterwards every agent resumes its file where it was with a Range
// request (none asks the store for a file it was in the middle of from
// its start, and the store sends little more than one copy of the pack per
// agent), and the run completes with the new version on every host.
func TestS3Outage(t *testing.T) {
	needBuild(t)
	parallel(t)
	s3 := s3test.Start(t)
	bucket := s3.Bucket(t, "packs")
	pack := e2etest.Pack(t, e2etest.PackOptions{Version: newVersion})
	modes := []*outageMode{{name: "through"}, {name: "direct", redirect: "15m"}}
	for _, m := range modes {
		m.proxy = startStoreProxy(t, s3.Addr())
		m.srv = e2etest.StartServer(t, e2etest.ServerOptions{
			Version:          newVersion,
			Artifacts:        fmt.Sprintf("s3://%s/%s?region=us-east-1&path-style=true&endpoint=http://%s", bucket, m.name, m.proxy.addr),
			ArtifactRedirect: m.redirect,
			Env:              []string{"AWS_ACCESS_KEY_ID=" + s3.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3.SecretKey},
		})
		m.srv.Import(pack)
		token := m.srv.EnrollToken(outageAgents)
		for i := range outageAgents {
			h := m.srv.NewHost(e2etest.HostOptions{Name: fmt.Sprintf("%s%d", m.name, i), Version: oldVersion, Supervised: true, EnrollToken: token})
			h.Start()
			m.hosts = append(m.hosts, h)
		}
	}
	for _, m := range modes {
		e2etest.Eventually(t, 60*time.Second, m.name+": agents online", func() (bool, string) {
			n := 0
			for _, a := range m.srv.Agents() {
				if a.Status == protocol.AgentOnline && a.Version == oldVersion {
					n++
				}
			}
			return n == outageAgents, fmt.Sprintf("%d online on %s", n, oldVersion)
		})
	}
	// The pack's binaries by name, with their sizes (the pack holds
	// copies).
	sizes := map[string]int64{}
	for _, name := range []string{"molt-agent", "molt-supervisor"} {
		sizes[name] = fileSize(t, filepath.Join(e2etest.Binaries(t, newVersion), name))
	}

	for _, m := range modes {
		m.proxy.rate.Store(storeRate)
		m.proxy.sent.Store(0)
		m.run = m.srv.Upgrade("--target", newVersion, "--all")
	}
	e2etest.Eventually(t, 60*time.Second, "every agent in the middle of the same file", func() (bool, string) {
		ok, seen := true, []string{}
		for _, m := range modes {
			ds := m.poll(t)
			var first int64
			for _, d := range ds {
				seen = append(seen, fmt.Sprintf("%s %s %d/%d", d.AgentName, d.State, d.Done, d.Total))
				if first == 0 {
					first = d.Total
				}
				if d.State != protocol.StateDownloading || d.Done < midDownload || d.Done >= d.Total || d.Total != first {
					ok = false
				}
			}
			ok = ok && len(ds) == outageAgents
		}
		return ok, strings.Join(seen, ", ")
	})

	down := time.Now()
	for _, m := range modes {
		m.before = m.last
		m.proxy.down()
	}
	s3.Stop()
	t.Logf("store down at %s", describe(modes))
	probed := false
	for time.Since(down) < storeOutage {
		for _, m := range modes {
			for _, d := range m.poll(t) {
				if !protocol.InProgress(d.State) {
					t.Errorf("%s: deployment of %s ended while the store was down: %s %s", m.name, d.AgentName, d.State, d.Reason)
				}
			}
		}
		if !probed && time.Since(down) > 3*time.Second {
			probed = true
			probeOutage(t, modes)
		}
		// A deployment that ended stays ended (and no byte moves while
		// the store is down): a look a second catches what one every
		// half second did, with half the CLI calls.
		time.Sleep(time.Second)
	}
	s3.Start()
	for _, m := range modes {
		// Unpaced from now on: what shows a resume is in the store's
		// requests and byte count, and the test ends sooner.
		m.proxy.rate.Store(0)
		m.proxy.up()
	}
	back := time.Now()
	t.Logf("store back after %v", back.Sub(down).Round(time.Millisecond))

	e2etest.Eventually(t, 3*time.Minute, "both runs ended", func() (bool, string) {
		ended, seen := true, []string{}
		for _, m := range modes {
			var run protocol.Run
			m.srv.JSON(&run, "runs", "show", m.run.ID)
			if run.Status == protocol.RunRunning {
				ended = false
				m.poll(t)
			}
			seen = append(seen, fmt.Sprintf("%s: %s %v", m.name, run.Status, run.Counts))
		}
		return ended, strings.Join(seen, "; ")
	})
	t.Logf("runs ended %v after the store came back", time.Since(back).Round(time.Millisecond))

	for _, m := range modes {
		if run := m.srv.WaitRun(m.run.ID, time.Second); run.Status != protocol.RunEndedOK {
			t.Errorf("%s: run %s: %s %v", m.name, run.ID, run.Status, run.Counts)
		}
		for _, a := range m.srv.Agents() {
			if a.Version != newVersion {
				t.Errorf("%s: agent %s runs %s, want %s", m.name, a.Name, a.Version, newVersion)
			}
		}
		for _, r := range m.regress {
			t.Errorf("%s: download started over: %s", m.name, r)
		}
		// The agent rides a minute's outage out within one attempt of the
		// order: its downloads keep retrying, they do not give up and
		// leave the order to be repeated.
		for id, d := range m.last {
			for _, st := range m.srv.DeployReport(id).Steps {
				if st.Name == "retry" {
					t.Errorf("%s: %s gave up during the outage: %s %s", m.name, d.AgentName, st.At.Sub(down).Round(time.Second), st.Detail)
				}
			}
		}
		m.checkResumed(t, back, sizes)
	}
}

// poll reads the run's deployments, keeps them as the last seen, and
// notes any whose file has fewer bytes than before the outage.
func (m *outageMode) poll(t *testing.T) []protocol.Deployment {
	t.Helper()
	ds := m.srv.History("--run", m.run.ID)
	last := map[string]protocol.Deployment{}
	for _, d := range ds {
		last[d.ID] = d
		// Total names the file: the agent's and the supervisor's binaries
		// differ in size.
		if b, ok := m.before[d.ID]; ok && d.Total == b.Total && d.Done < b.Done {
			m.regress = append(m.regress, fmt.Sprintf("%s had %d of %d bytes before the outage, %d after", d.AgentName, b.Done, b.Total, d.Done))
		}
	}
	m.last = last
	return ds
}

func describe(modes []*outageMode) string {
	var out []string
	for _, m := range modes {
		for _, d := range m.before {
			out = append(out, fmt.Sprintf("%s %d/%d", d.AgentName, d.Done, d.Total))
		}
	}
	return strings.Join(out, ", ")
}

// probeOutage asks each server for a file of the release as an agent does
// while the store is down: through the server, an "unavailable" the agent
// retries (never 404, which would fail the deployment); with
// --artifact-redirect, the redirect to the store as always.
func probeOutage(t *testing.T, modes []*outageMode) {
	t.Helper()
	for _, m := range modes {
		id, err := agent.ReadIdentity(m.hosts[0].Home)
		if err != nil {
			t.Fatal(err)
		}
		pem, err := os.ReadFile(m.srv.CAFile())
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		c := &http.Client{
			Timeout:       30 * time.Second,
			Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		req, _ := http.NewRequest(http.MethodGet, m.srv.URL()+"/v1/packs/"+newVersion+"/manifest.json", nil)
		req.Header.Set(protocol.HeaderAuthorization, "Bearer "+id.Credential)
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			t.Errorf("%s: GET a pack file while the store is down: %v", m.name, err)
			continue
		}
		resp.Body.Close()
		t.Logf("%s: GET /v1/packs/%s/manifest.json while the store is down: %s after %v %s", m.name, newVersion, resp.Status,
			time.Since(start).Round(time.Millisecond), resp.Header.Get("Location"))
		switch {
		case m.redirect == "" && resp.StatusCode < 500:
			t.Errorf("%s: the server answers %s while the store is down, want a 5xx agents retry", m.name, resp.Status)
		case m.redirect != "" && resp.StatusCode != http.StatusTemporaryRedirect:
			t.Errorf("%s: the server answers %s while the store is down, want 307 to the store", m.name, resp.Status)
		}
	}
}

// checkResumed checks from the store's side that every agent resumed the
// file it was in: after the store came back it was asked for that file
// only from a later byte (at least once per agent), never from its start,
// and it sent little more than one pack per agent in all.
func (m *outageMode) checkResumed(t *testing.T, back time.Time, sizes map[string]int64) {
	t.Helper()
	var file string
	var packBytes int64
	for name, size := range sizes {
		packBytes += size
		for _, d := range m.before {
			if d.Total == size {
				file = name
			}
		}
	}
	if file == "" {
		t.Errorf("%s: no binary of the pack has the size of the file the agents were in: %v", m.name, describe([]*outageMode{m}))
		return
	}
	var resumed, whole int
	var lag time.Duration // from the store's return to the last resume
	var paths []string
	for _, r := range m.proxy.requests() {
		if r.At.Before(back) || r.Method != http.MethodGet || !strings.Contains(r.Path, "/"+m.name+"/"+newVersion+"/") {
			continue
		}
		paths = append(paths, fmt.Sprintf("%s %q", r.Path, r.Range))
		if !strings.HasSuffix(r.Path, "/"+file) {
			continue
		}
		if r.rangeStart() > 0 {
			resumed++
			lag = max(lag, r.At.Sub(back))
		} else {
			whole++
		}
	}
	ratio := float64(m.proxy.sent.Load()) / float64(outageAgents*packBytes)
	t.Logf("%s: after the store came back: %d ranged GETs of %s, the file the agents were in (the last %v after), %d from its start; the store sent %.2f times the pack per agent; GETs: %v",
		m.name, resumed, file, lag.Round(time.Millisecond), whole, ratio, paths)
	if resumed < outageAgents || whole > 0 {
		t.Errorf("%s: %d agents were in their first file at the outage: want as many GETs from a later byte and none from the start, got %d and %d", m.name, outageAgents, resumed, whole)
	}
	if ratio > 1.25 {
		t.Errorf("%s: the store sent %.2f times the pack per agent, want about 1 (resumed, not started over)", m.name, ratio)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
