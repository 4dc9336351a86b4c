package server

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/updater/pack"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a server on a real SQLite store in a temp dir, served by
// httptest, with a fake clock and tokens of every role.
type env struct {
	t       testing.TB
	dir     string
	store   string // "" (SQLite in dir) or a PostgreSQL database (testStore)
	s       *Server
	hs      *httptest.Server
	clock   *fakeClock
	sk      pack.SecretKey
	key     pack.Key
	tokens  map[string]string // role -> secret
	enroll  string
	cancel  context.CancelFunc
	stopped bool
}

var testKey = sync.OnceValues(func() (pack.Key, pack.SecretKey) {
	k, sk, err := pack.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return k, sk
})

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), store: testStore(t), clock: &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, tokens: map[string]string{}}
	e.key, e.sk = testKey()
	e.start()
	for _, role := range []string{protocol.RoleViewer, protocol.RoleOperator, protocol.RoleAdmin} {
		tc, err := e.s.CreateToken(context.Background(), role, role)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[role] = tc.Secret
	}
	et, err := e.s.CreateEnrollToken(context.Background(), protocol.EnrollTokenRequest{Uses: 100000})
	if err != nil {
		t.Fatal(err)
	}
	e.enroll = et.Secret
	t.Cleanup(e.stop)
	return e
}

// start opens the server on e.dir (again, after stop: a restart).
func (e *env) start() {
	s, err := New(context.Background(), Options{DataDir: e.dir, Store: e.store, TrustedKeys: []pack.Key{e.key}, Clock: e.clock, PollWait: 20 * time.Millisecond, Version: "test"})
	if err != nil {
		e.t.Fatal(err)
	}
	e.s = s
	e.hs = httptest.NewServer(s.Handler())
	e.stopped = false
}

func (e *env) stop() {
	if e.stopped {
		return
	}
	e.stopped = true
	e.s.Shutdown()
	e.hs.Close()
	e.s.Close()
}

func (e *env) restart() {
	e.stop()
	e.start()
}

// do sends a request and decodes a 2xx answer into out; it returns the
// status and the error body.
func (e *env) do(method, path, token string, body any, out any) (int, protocol.Error) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, e.hs.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.hs.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 200 && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp.StatusCode, protocol.Error{} // a stream does not end: its status is the answer
	}
	b, _ := io.ReadAll(resp.Body)
	var pe protocol.Error
	if resp.StatusCode >= 300 {
		if err := json.Unmarshal(b, &pe); err != nil {
			e.t.Fatalf("%s %s: %d with a body that is not the JSON error shape: %q", method, path, resp.StatusCode, b)
		}
		return resp.StatusCode, pe
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: %v in %q", method, path, err, b)
		}
	}
	return resp.StatusCode, pe
}

func (e *env) must(method, path, role string, body, out any) {
	e.t.Helper()
	if code, pe := e.do(method, path, e.tokens[role], body, out); code >= 300 {
		e.t.Fatalf("%s %s: %d %s (%s)", method, path, code, pe.Error, pe.Code)
	}
}

