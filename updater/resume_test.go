package updater

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/moltfleet/molt/updater/pack"
)

// TestResumeAfterCuts cuts the artifact's connection at several offsets;
// the download completes and the server sends every byte exactly once.
func TestResumeAfterCuts(t *testing.T) {
	const size = 1 << 20
	for _, tc := range []struct {
		name string
		cuts []int64
	}{
		{"at 0", []int64{0}},
		{"at 1", []int64{1}},
		{"mid", []int64{size / 2}},
		{"at size-1", []int64{size - 1}},
		{"all of them", []int64{0, 1, size / 2, size - 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub, h, srv, _, base, agent := publishRelease(t, size, 1000)
			srv.edit(func() { srv.cuts[agent] = tc.cuts })

			u := New(testOptions(h, pub))
			if err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)}); err != nil {
				t.Fatal(err)
			}
			if got := srv.servedBytes(agent); got != size {
				t.Errorf("server sent %d bytes of a %d-byte file: something was downloaded twice", got, size)
			}
			if n := srv.requestCount(agent); n != len(tc.cuts)+1 {
				t.Errorf("%d requests for %d cuts", n, len(tc.cuts))
			}
			if err := u.Switch("o"); err != nil {
				t.Fatal(err)
			}
			checkHomeInvariants(t, h)
		})
	}
}

// TestResumeChangedFile: the server's file changed between attempts (its
// ETag differs), so If-Range makes it send the whole file, and the
// download starts over cleanly.
func TestResumeChangedFile(t *testing.T) {
	const size = 300_000
	pub, h, srv, _, base, agent := publishRelease(t, size, 100)
	srv.edit(func() { srv.cuts[agent] = []int64{size / 3} })
	u := New(testOptions(h, pub))
	u.sleep = func(context.Context, time.Duration) error {
		srv.mu.Lock()
		srv.etags[agent] = `"rebuilt"`
		srv.mu.Unlock()
		return nil
	}
	if err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)}); err != nil {
		t.Fatal(err)
	}
	if got, want := srv.servedBytes(agent), int64(size/3+size); got != want {
		t.Errorf("served %d bytes, want %d (the cut part, then all of it)", got, want)
	}
}

// TestLeftovers: partial files from an earlier process, with no state
// telling where they came from, never break a later attempt.
func TestLeftovers(t *testing.T) {
	const size = 200_000
	for _, tc := range []struct {
		name      string
		leftover  func(good []byte) []byte
		wantBytes int64
	}{
		{"zero bytes", func([]byte) []byte { return nil }, size},
		{"good prefix", func(g []byte) []byte { return g[:size/4] }, size - size/4},
		{"garbage prefix", func([]byte) []byte { return randomBytes(size/4, 99) }, size - size/4 + size},
		{"longer than the file", func([]byte) []byte { return randomBytes(size+10, 98) }, size},
		{"whole file, wrong bytes", func([]byte) []byte { return randomBytes(size, 97) }, size},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub, sk := newKey(t)
			h := testHome(t, t.TempDir())
			srv := newServer(t)
			rel := newRelease(t, sk, "1.1.0", files("1.1.0", size, 100), nil)
			base := srv.publish(rel)
			u := New(testOptions(h, pub))
			if err := os.MkdirAll(u.cacheDir("1.1.0"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(u.partPath("1.1.0", pack.RoleAgent), tc.leftover(rel.files[testPlatform][pack.RoleAgent]), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)}); err != nil {
				t.Fatal(err)
			}
			if got := srv.servedBytes(srv.path(rel, pack.RoleAgent)); got != tc.wantBytes {
				t.Errorf("served %d bytes, want %d", got, tc.wantBytes)
			}
			if err := u.Switch("o"); err != nil {
				t.Fatal(err)
			}
			checkHomeInvariants(t, h)
		})
	}
}

// TestRetriesBounded: a server that always fails is asked a bounded
// number of times, with backoff between, and the cache is kept for later.
func TestRetriesBounded(t *testing.T) {
	pub, h, srv, _, base, agent := publishRelease(t, 1000, 100)
	srv.setOverride(agent, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})
	o := testOptions(h, pub)
	o.Retry = Retry{Attempts: 5, Base: 10 * time.Second, Max: 40 * time.Second}
	u := New(o)
	var waits []time.Duration
	u.sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)})
	if err == nil || IsRefusal(err) {
		t.Fatalf("Prepare = %v, want a transient failure", err)
	}
	if n := srv.requestCount(agent); n != 5 {
		t.Errorf("%d requests, want 5", n)
	}
	if len(waits) != 4 {
		t.Fatalf("waits %v", waits)
	}
	// Equal jitter: each wait is within [d/2, d] of 10s doubling, capped.
	for i, d := range waits {
		hi := min(10*time.Second<<(i+1), 40*time.Second)
		if d < hi/2 || d > hi {
			t.Errorf("wait %d = %v, want within [%v, %v]", i, d, hi/2, hi)
		}
	}
	st, _ := u.State()
	if st.Phase != PhaseFailed || st.Refused || st.Error == "" {
		t.Errorf("state %+v", st)
	}
}

