package updater

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/workload/spec"
)

// wfile is one file of a test workload.
type wfile struct {
	path, mode string
	data       []byte
}

// testWorkload is a workload of a test release: its spec (files filled in
// from its wfiles) and its files.
type testWorkload struct {
	spec  spec.Spec
	files []wfile
}

// exporter is a workload of a few files: an executable, a config, an
// empty file and a file two directories deep.
func exporter() testWorkload {
	return testWorkload{
		spec: spec.Spec{Name: "exporter", Command: "bin/exporter", Ready: spec.Ready{Probe: spec.Probe{Running: spec.Duration(time.Second)}}},
		files: []wfile{
			{"bin/exporter", "0755", []byte("#!/bin/sh\nexec sleep 60\n")},
			{"conf/default.yaml", "0644", []byte("listen: 127.0.0.1:9100\n")},
			{"conf/empty", "0600", nil},
			{"lib/py/mod/data.bin", "0644", randomBytes(300_000, 5)},
		},
	}
}

// newWorkloadRelease is release version of the molt binaries plus ws on
// the test platform; edit may change the manifest before it is signed.
func newWorkloadRelease(t testing.TB, sk pack.SecretKey, version string, ws []testWorkload, edit func(*pack.Manifest)) *release {
	t.Helper()
	var specs []spec.Workload
	wfiles := map[string][]byte{}
	for _, w := range ws {
		sw := spec.Workload{Spec: w.spec}
		for _, f := range w.files {
			sw.Files = append(sw.Files, spec.File{Path: f.path, Size: int64(len(f.data)), SHA256: sha(f.data), Mode: f.mode})
			wfiles[spec.PackPath(testPlatform, w.spec.Name, f.path)] = f.data
		}
		specs = append(specs, sw)
	}
	rel := newRelease(t, sk, version, files(version, 2000, 100), func(m *pack.Manifest) {
		m.Workloads = map[string][]spec.Workload{testPlatform: specs}
		if edit != nil {
			edit(m)
		}
	})
	rel.wfiles = wfiles
	return rel
}

// checkWorkloadInstalled asserts that versions/<v> holds ws with their
// contents and modes, and a workloads.json naming them.
func checkWorkloadInstalled(t testing.TB, h home.Home, v string, ws []testWorkload) {
	t.Helper()
	for _, w := range ws {
		for _, f := range w.files {
			p := filepath.Join(h.WorkloadDir(v, w.spec.Name), filepath.FromSlash(f.path))
			b, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(b, f.data) {
				t.Errorf("%s: %d bytes, %v; want the %d bytes of the manifest", p, len(b), err, len(f.data))
				continue
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			want := (spec.File{Mode: f.mode}).Perm()
			if runtime.GOOS != "windows" && uint32(fi.Mode().Perm()) != want {
				t.Errorf("%s: mode %o, want %o", f.path, fi.Mode().Perm(), want)
			}
			for d := filepath.Dir(p); d != h.WorkloadDir(v, w.spec.Name); d = filepath.Dir(d) {
				if fi, err := os.Stat(d); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o755) {
					t.Errorf("directory %s: %v %v, want 0755", d, fi.Mode(), err)
				}
			}
		}
	}
	b, err := os.ReadFile(h.WorkloadsFile(v))
	if err != nil {
		t.Fatalf("workloads.json: %v", err)
	}
	in, err := spec.ParseInstalled(b)
	if err != nil {
		t.Fatalf("workloads.json: %v", err)
	}
	if in.Version != v || in.Platform != testPlatform || len(in.Workloads) != len(ws) {
		t.Fatalf("workloads.json = %s %s with %d workloads, want %s %s with %d", in.Version, in.Platform, len(in.Workloads), v, testPlatform, len(ws))
	}
	for i, w := range ws {
		if got := in.Workloads[i]; got.Spec.Name != w.spec.Name || len(got.Files) != len(w.files) {
			t.Errorf("workloads.json workload %d = %s with %d files, want %s with %d", i, got.Spec.Name, len(got.Files), w.spec.Name, len(w.files))
		}
	}
}

