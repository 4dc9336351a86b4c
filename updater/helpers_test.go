package updater

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/buildinfo"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/updater/pack/packtest"
)

var (
	testPlatform = buildinfo.Platform()
	testNow      = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
)

// randomBytes is deterministic filler for artifacts.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint64())
	}
	return b
}

// script is an agent "binary" that prints its version: runnable without
// building anything.
func script(version string, pad int) []byte {
	s := "#!/bin/sh\necho molt-agent " + version + "\nexit 0\n#"
	return append([]byte(s), bytes.Repeat([]byte("x"), pad)...)
}

// release is one signed version: its files, manifest and signature.
type release struct {
	version string
	files   packtest.Files
	// wfiles are the workloads' files by their path in the pack.
	wfiles map[string][]byte
	m      *pack.Manifest
	mb, sb []byte
}

func newRelease(t testing.TB, sk pack.SecretKey, version string, files packtest.Files, edit func(*pack.Manifest)) *release {
	t.Helper()
	m := packtest.Manifest(version, files)
	if edit != nil {
		edit(m)
	}
	mb := packtest.Encode(t, m)
	return &release{version: version, files: files, m: m, mb: mb, sb: pack.Sign(sk, mb, testNow)}
}

// writePack writes r as a pack file.
func (r *release) writePack(t testing.TB, path string) {
	t.Helper()
	es := packtest.Entries(r.mb, r.sb, r.files)
	for _, p := range slices.Sorted(maps.Keys(r.wfiles)) {
		es = append(es, packtest.Entry{Name: p, Data: r.wfiles[p]})
	}
	packtest.WriteZip(t, path, es)
}

// artifact returns the manifest entry of role on the test platform.
func (r *release) artifact(role string) pack.Artifact { return r.m.Artifacts[testPlatform][role] }

// server serves releases under /<version>/ with Range support, and can
// cut connections at chosen file offsets, hold a response after some bytes,
// or misbehave on purpose. It counts the body bytes it wrote per path.
type server struct {
	*httptest.Server
	mu       sync.Mutex
	files    map[string][]byte
	etags    map[string]string
	served   map[string]int64
	requests map[string]int
	cuts     map[string][]int64 // absolute offsets, used once each, in order
	hold     map[string]int64   // absolute offset at which to block
	held     chan string        // receives the path once it is held
	release  chan struct{}      // closing it ends every hold
	override map[string]http.HandlerFunc
	// delay is waited before each answer: a network's round trip.
	delay time.Duration
}

func newServer(t testing.TB) *server {
	s := &server{
		files: map[string][]byte{}, etags: map[string]string{}, served: map[string]int64{},
		requests: map[string]int{}, cuts: map[string][]int64{}, hold: map[string]int64{},
		held: make(chan string, 16), release: make(chan struct{}), override: map[string]http.HandlerFunc{},
	}
	s.Server = httptest.NewServer(s)
	t.Cleanup(func() {
		s.releaseHolds()
		s.Close()
	})
	return s
}

// edit changes the server's maps under its lock.
func (s *server) edit(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

func (s *server) setFile(p string, b []byte) { s.edit(func() { s.files[p] = b }) }
func (s *server) setOverride(p string, h http.HandlerFunc) {
	s.edit(func() { s.override[p] = h })
}
func (s *server) file(p string) (b []byte) {
	s.edit(func() { b = s.files[p] })
	return b
}

func (s *server) releaseHolds() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.release:
	default:
		close(s.release)
	}
}

// publish serves r under /<version>/ and returns the base URL.
func (s *server) publish(r *release) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	base := "/" + r.version + "/"
	s.files[base+pack.ManifestName] = r.mb
	s.files[base+pack.SignatureName] = r.sb
	for plat, roles := range r.files {
		for role, data := range roles {
			p := base + packtest.ArtifactPath(plat, role)
			s.files[p] = data
			s.etags[p] = fmt.Sprintf(`"%s-%d"`, r.version, len(data))
		}
	}
	for wp, data := range r.wfiles {
		s.files[base+wp] = data
		s.etags[base+wp] = fmt.Sprintf(`"%s-%s-%d"`, r.version, wp, len(data))
	}
	return s.URL + base
}

func (s *server) path(r *release, role string) string {
	return "/" + r.version + "/" + r.artifact(role).Path
}

func (s *server) servedBytes(p string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served[p]
}

