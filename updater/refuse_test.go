package updater

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/updater/pack/packtest"
)

// TestRefusals: every bad pack or disallowed target is refused with its
// sentinel, the active version is untouched and the cache is empty.
func TestRefusals(t *testing.T) {
	const size = 100_000
	type env struct {
		t       *testing.T
		h       home.Home
		srv     *server
		sk      pack.SecretKey
		keys    []pack.Key
		rel     *release
		version string // the order's version
		base    string
		// maxServed bounds the agent bytes the server may send.
		maxServed int64
	}
	for _, tc := range []struct {
		name  string
		setup func(e *env)
		want  error
	}{
		{"tampered artifact", func(e *env) {
			p := e.srv.path(e.rel, pack.RoleAgent)
			b := bytes.Clone(e.srv.file(p))
			b[size/2] ^= 1
			e.srv.setFile(p, b)
		}, pack.ErrHashMismatch},
		{"wrong key", func(e *env) {
			other, _ := newKey(e.t)
			e.keys = []pack.Key{other}
		}, pack.ErrUntrustedKey},
		{"no trusted key", func(e *env) { e.keys = nil }, pack.ErrUntrustedKey},
		{"manifest changed after signing", func(e *env) {
			m := bytes.Replace(e.rel.mb, []byte(`"1.1.0"`), []byte(`"1.1.1"`), 1)
			e.srv.setFile("/1.1.0/"+pack.ManifestName, m)
		}, pack.ErrBadSignature},
		{"truncated file", func(e *env) {
			p := e.srv.path(e.rel, pack.RoleAgent)
			e.srv.setFile(p, e.srv.file(p)[:size-100])
		}, pack.ErrSizeMismatch},
		{"oversize response", func(e *env) {
			p := e.srv.path(e.rel, pack.RoleAgent)
			e.srv.setFile(p, append(bytes.Clone(e.srv.file(p)), make([]byte, 5000)...))
			// Refused on its Content-Length, before reading the body.
			e.maxServed = size + 5000
		}, pack.ErrSizeMismatch},
		{"endless response", func(e *env) {
			p := e.srv.path(e.rel, pack.RoleAgent)
			e.srv.setOverride(p, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusOK)
				buf := make([]byte, 32<<10)
				for {
					n, err := w.Write(buf)
					e.srv.mu.Lock()
					e.srv.served[p] += int64(n)
					e.srv.mu.Unlock()
					if err != nil {
						return
					}
				}
			})
			// Cut off at size+1: what else arrives is only what sat in
			// socket buffers.
			e.maxServed = size + 16<<20
		}, pack.ErrSizeMismatch},
		{"oversize manifest", func(e *env) {
			e.srv.setFile("/1.1.0/"+pack.ManifestName, make([]byte, pack.MaxManifestSize+1))
		}, pack.ErrTooLarge},
		{"wrong platform", func(e *env) {
			e.rel = newRelease(e.t, e.sk, "1.1.0", packtest.Files{"plan9/amd64": {pack.RoleAgent: []byte("x")}}, nil)
			e.base = e.srv.publish(e.rel)
		}, ErrPlatformMissing},
		{"below the remembered floor", func(e *env) {
			if err := writeJSON(e.h, filepath.Join(e.h.StateDir(), "floor.json"), floorState{Floor: "1.2.0"}); err != nil {
				e.t.Fatal(err)
			}
		}, ErrBelowFloor},
		{"floor above its own version", func(e *env) {
			e.rel = newRelease(e.t, e.sk, "1.1.0", files("1.1.0", size, 100), func(m *pack.Manifest) { m.Floor = "1.3.0" })
			e.base = e.srv.publish(e.rel)
		}, pack.ErrBadManifest},
		{"already running", func(e *env) {
			e.rel = newRelease(e.t, e.sk, "1.0.0", files("1.0.0", size, 100), nil)
			e.base = e.srv.publish(e.rel)
			e.version = "1.0.0"
		}, ErrAlreadyRunning},
		{"manifest of another version", func(e *env) {
			e.version = "1.2.0"
		}, ErrVersionMismatch},
		{"no space", func(e *env) {}, ErrNoSpace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub, sk := newKey(t)
			h := testHome(t, t.TempDir())
			srv := newServer(t)
			e := &env{t: t, h: h, srv: srv, sk: sk, keys: []pack.Key{pub}, version: "1.1.0", maxServed: size}
			e.rel = newRelease(t, sk, "1.1.0", files("1.1.0", size, 100), nil)
			e.base = srv.publish(e.rel)
			tc.setup(e)
			activeBefore := readFile(t, h.ActivePath())

			o := testOptions(h, e.keys...)
			if tc.want == ErrNoSpace {
				o.FreeSpace = func(string) (uint64, error) { return 50 << 20, nil }
			}
			u := New(o)
			err := u.Prepare(context.Background(), Order{ID: "o", Version: e.version, Source: HTTPSource(e.base)})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Prepare = %v, want %v", err, tc.want)
			}
			if !IsRefusal(err) {
				t.Errorf("IsRefusal(%v) = false", err)
			}
			t.Logf("refused: %v", err)
			if b := readFile(t, h.ActivePath()); !bytes.Equal(b, activeBefore) {
				t.Errorf("active.json changed:\n%s", b)
			}
			if _, err := os.Stat(h.VersionDir(e.version)); e.version != "1.0.0" && !os.IsNotExist(err) {
				t.Errorf("versions/%s exists after a refusal", e.version)
			}
			if c := cacheEntries(t, h); len(c) != 0 {
				t.Errorf("cache not cleaned: %v", c)
			}
			if e.rel.m.Artifacts[testPlatform] != nil {
				if got := srv.servedBytes(srv.path(e.rel, pack.RoleAgent)); got > e.maxServed {
					t.Errorf("server sent %d agent bytes, more than %d", got, e.maxServed)
				}
			}
			st, err := u.State()
			if err != nil || st.Phase != PhaseFailed || !st.Refused || st.Error == "" {
				t.Errorf("state %+v %v", st, err)
			}
			if err := u.Switch("o"); !errors.Is(err, ErrNotStaged) {
				t.Errorf("Switch after a refusal = %v, want ErrNotStaged", err)
			}
			checkHomeInvariants(t, h)
		})
	}
}