// TestStageWorkloads stages a release with a workload from a server and
// from a pack file: the files land in versions/<v>/workloads/<name>/ with
// their modes, workloads.json is there before .valid, and .valid names
// every file.
func TestStageWorkloads(t *testing.T) {
	for _, source := range []string{"http", "pack"} {
		t.Run(source, func(t *testing.T) {
			pub, sk := newKey(t)
			ws := []testWorkload{exporter()}
			rel := newWorkloadRelease(t, sk, "1.1.0", ws, nil)
			h := testHome(t, t.TempDir())
			src := HTTPSource(newServer(t).publish(rel))
			if source == "pack" {
				pk := filepath.Join(t.TempDir(), "1.1.0.pack")
				rel.writePack(t, pk)
				src = PackSource(pk)
			}
			o := testOptions(h, pub)
			var reported []string
			o.Progress = func(p Progress) {
				if p.Done == p.Total {
					reported = append(reported, p.File)
				}
			}
			u := New(o)
			var atRename, atValid [2]bool
			u.checkpoint = func(name string) {
				_, errW := os.Stat(h.WorkloadsFile("1.1.0"))
				switch name {
				case "staging-renamed":
					atRename = [2]bool{errW == nil, h.IsValid("1.1.0")}
				case "valid-written":
					atValid = [2]bool{errW == nil, h.IsValid("1.1.0")}
				}
			}
			if err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: src}); err != nil {
				t.Fatal(err)
			}
			if atRename != [2]bool{true, false} || atValid != [2]bool{true, true} {
				t.Errorf("workloads.json, .valid: at the rename %v, after .valid %v; want workloads.json first, .valid last", atRename, atValid)
			}
			checkWorkloadInstalled(t, h, "1.1.0", ws)
			var mk validMarker
			if ok, err := readJSON(h.ValidPath("1.1.0"), &mk); !ok || err != nil {
				t.Fatalf(".valid: %v", err)
			}
			for _, name := range []string{"workloads.json", "workloads/exporter/bin/exporter", "workloads/exporter/conf/empty"} {
				if mk.Files[name] == "" {
					t.Errorf(".valid does not name %s: %v", name, mk.Files)
				}
			}
			if mk.Files["workloads/exporter/conf/empty"] != sha(nil) {
				t.Errorf(".valid: the empty file's hash is %s", mk.Files["workloads/exporter/conf/empty"])
			}
			for _, f := range []string{"workload/exporter/bin/exporter", "workload/exporter/conf/empty"} {
				if !strings.Contains(strings.Join(reported, " "), f) {
					t.Errorf("no progress report names %s: %v", f, reported)
				}
			}
			if c := cacheEntries(t, h); len(c) != 0 {
				t.Errorf("cache left: %v", c)
			}
			checkHomeInvariants(t, h)

			// A workload file altered on disk: a new order for the same
			// version finds it and installs the version again.
			conf := filepath.Join(h.WorkloadDir("1.1.0", "exporter"), "conf", "default.yaml")
			if err := os.WriteFile(conf, []byte("listen: 0.0.0.0:1\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := u.Prepare(context.Background(), Order{ID: "o2", Version: "1.1.0", Source: src}); err != nil {
				t.Fatal(err)
			}
			checkWorkloadInstalled(t, h, "1.1.0", ws)
			if err := u.Switch("o2"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestWorkloadDownloadResumes: a connection cut inside a workload's file
// costs no byte twice, and a Prepare stopped among a workload's files
// fetches none of those it finished again.
func TestWorkloadDownloadResumes(t *testing.T) {
	pub, sk := newKey(t)
	ws := []testWorkload{exporter()}
	rel := newWorkloadRelease(t, sk, "1.1.0", ws, nil)
	path := func(f string) string { return "/1.1.0/" + spec.PackPath(testPlatform, "exporter", f) }

	t.Run("cut", func(t *testing.T) {
		h := testHome(t, t.TempDir())
		srv := newServer(t)
		base := srv.publish(rel)
		data := path("lib/py/mod/data.bin")
		srv.edit(func() { srv.cuts[data] = []int64{100_000} })
		if err := New(testOptions(h, pub)).Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)}); err != nil {
			t.Fatal(err)
		}
		checkWorkloadInstalled(t, h, "1.1.0", ws)
		if got := srv.servedBytes(data); got != 300_000 {
			t.Errorf("data.bin: served %d bytes of 300000 (cut at 100000): something was sent twice", got)
		}
		if n := srv.requestCount(data); n != 2 {
			t.Errorf("data.bin requested %d times, want 2 (one cut)", n)
		}
	})

	t.Run("stopped", func(t *testing.T) {
		h := testHome(t, t.TempDir())
		srv := newServer(t)
		base := srv.publish(rel)
		u := New(testOptions(h, pub))
		ctx, cancel := context.WithCancel(context.Background())
		var mu sync.Mutex
		var done []string
		u.checkpoint = func(name string) {
			if f, ok := strings.CutPrefix(name, "downloaded-workload/exporter/"); ok {
				mu.Lock()
				done = append(done, f)
				mu.Unlock()
				cancel()
			}
		}
		o := Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)}
		if err := u.Prepare(ctx, o); err == nil {
			t.Fatal("Prepare went on after its context ended")
		}
		if st, _ := u.State(); st.Phase != PhaseDownloading {
			t.Errorf("after the interruption: phase %s, want downloading", st.Phase)
		}
		mu.Lock()
		finished := slices.Clone(done)
		mu.Unlock()
		if len(finished) == 0 {
			t.Fatal("no workload file was finished before the interruption")
		}
		u.checkpoint = func(string) {}
		if err := u.Prepare(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		checkWorkloadInstalled(t, h, "1.1.0", ws)
		for _, f := range finished {
			if n := srv.requestCount(path(f)); n != 1 && !(n == 0 && len(rel.wfiles[spec.PackPath(testPlatform, "exporter", f)]) == 0) {
				t.Errorf("%s, finished before the interruption, was requested %d times, want once", f, n)
			}
		}
	})
}

