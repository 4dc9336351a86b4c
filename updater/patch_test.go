package updater

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/updater/delta"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/updater/pack/packtest"
)

// patchRelease is a home running 1.0.0 with a 300 KB agent, and release
// 1.1.0 whose agent differs in a line, with a patch from 1.0.0 for it.
type patchRelease struct {
	h          home.Home
	rel        *release
	old, agent []byte
	patch      []byte
	patchPath  string
}

func newPatchRelease(t *testing.T, sk pack.SecretKey, editPatch func([]byte) []byte) *patchRelease {
	t.Helper()
	h := testHome(t, t.TempDir())
	old := append(script("1.0.0", 0), randomBytes(300_000, 11)...)
	if err := os.WriteFile(h.AgentBinary("1.0.0"), old, 0o755); err != nil {
		t.Fatal(err)
	}
	agent := append(script("1.1.0", 0), old[len(script("1.0.0", 0)):]...)
	copy(agent[150_000:], "a one-line change")
	var p bytes.Buffer
	if err := delta.Diff(old, agent, &p); err != nil {
		t.Fatal(err)
	}
	patch := p.Bytes()
	fs := packtest.Files{testPlatform: {pack.RoleAgent: agent, pack.RoleSupervisor: randomBytes(5_000, 7)}}
	target := packtest.ArtifactPath(testPlatform, pack.RoleAgent)
	signed := patch
	if editPatch != nil {
		signed = editPatch(patch)
	}
	pp := pack.PatchPath(sha(old), sha(agent))
	rel := newRelease(t, sk, "1.1.0", fs, func(m *pack.Manifest) {
		m.Deltas = map[string]pack.Delta{"1.0.0": {From: "1.0.0", Artifacts: map[string]pack.Artifact{
			target: {Path: pp, Size: int64(len(signed)), SHA256: sha(signed)},
		}}}
	})
	rel.wfiles = map[string][]byte{pp: signed}
	return &patchRelease{h: h, rel: rel, old: old, agent: agent, patch: signed, patchPath: pp}
}

// methods records the Progress reports that say how a file was obtained.
type methods struct {
	mu   sync.Mutex
	seen []Progress
}

func (m *methods) progress(p Progress) {
	if p.Method != "" {
		m.mu.Lock()
		m.seen = append(m.seen, p)
		m.mu.Unlock()
	}
}

func (m *methods) of(file string) (Progress, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.seen {
		if p.File == file {
			return p, true
		}
	}
	return Progress{}, false
}

// TestPatchApplied: an agent running 1.0.0 gets 1.1.0's agent as the
// patch, applied into the staging area, and downloads no byte of the
// full agent; the running version is untouched.
func TestPatchApplied(t *testing.T) {
	pub, sk := newKey(t)
	pr := newPatchRelease(t, sk, nil)
	srv := newServer(t)
	base := srv.publish(pr.rel)
	var ms methods
	o := testOptions(pr.h, pub)
	o.Progress = ms.progress
	u := New(o)
	if err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, pr.h.AgentBinary("1.1.0")); !bytes.Equal(got, pr.agent) {
		t.Fatal("the staged agent is not 1.1.0's")
	}
	if got := readFile(t, pr.h.AgentBinary("1.0.0")); !bytes.Equal(got, pr.old) {
		t.Fatal("the running version's agent changed")
	}
	if n := srv.servedBytes(srv.path(pr.rel, pack.RoleAgent)); n != 0 {
		t.Errorf("the full agent was downloaded too (%d bytes)", n)
	}
	if n := srv.servedBytes("/1.1.0/" + pr.patchPath); n != int64(len(pr.patch)) {
		t.Errorf("served %d bytes of the %d-byte patch", n, len(pr.patch))
	}
	p, ok := ms.of(pack.RoleAgent)
	if !ok || p.Method != MethodDelta || !strings.Contains(p.Reason, "patch from 1.0.0") {
		t.Errorf("progress says %+v, want the delta method", p)
	}
	if c := cacheEntries(t, pr.h); len(c) != 0 {
		t.Errorf("cache left: %v", c)
	}
}