// makePack builds a signed pack (tar.gz) of version for platforms.
// makePack makes a signed pack as molt pack build writes it: a zip.
func makePack(t testing.TB, sk pack.SecretKey, version, floor string, platforms ...string) []byte {
	t.Helper()
	files := packFiles(sk, version, floor, platforms...)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(files[name])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// makeTarPack makes the same pack as a tar.gz of its directory.
func makeTarPack(t testing.TB, sk pack.SecretKey, version, floor string, platforms ...string) []byte {
	t.Helper()
	files := packFiles(sk, version, floor, platforms...)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, b := range files {
		_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
		_, _ = tw.Write(b)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func packFiles(sk pack.SecretKey, version, floor string, platforms ...string) map[string][]byte {
	m := pack.Manifest{Version: version, Released: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Floor: floor, Artifacts: map[string]map[string]pack.Artifact{}}
	files := map[string][]byte{}
	for _, p := range platforms {
		dir := strings.ReplaceAll(p, "/", "_")
		m.Artifacts[p] = map[string]pack.Artifact{}
		for _, role := range []string{pack.RoleAgent, pack.RoleSupervisor} {
			body := []byte(fmt.Sprintf("%s %s %s binary", version, p, role))
			sum := sha256.Sum256(body)
			path := dir + "/molt-" + role
			files[path] = body
			m.Artifacts[p][role] = pack.Artifact{Path: path, Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}
		}
	}
	man, _ := json.Marshal(m)
	files[pack.ManifestName] = man
	files[pack.SignatureName] = pack.Sign(sk, man, time.Now())
	return files
}

func (e *env) importPack(version, floor string, platforms ...string) {
	e.t.Helper()
	e.must("POST", "/v1/releases", protocol.RoleAdmin, makePack(e.t, e.sk, version, floor, platforms...), nil)
}

// simAgent speaks the agent protocol to env.
type simAgent struct {
	e    *env
	id   string
	cred string
	st   protocol.Status
}

func (e *env) newAgent(name, version string, mod ...func(*protocol.EnrollRequest)) *simAgent {
	e.t.Helper()
	req := protocol.EnrollRequest{ProtocolVersion: protocol.Version, EnrollmentToken: e.enroll, Name: name, Hostname: name,
		Platform: "linux/amd64", OSFamily: "linux", Version: version, Supervised: true, Fingerprint: "fp-" + name}
	for _, m := range mod {
		m(&req)
	}
	var resp protocol.EnrollResponse
	if code, pe := e.do("POST", "/v1/agent/enroll", "", req, &resp); code != 200 {
		e.t.Fatalf("enroll %s: %d %s", name, code, pe.Error)
	}
	a := &simAgent{e: e, id: resp.AgentID, cred: resp.Credential, st: protocol.Status{
		ProtocolVersion: req.ProtocolVersion, Fingerprint: req.Fingerprint, Name: name, Hostname: name, Platform: req.Platform,
		OSFamily: req.OSFamily, Version: req.Version, Supervised: req.Supervised, Labels: req.Labels, Cluster: req.Cluster, Floor: req.Floor,
		PendingReboot: req.PendingReboot, FreeDiskBytes: req.FreeDiskBytes}}
	a.checkin() // an agent checks in right after it enrolled
	return a
}

// enrollOnly enrolls an agent that never checks in.
func (e *env) enrollOnly(name, version string) *simAgent {
	e.t.Helper()
	req := protocol.EnrollRequest{ProtocolVersion: protocol.Version, EnrollmentToken: e.enroll, Name: name, Hostname: name,
		Platform: "linux/amd64", OSFamily: "linux", Version: version, Supervised: true, Fingerprint: "fp-" + name}
	var resp protocol.EnrollResponse
	e.must("POST", "/v1/agent/enroll", "", req, &resp)
	return &simAgent{e: e, id: resp.AgentID, cred: resp.Credential, st: protocol.Status{ProtocolVersion: req.ProtocolVersion, Fingerprint: req.Fingerprint,
		Name: name, Hostname: name, Platform: req.Platform, OSFamily: req.OSFamily, Version: version, Supervised: true}}
}

func (a *simAgent) checkin() []protocol.Order {
	a.e.t.Helper()
	var resp protocol.CheckinResponse
	if code, pe := a.e.do("POST", "/v1/agent/checkin", a.cred, protocol.CheckinRequest{Status: a.st}, &resp); code != 200 {
		a.e.t.Fatalf("checkin %s: %d %s", a.st.Name, code, pe.Error)
	}
	return resp.Orders
}

func (a *simAgent) report(r protocol.ReportRequest) protocol.ReportResponse {
	a.e.t.Helper()
	var resp protocol.ReportResponse
	if code, pe := a.e.do("POST", "/v1/agent/report", a.cred, r, &resp); code != 200 {
		a.e.t.Fatalf("report %s: %d %s", a.st.Name, code, pe.Error)
	}
	return resp
}

// upgradeOrder returns the agent's upgrade order, if any.
func upgradeOrder(orders []protocol.Order) *protocol.Order {
	for i := range orders {
		if orders[i].Kind == protocol.OrderUpgrade {
			return &orders[i]
		}
	}
	return nil
}

// complete plays a whole successful upgrade of order o: reports phases,
// then checks in with the new version and a committed trial.
func (a *simAgent) complete(o protocol.Order) {
	now := a.e.clock.Now()
	a.report(protocol.ReportRequest{OrderID: o.ID, Phase: protocol.StateDownloading, Steps: []protocol.Step{{At: now, Name: "download", Detail: o.PackURL}}})
	a.report(protocol.ReportRequest{OrderID: o.ID, Phase: protocol.StateStaged, Steps: []protocol.Step{{At: now.Add(time.Millisecond), Name: "stage"}}})
	a.report(protocol.ReportRequest{OrderID: o.ID, Phase: protocol.StateRestarting, Steps: []protocol.Step{{At: now.Add(2 * time.Millisecond), Name: "exit", Detail: "exit 11"}}})
	prev := a.st.Version
	a.st.Version = o.Version
	a.st.LastResult = &protocol.TrialResult{Outcome: protocol.TrialCommitted, Version: o.Version, Previous: prev, OrderID: o.ID, At: now}
	a.checkin()
}

func (e *env) deployment(id string) protocol.DeploymentReport {
	e.t.Helper()
	var rep protocol.DeploymentReport
	e.must("GET", "/v1/deployments/"+id, protocol.RoleViewer, nil, &rep)
	return rep
}

func (e *env) run(id string) protocol.Run {
	e.t.Helper()
	var r protocol.Run
	e.must("GET", "/v1/runs/"+id, protocol.RoleViewer, nil, &r)
	return r
}

func (e *env) events() []protocol.Event {
	e.t.Helper()
	var evs protocol.Events
	e.must("GET", "/v1/events?after_id=0&limit=1000", protocol.RoleViewer, nil, &evs)
	return evs.Events
}

func (e *env) hasEvent(id int, agent string) bool {
	for _, ev := range e.events() {
		if ev.ID == id && (agent == "" || ev.AgentID == agent) {
			return true
		}
	}
	return false
}

// schedule runs a scheduling pass and checks that the counts the
// scheduler keeps per run in memory are the database's.
func (e *env) schedule() {
	e.t.Helper()
	e.s.Schedule(context.Background())
	e.s.mu.Lock()
	defer e.s.mu.Unlock()
	for id, r := range e.s.runs {
		db, _, err := e.s.st.RunCounts(context.Background(), id)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, st := range protocol.DeploymentStates {
			if r.Counts[st] != db[st] {
				e.t.Errorf("run %s: %d deployments %s in memory, %d in the database", runID(id), r.Counts[st], st, db[st])
			}
		}
	}
}

func (e *env) createRun(req protocol.RunRequest) protocol.Run {
	e.t.Helper()
	var r protocol.Run
	e.must("POST", "/v1/runs", protocol.RoleOperator, req, &r)
	return r
}