// TestResumeAfterKill kills a process mid-download with SIGKILL; the next
// Prepare continues from the bytes it left.
func TestResumeAfterKill(t *testing.T) {
	const size = 2 << 20
	const at = 3*copyBuffer + 1000
	pub, h, srv, _, base, agent := publishRelease(t, size, 1000)
	srv.edit(func() { srv.hold[agent] = at })

	cmd := helperCmd(t, "upgrade", envHome+"="+h.Dir, envURL+"="+base, envOrder+"=o",
		envVersion+"=1.1.0", envKey+"="+pub.String())
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.held:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the helper never reached the hold")
	}
	// The helper writes whole buffers, so what reaches the disk is the
	// received bytes rounded down to a buffer; wait until that settles.
	u := New(testOptions(h, pub))
	part := u.partPath("1.1.0", pack.RoleAgent)
	var onDisk int64
	stable := time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int64
		if fi, err := os.Stat(part); err == nil {
			n = fi.Size()
		}
		if n != onDisk {
			onDisk, stable = n, time.Now()
		}
		if onDisk > at-copyBuffer && time.Since(stable) > 300*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("%s never reached %d bytes (has %d)", part, at-copyBuffer, onDisk)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Success() {
		t.Fatalf("helper: %v, want killed", err)
	}
	srv.releaseHolds()
	// The process is dead: what is on disk now is all it left.
	if fi, err := os.Stat(part); err == nil {
		onDisk = fi.Size()
	}
	if st, _ := u.State(); st.Phase != PhaseDownloading || st.Files[pack.RoleAgent].Done != onDisk {
		t.Errorf("state after kill: phase %s, agent %+v", st.Phase, st.Files[pack.RoleAgent])
	}

	if err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)}); err != nil {
		t.Fatal(err)
	}
	// Only what the killed process had received but not written is sent
	// again.
	if got, want := srv.servedBytes(agent), size+(at-onDisk); got != want {
		t.Errorf("server sent %d bytes of a %d-byte file, want %d (%d were on disk at the kill)", got, size, want, onDisk)
	}
	if err := u.Switch("o"); err != nil {
		t.Fatal(err)
	}
	checkHomeInvariants(t, h)
}

// TestRetryAfter: a 503 with Retry-After is waited out as the server
// asks, capped by the policy's maximum.
func TestRetryAfter(t *testing.T) {
	pub, h, srv, _, base, agent := publishRelease(t, 1000, 100)
	data := srv.file(agent)
	calls := 0
	srv.setOverride(agent, func(w http.ResponseWriter, r *http.Request) {
		calls++
		if calls <= 2 {
			w.Header().Set("Retry-After", []string{"30", "3600"}[calls-1])
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Write(data)
	})
	o := testOptions(h, pub)
	o.Retry = Retry{Attempts: 5, Base: time.Second, Max: 10 * time.Minute}
	u := New(o)
	var waits []time.Duration
	u.sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	if err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)}); err != nil {
		t.Fatal(err)
	}
	if len(waits) != 2 || waits[0] != 30*time.Second || waits[1] != 10*time.Minute {
		t.Errorf("waits %v, want [30s 10m0s]", waits)
	}
}

// TestStalledConnection: a response that stops delivering bytes without
// closing is abandoned after the stall timeout and resumed.
func TestStalledConnection(t *testing.T) {
	const size = 600_000
	pub, h, srv, _, base, agent := publishRelease(t, size, 100)
	srv.edit(func() { srv.hold[agent] = size / 2 })
	o := testOptions(h, pub)
	o.StallTimeout = 300 * time.Millisecond
	u := New(o)
	if err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)}); err != nil {
		t.Fatal(err)
	}
	if n := srv.requestCount(agent); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
	// The stalled handler wrote size/2 bytes; the client kept whole
	// buffers of them and asked for the rest.
	if got := srv.servedBytes(agent); got < size || got > size+copyBuffer {
		t.Errorf("served %d bytes for a %d-byte file", got, size)
	}
}