// TestPatchFallsBack: whatever is wrong with the patch or the base, the
// full file is downloaded, the version is staged, and the report says why.
func TestPatchFallsBack(t *testing.T) {
	for _, tc := range []struct {
		name string
		// editPatch changes the patch before it is signed (a patch that
		// verifies but is wrong); serve changes what the server sends.
		editPatch func([]byte) []byte
		setup     func(t *testing.T, pr *patchRelease, srv *server)
		reason    string
	}{
		{"corrupted base", nil, func(t *testing.T, pr *patchRelease, _ *server) {
			b := bytes.Clone(pr.old)
			b[1000] ^= 1
			if err := os.WriteFile(pr.h.AgentBinary("1.0.0"), b, 0o755); err != nil {
				t.Fatal(err)
			}
		}, "installed file is not the patch's base"},
		{"missing base", nil, func(t *testing.T, pr *patchRelease, _ *server) {
			if err := os.Remove(pr.h.AgentBinary("1.0.0")); err != nil {
				t.Fatal(err)
			}
		}, "installed file is not the patch's base"},
		{"tampered patch", nil, func(t *testing.T, pr *patchRelease, srv *server) {
			b := bytes.Clone(pr.patch)
			b[len(b)/2] ^= 0xff
			srv.setFile("/1.1.0/"+pr.patchPath, b)
		}, "sha256 mismatch"},
		{"patch not served", nil, func(t *testing.T, pr *patchRelease, srv *server) {
			srv.setOverride("/1.1.0/"+pr.patchPath, http.NotFound)
		}, "404"},
		{"signed patch that makes other bytes", func(p []byte) []byte {
			var out bytes.Buffer
			other := bytes.Clone(pr0.agent)
			other[0] ^= 1
			_ = delta.Diff(pr0.old, other, &out)
			return out.Bytes()
		}, nil, "the patched file has sha256"},
		{"signed patch that is not one", func(p []byte) []byte { return append(bytes.Clone(p[:100]), 1, 2, 3) }, nil, "corrupt patch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub, sk := newKey(t)
			pr0 = newPatchRelease(t, sk, nil)
			pr := pr0
			if tc.editPatch != nil {
				pr = newPatchRelease(t, sk, tc.editPatch)
				// The same home layout, the same files: only the patch differs.
				pr.h = pr0.h
			}
			srv := newServer(t)
			base := srv.publish(pr.rel)
			if tc.setup != nil {
				tc.setup(t, pr, srv)
			}
			var ms methods
			o := testOptions(pr.h, pub)
			o.Progress = ms.progress
			if err := New(o).Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)}); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, pr.h.AgentBinary("1.1.0")); !bytes.Equal(got, pr.agent) {
				t.Fatal("the staged agent is not 1.1.0's")
			}
			if n := srv.servedBytes(srv.path(pr.rel, pack.RoleAgent)); n != int64(len(pr.agent)) {
				t.Errorf("served %d bytes of the full agent, want %d", n, len(pr.agent))
			}
			p, ok := ms.of(pack.RoleAgent)
			if !ok || p.Method != MethodFull || !strings.Contains(p.Reason, tc.reason) {
				t.Errorf("progress says %+v, want the full method because %q", p, tc.reason)
			}
		})
	}
}

// pr0 is the release a table case's editPatch derives a wrong patch from.
var pr0 *patchRelease

// TestPatchNotOffered: no patch from the installed version, or a pack
// file as the source: full files, and one line says why for the former.
func TestPatchNotOffered(t *testing.T) {
	pub, sk := newKey(t)
	pr := newPatchRelease(t, sk, nil)
	if err := pr.h.WriteActive(home.Active{Current: "0.9.0"}); err != nil {
		t.Fatal(err)
	}
	installVersion(t, pr.h, "0.9.0")
	srv := newServer(t)
	base := srv.publish(pr.rel)
	var ms methods
	o := testOptions(pr.h, pub)
	o.Progress = ms.progress
	if err := New(o).Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)}); err != nil {
		t.Fatal(err)
	}
	if p, ok := ms.of("*"); !ok || p.Reason != "no patch from 0.9.0 in the pack (it has patches from 1.0.0)" {
		t.Errorf("progress says %+v", p)
	}
	if n := srv.servedBytes("/1.1.0/" + pr.patchPath); n != 0 {
		t.Errorf("a patch from another version was downloaded (%d bytes)", n)
	}

	pr = newPatchRelease(t, sk, nil)
	pk := filepath.Join(t.TempDir(), "1.1.0.pack")
	pr.rel.writePack(t, pk)
	ms = methods{}
	o = testOptions(pr.h, pub)
	o.Progress = ms.progress
	if err := New(o).Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: PackSource(pk)}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, pr.h.AgentBinary("1.1.0")), pr.agent) || len(ms.seen) != 0 {
		t.Errorf("from a pack file: %+v", ms.seen)
	}
}