// TestFloorRises: a verified manifest's floor is remembered and refuses a
// later, lower target even though that target's own manifest has none.
func TestFloorRises(t *testing.T) {
	pub, sk := newKey(t)
	h := testHome(t, t.TempDir())
	srv := newServer(t)
	high := newRelease(t, sk, "1.5.0", files("1.5.0", 0, 100), func(m *pack.Manifest) { m.Floor = "1.4.0" })
	low := newRelease(t, sk, "1.3.0", files("1.3.0", 0, 100), nil)
	ok := newRelease(t, sk, "1.4.0", files("1.4.0", 0, 100), nil)
	u := New(testOptions(h, pub))
	ctx := context.Background()
	if err := u.Prepare(ctx, Order{ID: "a", Version: "1.5.0", Source: HTTPSource(srv.publish(high))}); err != nil {
		t.Fatal(err)
	}
	if f, _ := u.Floor(); f != "1.4.0" {
		t.Fatalf("floor %q, want 1.4.0", f)
	}
	if err := u.Prepare(ctx, Order{ID: "b", Version: "1.3.0", Source: HTTPSource(srv.publish(low))}); !errors.Is(err, ErrBelowFloor) {
		t.Fatalf("Prepare 1.3.0 = %v, want ErrBelowFloor", err)
	}
	// A revert that stays within the floor is allowed.
	if err := u.Prepare(ctx, Order{ID: "c", Version: "1.4.0", Source: HTTPSource(srv.publish(ok))}); err != nil {
		t.Fatal(err)
	}
	if f, _ := u.Floor(); f != "1.4.0" {
		t.Errorf("floor %q after a manifest without one", f)
	}
}