func (s *server) requestCount(p string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[p]
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	p := r.URL.Path
	s.requests[p]++
	h := s.override[p]
	data, ok := s.files[p]
	etag := s.etags[p]
	delay := s.delay
	s.mu.Unlock()
	time.Sleep(delay)
	if h != nil {
		h(w, r)
		return
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	start := int64(0)
	if rg := r.Header.Get("Range"); rg != "" && (r.Header.Get("If-Range") == "" || r.Header.Get("If-Range") == etag) {
		fmt.Sscanf(rg, "bytes=%d-", &start)
	}
	cw := &cutWriter{ResponseWriter: w, s: s, path: p, limit: -1, holdAt: -1}
	s.mu.Lock()
	for i, c := range s.cuts[p] {
		if c >= start {
			cw.limit = c - start
			s.cuts[p] = append(s.cuts[p][:i:i], s.cuts[p][i+1:]...)
			break
		}
	}
	if hAt, ok := s.hold[p]; ok && hAt >= start {
		cw.holdAt = hAt - start
		delete(s.hold, p)
	}
	s.mu.Unlock()
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	http.ServeContent(cw, r, "", time.Time{}, bytes.NewReader(data))
}

// cutWriter passes at most limit body bytes, then drops the connection;
// at holdAt it blocks until the server's holds are released.
type cutWriter struct {
	http.ResponseWriter
	s       *server
	path    string
	written int64
	limit   int64
	holdAt  int64
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if c.holdAt >= 0 && c.written+int64(len(p)) >= c.holdAt {
		k := c.holdAt - c.written
		n, err := c.pass(p[:k])
		if err != nil {
			return n, err
		}
		c.ResponseWriter.(http.Flusher).Flush()
		c.s.held <- c.path
		<-c.s.release
		panic(http.ErrAbortHandler)
	}
	if c.limit >= 0 && c.written+int64(len(p)) > c.limit {
		c.pass(p[:c.limit-c.written])
		c.ResponseWriter.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	return c.pass(p)
}

func (c *cutWriter) pass(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.written += int64(n)
	c.s.mu.Lock()
	c.s.served[c.path] += int64(n)
	c.s.mu.Unlock()
	return n, err
}

// testHome lays out a home whose current version is 1.0.0.
func testHome(t testing.TB, dir string) home.Home {
	t.Helper()
	h := home.Home{Dir: dir}
	installVersion(t, h, "1.0.0")
	if err := h.WriteActive(home.Active{Current: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	return h
}

func installVersion(t testing.TB, h home.Home, v string) {
	t.Helper()
	if err := os.MkdirAll(h.VersionDir(v), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.AgentBinary(v), script(v, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.ValidPath(v), []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newKey(t testing.TB) (pack.Key, pack.SecretKey) {
	t.Helper()
	pub, sk, err := pack.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, sk
}

func testOptions(h home.Home, keys ...pack.Key) Options {
	return Options{
		Home:      h,
		Keys:      keys,
		Platform:  testPlatform,
		Now:       func() time.Time { return testNow },
		FreeSpace: func(string) (uint64, error) { return 1 << 40, nil },
		Retry:     Retry{Attempts: 4, Base: time.Millisecond, Max: 5 * time.Millisecond},
	}
}

// files returns a one-platform release set: an agent of agentSize bytes
// (at least a small script) and a supervisor of supSize bytes.
func files(version string, agentSize, supSize int) packtest.Files {
	// A script that prints its version, padded to size with random bytes
	// the shell never reads (it exits first).
	agent := script(version, 0)
	if pad := agentSize - len(agent) - 1; pad > 0 {
		agent = append(append(agent, '\n'), randomBytes(pad, uint64(len(version)))...)
	}
	return packtest.Files{testPlatform: {
		pack.RoleAgent:      agent,
		pack.RoleSupervisor: randomBytes(supSize, 7),
	}}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkHomeInvariants asserts what must hold after any crash: active.json
// names only versions with .valid, the current one is runnable, and every
// directory marked valid holds the files its marker names.
func checkHomeInvariants(t testing.TB, h home.Home) {
	t.Helper()
	a, err := h.ReadActive()
	if err != nil {
		t.Fatalf("active.json: %v", err)
	}
	for _, v := range []string{a.Current, a.Previous} {
		if v != "" && !h.IsValid(v) {
			t.Errorf("active.json names %s, which has no .valid", v)
		}
	}
	if runtime.GOOS != "windows" {
		out, err := runAgent(h, a.Current)
		if err != nil || strings.TrimSpace(out) != "molt-agent "+a.Current {
			t.Errorf("current version %s does not run: %q %v", a.Current, out, err)
		}
	}
	entries, _ := os.ReadDir(h.VersionsDir())
	for _, e := range entries {
		v := e.Name()
		if !h.IsValid(v) {
			continue
		}
		var mk validMarker
		if ok, err := readJSON(h.ValidPath(v), &mk); err != nil || !ok {
			t.Errorf("versions/%s/.valid unreadable: %v", v, err)
			continue
		}
		for name, sum := range mk.Files {
			b, err := os.ReadFile(filepath.Join(h.VersionDir(v), name))
			if err != nil || sha(b) != sum {
				t.Errorf("versions/%s/%s is marked valid but does not match (%v)", v, name, err)
			}
		}
	}
}

func runAgent(h home.Home, v string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := execCommand(ctx, h.AgentBinary(v)).CombinedOutput()
	return string(out), err
}

func cacheEntries(t testing.TB, h home.Home) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(h.CacheDir(), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(h.CacheDir(), p)
			names = append(names, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// writePart leaves a partial download as an earlier process would have.
func writePart(u *Updater, v, role string, b []byte) error {
	if err := os.MkdirAll(u.cacheDir(v), 0o755); err != nil {
		return err
	}
	return os.WriteFile(u.partPath(v, role), b, 0o644)
}

// publishRelease is the setup of the download tests: release 1.1.0 (an
// agent of agentSize and a supervisor of supSize bytes) published on a
// new test server, a home whose updater trusts its key (testOptions(h,
// pub)), the server's URL of the release and the agent file's path on it.
func publishRelease(t testing.TB, agentSize, supSize int) (pub pack.Key, h home.Home, srv *server, rel *release, base, agent string) {
	t.Helper()
	pub, sk := newKey(t)
	h = testHome(t, t.TempDir())
	srv = newServer(t)
	rel = newRelease(t, sk, "1.1.0", files("1.1.0", agentSize, supSize), nil)
	base = srv.publish(rel)
	return pub, h, srv, rel, base, srv.path(rel, pack.RoleAgent)
}