// TestPatchCrash kills the process (SIGKILL) once the patch is downloaded
// and once it is half applied; the next run finishes from the patch on
// disk without downloading anything again.
func TestPatchCrash(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the crash harness is Unix's")
	}
	pub, sk := newKey(t)
	for _, point := range []string{"patch-downloaded-" + pack.RoleAgent, "patch-applying"} {
		t.Run(point, func(t *testing.T) {
			pr := newPatchRelease(t, sk, nil)
			srv := newServer(t)
			base := srv.publish(pr.rel)
			env := []string{envHome + "=" + pr.h.Dir, envOrder + "=o", envVersion + "=1.1.0", envKey + "=" + pub.String(), envURL + "=" + base}
			out, err := helperCmd(t, "upgrade", append(env, envCrashAt+"="+point)...).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Exited() {
				t.Fatalf("helper was not killed at %s: %v\n%s", point, err, out)
			}
			if point == "patch-applying" {
				half := filepath.Join(pr.h.CacheDir(), "1.1.0", "agent.patched")
				if fi, err := os.Stat(half); err != nil || fi.Size() == 0 || fi.Size() >= int64(len(pr.agent)) {
					t.Fatalf("no half-applied agent.patched: %v %v", fi, err)
				}
			}
			checkHomeInvariants(t, pr.h)
			if out, err := helperCmd(t, "upgrade", env...).CombinedOutput(); err != nil {
				t.Fatalf("second run: %v\n%s", err, out)
			}
			if got := readFile(t, pr.h.AgentBinary("1.1.0")); !bytes.Equal(got, pr.agent) {
				t.Fatal("the staged agent is not 1.1.0's")
			}
			if n := srv.servedBytes(srv.path(pr.rel, pack.RoleAgent)); n != 0 {
				t.Errorf("the full agent was downloaded after the crash (%d bytes)", n)
			}
			if n := srv.servedBytes("/1.1.0/" + pr.patchPath); n != int64(len(pr.patch)) {
				t.Errorf("served %d bytes of the %d-byte patch: downloaded again", n, len(pr.patch))
			}
		})
	}
}

// TestPatchFallbackResumes: when the patch cannot be used, the full
// file's download resumes across a kill like any download: the part file
// only ever holds the full file's bytes, never a patch's output.
func TestPatchFallbackResumes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the crash harness is Unix's")
	}
	pub, sk := newKey(t)
	pr := newPatchRelease(t, sk, nil)
	b := bytes.Clone(pr.old)
	b[1000] ^= 1
	if err := os.WriteFile(pr.h.AgentBinary("1.0.0"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	srv := newServer(t)
	base := srv.publish(pr.rel)
	agent := srv.path(pr.rel, pack.RoleAgent)
	const at = copyBuffer + 20_000
	srv.edit(func() { srv.hold[agent] = at })
	env := []string{envHome + "=" + pr.h.Dir, envOrder + "=o", envVersion + "=1.1.0", envKey + "=" + pub.String(), envURL + "=" + base}
	cmd := helperCmd(t, "upgrade", env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.held:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the helper never reached the hold")
	}
	part := New(testOptions(pr.h, pub)).partPath("1.1.0", pack.RoleAgent)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if fi, err := os.Stat(part); err == nil && fi.Size() >= copyBuffer {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no part file of a buffer")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	srv.releaseHolds()
	if out, err := helperCmd(t, "upgrade", env...).CombinedOutput(); err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if got := readFile(t, pr.h.AgentBinary("1.1.0")); !bytes.Equal(got, pr.agent) {
		t.Fatal("the staged agent is not 1.1.0's")
	}
	// The first run sent at bytes, of which a buffer was written; the
	// second sends the rest.
	if got, max := srv.servedBytes(agent), int64(at+len(pr.agent)-copyBuffer); got > max {
		t.Errorf("served %d bytes of the agent, more than %d: the fallback's download started over", got, max)
	}
}