// TestWorkloadRefusals: a workload file that is not what the signed
// manifest says, a pack with a file it does not name, and a bad spec are
// refused with their sentinel, and nothing is left in versions/ or cache/.
func TestWorkloadRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		source string
		edit   func(*pack.Manifest)
		tamper func(rel *release)
		want   error
		line   string // in the error, for a spec
	}{
		{name: "altered file over http", source: "http", tamper: func(rel *release) {
			p := spec.PackPath(testPlatform, "exporter", "lib/py/mod/data.bin")
			b := bytes.Clone(rel.wfiles[p])
			b[1000] ^= 1
			rel.wfiles[p] = b
		}, want: pack.ErrHashMismatch},
		{name: "altered file in a pack", source: "pack", tamper: func(rel *release) {
			p := spec.PackPath(testPlatform, "exporter", "conf/default.yaml")
			rel.wfiles[p] = []byte("listen: 127.0.0.2:9100\n")
		}, want: pack.ErrHashMismatch},
		{name: "extra file in a pack", source: "pack", tamper: func(rel *release) {
			rel.wfiles[spec.PackPath(testPlatform, "exporter", "bin/backdoor")] = []byte("#!/bin/sh\n")
		}, want: pack.ErrBadPack},
		{name: "command not executable", source: "http", edit: func(m *pack.Manifest) {
			m.Workloads[testPlatform][0].Files[0].Mode = "0644"
		}, want: spec.ErrBadSpec, line: `workload "exporter": command "bin/exporter" is not executable (mode 0644)`},
		{name: "path escapes", source: "pack", edit: func(m *pack.Manifest) {
			m.Workloads[testPlatform][0].Files[1].Path = "../../../etc/cron.d/x"
		}, want: spec.ErrBadSpec, line: `file "../../../etc/cron.d/x": not a clean relative path inside the workload`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub, sk := newKey(t)
			rel := newWorkloadRelease(t, sk, "1.1.0", []testWorkload{exporter()}, tc.edit)
			if tc.tamper != nil {
				tc.tamper(rel)
			}
			h := testHome(t, t.TempDir())
			src := HTTPSource(newServer(t).publish(rel))
			if tc.source == "pack" {
				pk := filepath.Join(t.TempDir(), "1.1.0.pack")
				rel.writePack(t, pk)
				src = PackSource(pk)
			}
			u := New(testOptions(h, pub))
			err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: src})
			if !errors.Is(err, tc.want) || !IsRefusal(err) {
				t.Fatalf("Prepare = %v, want a refusal wrapping %v", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") || (tc.line != "" && !strings.Contains(err.Error(), tc.line)) {
				t.Errorf("error %q: want one line containing %q", err, tc.line)
			}
			if _, err := os.Stat(h.VersionDir("1.1.0")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("versions/1.1.0 exists after a refusal: %v", err)
			}
			if ents, _ := os.ReadDir(h.VersionsDir()); len(ents) != 1 {
				t.Errorf("versions/ holds %d entries, want only 1.0.0", len(ents))
			}
			if c := cacheEntries(t, h); len(c) != 0 {
				t.Errorf("cache left: %v", c)
			}
			if tc.want == spec.ErrBadSpec {
				// Refused from the manifest alone: nothing was fetched.
				if _, err := os.Stat(h.CacheDir()); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("cache/ was made for a manifest with a bad spec: %v", err)
				}
			}
			if st, _ := u.State(); st.Phase != PhaseFailed || !st.Refused {
				t.Errorf("state = %s refused=%v, want failed and refused", st.Phase, st.Refused)
			}
			checkHomeInvariants(t, h)
		})
	}
}

// smallTree is a workload of n small files (100 to 4000 bytes).
func smallTree(n int) testWorkload {
	w := testWorkload{spec: spec.Spec{Name: "tree", Command: "bin/run", Ready: spec.Ready{Probe: spec.Probe{Running: spec.Duration(time.Second)}}}}
	w.files = append(w.files, wfile{"bin/run", "0755", []byte("#!/bin/sh\n")})
	for i := range n - 1 {
		w.files = append(w.files, wfile{fmt.Sprintf("lib/m%02d/f%04d.py", i%20, i), "0644", randomBytes(100+(i*37)%3900, uint64(i))})
	}
	return w
}

// TestManySmallFiles stages a workload of 500 small files over HTTP and
// from a pack, and logs how long it took (docs/updater.md has the
// numbers): every file is downloaded, verified, fsynced and staged.
func TestManySmallFiles(t *testing.T) {
	n := 500
	if testing.Short() {
		n = 100
	}
	pub, sk := newKey(t)
	ws := []testWorkload{smallTree(n)}
	rel := newWorkloadRelease(t, sk, "1.1.0", ws, nil)
	pk := filepath.Join(t.TempDir(), "1.1.0.pack")
	rel.writePack(t, pk)
	for _, source := range []string{"http", "pack"} {
		t.Run(source, func(t *testing.T) {
			h := testHome(t, t.TempDir())
			src := PackSource(pk)
			if source == "http" {
				src = HTTPSource(newServer(t).publish(rel))
			}
			u := New(testOptions(h, pub))
			start := time.Now()
			if err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: src}); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			t.Logf("%s: %d files staged in %s (%.2f ms a file)", source, n, took.Round(time.Millisecond), float64(took.Microseconds())/1000/float64(n))
			checkWorkloadInstalled(t, h, "1.1.0", ws)
			b, err := os.ReadFile(h.UpgradePath())
			if err != nil {
				t.Fatal(err)
			}
			// upgrade.json names each file, without its URL.
			if per := len(b) / n; per > 300 {
				t.Errorf("upgrade.json takes %d bytes a file", per)
			}
		})
	}
}

// BenchmarkManySmallFiles stages a workload of 500 small files over
// loopback HTTP, as is and with a 5 ms round trip per request (a server
// farther away): ms/file is the cost of one file.
func BenchmarkManySmallFiles(b *testing.B) {
	const n = 500
	pub, sk := newKey(b)
	rel := newWorkloadRelease(b, sk, "1.1.0", []testWorkload{smallTree(n)}, nil)
	for _, rtt := range []time.Duration{0, 5 * time.Millisecond} {
		b.Run("rtt="+rtt.String(), func(b *testing.B) {
			srv := newServer(b)
			srv.delay = rtt
			base := srv.publish(rel)
			for b.Loop() {
				h := testHome(b, b.TempDir())
				u := New(testOptions(h, pub))
				if err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N*n), "ms/file")
		})
	}
}

// TestWorkloadSpaceCounted: the preflight counts a workload's files in
// whole blocks, so a tree of small files that fits by the sum of its sizes
// but not on the disk is refused before anything is fetched.
func TestWorkloadSpaceCounted(t *testing.T) {
	pub, sk := newKey(t)
	w := smallTree(100)
	rel := newWorkloadRelease(t, sk, "1.1.0", []testWorkload{w}, nil)
	var sum, blocks int64
	for _, f := range w.files {
		sum += int64(len(f.data))
		blocks += roundBlock(int64(len(f.data)))
	}
	for _, a := range rel.m.Artifacts[testPlatform] {
		sum += a.Size
		blocks += roundBlock(a.Size)
	}
	for _, tc := range []struct {
		free uint64
		want error
	}{
		{uint64(sum), ErrNoSpace},
		{uint64(blocks), nil},
	} {
		h := testHome(t, t.TempDir())
		srv := newServer(t)
		o := testOptions(h, pub)
		o.ReserveBytes = -1
		o.FreeSpace = func(string) (uint64, error) { return tc.free, nil }
		err := New(o).Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(srv.publish(rel))})
		if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
			t.Errorf("free %d bytes (files %d, in blocks %d): Prepare = %v, want %v", tc.free, sum, blocks, err, tc.want)
		}
		if tc.want != nil && srv.requestCount("/1.1.0/"+spec.PackPath(testPlatform, "tree", "bin/run")) != 0 {
			t.Errorf("a workload file was fetched before the space was refused")
		}
	}
}
