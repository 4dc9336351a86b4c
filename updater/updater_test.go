package updater

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/updater/pack/packtest"
)

func TestPrepareSwitchHTTP(t *testing.T) {
	pub, sk := newKey(t)
	h := testHome(t, t.TempDir())
	srv := newServer(t)
	rel := newRelease(t, sk, "1.1.0", files("1.1.0", 0, 3000), nil)
	base := srv.publish(rel)

	var got []Progress
	o := testOptions(h, pub)
	o.Progress = func(p Progress) { got = append(got, p) }
	u := New(o)
	order := Order{ID: "o-1", Version: "1.1.0", Source: HTTPSource(base)}
	if err := u.Prepare(context.Background(), order); err != nil {
		t.Fatal(err)
	}
	st, err := u.State()
	if err != nil || st.Phase != PhaseStaged {
		t.Fatalf("state after Prepare: %+v %v", st, err)
	}
	if a, _ := h.ReadActive(); a.Current != "1.0.0" {
		t.Fatalf("Prepare changed the active version: %+v", a)
	}
	if !h.IsValid("1.1.0") {
		t.Fatal("versions/1.1.0 has no .valid")
	}
	for role, data := range rel.files[testPlatform] {
		if b := readFile(t, filepath.Join(h.VersionDir("1.1.0"), u.exeName(role))); !bytes.Equal(b, data) {
			t.Errorf("%s staged with other bytes", role)
		}
	}
	if fi, err := os.Stat(h.AgentBinary("1.1.0")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("agent binary not executable: %v %v", fi.Mode(), err)
	}
	if len(cacheEntries(t, h)) != 0 {
		t.Errorf("cache not emptied after staging: %v", cacheEntries(t, h))
	}
	last := map[string]Progress{}
	for _, p := range got {
		if prev, ok := last[p.File]; ok && p.Done < prev.Done {
			t.Errorf("progress went back: %+v after %+v", p, prev)
		}
		last[p.File] = p
	}
	for role, data := range rel.files[testPlatform] {
		if p := last[role]; p.Done != int64(len(data)) || p.Total != int64(len(data)) || p.Order != "o-1" {
			t.Errorf("last progress of %s: %+v", role, p)
		}
	}

	// Prepare again is a no-op.
	before := srv.servedBytes(srv.path(rel, pack.RoleAgent))
	if err := u.Prepare(context.Background(), order); err != nil {
		t.Fatal(err)
	}
	if after := srv.servedBytes(srv.path(rel, pack.RoleAgent)); after != before {
		t.Errorf("second Prepare downloaded again: %d -> %d bytes", before, after)
	}

	if err := u.Switch("other"); !errors.Is(err, ErrUnknownOrder) {
		t.Errorf("Switch(other) = %v, want ErrUnknownOrder", err)
	}
	if err := u.Switch("o-1"); err != nil {
		t.Fatal(err)
	}
	a, err := h.ReadActive()
	if err != nil {
		t.Fatal(err)
	}
	want := home.Active{Current: "1.1.0", Previous: "1.0.0", Trial: &home.Trial{Version: "1.1.0", Switched: testNow, Order: "o-1"}}
	if diff := cmp.Diff(want, a); diff != "" {
		t.Errorf("active.json (-want +got):\n%s", diff)
	}
	if err := u.Switch("o-1"); err != nil {
		t.Errorf("second Switch: %v", err)
	}
	if st, _ := u.State(); st.Phase != PhaseSwitched {
		t.Errorf("phase %s, want switched", st.Phase)
	}
	if err := u.Abort("o-1"); !errors.Is(err, ErrAlreadySwitched) {
		t.Errorf("Abort after switch = %v", err)
	}
	if err := u.Finish("o-1"); err != nil {
		t.Fatal(err)
	}
	if st, _ := u.State(); st.Phase != PhaseDone {
		t.Errorf("phase %s, want done", st.Phase)
	}
	checkHomeInvariants(t, h)
}

func TestPrepareFromPackFile(t *testing.T) {
	pub, sk := newKey(t)
	dir := t.TempDir()
	h := testHome(t, filepath.Join(dir, "home"))
	rel := newRelease(t, sk, "1.2.0", files("1.2.0", 0, 5000), nil)
	pk := filepath.Join(dir, "molt-1.2.0.pack")
	rel.writePack(t, pk)

	u := New(testOptions(h, pub))
	order := Order{ID: "local-1", Version: "1.2.0", Source: PackSource(pk)}
	if err := u.Prepare(context.Background(), order); err != nil {
		t.Fatal(err)
	}
	if err := u.Switch("local-1"); err != nil {
		t.Fatal(err)
	}
	checkHomeInvariants(t, h)
	if a, _ := h.ReadActive(); a.Current != "1.2.0" || a.Previous != "1.0.0" {
		t.Errorf("active %+v", a)
	}
}

func TestSwitchRefusesVersionWithoutValid(t *testing.T) {
	pub, sk := newKey(t)
	h := testHome(t, t.TempDir())
	srv := newServer(t)
	base := srv.publish(newRelease(t, sk, "1.1.0", files("1.1.0", 0, 100), nil))
	u := New(testOptions(h, pub))
	if err := u.Switch("o"); !errors.Is(err, ErrUnknownOrder) {
		t.Errorf("Switch with no order = %v", err)
	}
	if err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(h.ValidPath("1.1.0")); err != nil {
		t.Fatal(err)
	}
	if err := u.Switch("o"); !errors.Is(err, ErrNotValid) {
		t.Fatalf("Switch = %v, want ErrNotValid", err)
	}
	if a, _ := h.ReadActive(); a.Current != "1.0.0" {
		t.Errorf("active changed: %+v", a)
	}
	// Prepare rebuilds the garbage directory.
	if err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)}); err != nil {
		t.Fatal(err)
	}
	if err := u.Switch("o"); err != nil {
		t.Fatal(err)
	}
	checkHomeInvariants(t, h)
}

func TestSwitchRefusesDuringTrial(t *testing.T) {
	pub, sk := newKey(t)
	h := testHome(t, t.TempDir())
	srv := newServer(t)
	base := srv.publish(newRelease(t, sk, "1.1.0", files("1.1.0", 0, 100), nil))
	installVersion(t, h, "0.9.0")
	if err := h.WriteActive(home.Active{Current: "1.0.0", Previous: "0.9.0", Trial: &home.Trial{Version: "1.0.0"}}); err != nil {
		t.Fatal(err)
	}
	u := New(testOptions(h, pub))
	if err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)}); err != nil {
		t.Fatal(err)
	}
	if err := u.Switch("o"); !errors.Is(err, ErrTrialInProgress) {
		t.Fatalf("Switch = %v, want ErrTrialInProgress", err)
	}
}

func TestCleanup(t *testing.T) {
	h := testHome(t, t.TempDir())
	for _, v := range []string{"0.8.0", "0.9.0", "1.1.0", "1.2.0"} {
		installVersion(t, h, v)
	}
	if err := os.MkdirAll(filepath.Join(h.VersionsDir(), ".0.7.0.staging"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"cache/0.9.0/agent.part", "cache/1.3.0/agent", "cache/stray"} {
		full := filepath.Join(h.Dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.WriteActive(home.Active{Current: "1.1.0", Previous: "1.0.0", Trial: &home.Trial{Version: "1.1.0"}}); err != nil {
		t.Fatal(err)
	}
	// A workload runs from 0.8.0 (no release since changed it); one
	// stopped from 0.9.0 holds nothing. The data directory is no version.
	if err := h.WriteWorkloadState(home.WorkloadState{Workloads: []home.WorkloadStatus{
		{Name: "exporter", Version: "0.8.0", State: home.WorkloadReady},
		{Name: "sensor", Version: "0.9.0", State: home.WorkloadStopped},
	}}); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(h.DataDir("exporter"), "db")
	os.MkdirAll(filepath.Dir(data), 0o750)
	if err := os.WriteFile(data, []byte("state"), 0o600); err != nil {
		t.Fatal(err)
	}
	// An order for 1.3.0 is downloading: its cache stays.
	u := New(testOptions(h))
	st := UpgradeState{Order: "o", Version: "1.3.0", Phase: PhaseDownloading}
	if err := u.saveState(&st); err != nil {
		t.Fatal(err)
	}
	removed, err := u.Cleanup()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		filepath.Join("cache", "0.9.0"), filepath.Join("cache", "stray"),
		filepath.Join("versions", ".0.7.0.staging"),
		filepath.Join("versions", "0.9.0"), filepath.Join("versions", "1.2.0"),
	}
	slices.Sort(want)
	if diff := cmp.Diff(want, removed); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	if b, err := os.ReadFile(data); err != nil || string(b) != "state" {
		t.Errorf("cleanup touched data/: %q %v", b, err)
	}
	for _, v := range []string{"0.8.0", "1.0.0", "1.1.0"} {
		if !h.IsValid(v) {
			t.Errorf("cleanup removed %s", v)
		}
	}
	if _, err := os.Stat(filepath.Join(h.Dir, "cache", "1.3.0", "agent")); err != nil {
		t.Errorf("cleanup removed the in-flight download: %v", err)
	}
	removed, err = u.Cleanup()
	if err != nil || len(removed) != 0 {
		t.Errorf("second cleanup: %v %v", removed, err)
	}
	// Which versions workloads run from is unknown: nothing goes.
	installVersion(t, h, "0.5.0")
	if err := os.WriteFile(h.WorkloadStatePath(), []byte("{garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if removed, err := u.Cleanup(); err == nil || len(removed) != 0 || !h.IsValid("0.5.0") {
		t.Errorf("cleanup with an unreadable state/workloads.json = %v, %v; want an error and nothing removed", removed, err)
	}
	if _, err := New(testOptions(home.Home{Dir: t.TempDir()})).Cleanup(); !errors.Is(err, home.ErrNoActive) {
		t.Errorf("cleanup without active.json = %v, want ErrNoActive", err)
	}
}

func TestAbort(t *testing.T) {
	pub, sk := newKey(t)
	h := testHome(t, t.TempDir())
	srv := newServer(t)
	rel := newRelease(t, sk, "1.1.0", files("1.1.0", 200_000, 100), nil)
	base := srv.publish(rel)
	srv.setOverride(srv.path(rel, pack.RoleAgent), func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "gone", http.StatusNotFound)
	})
	u := New(testOptions(h, pub))
	err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)})
	if err == nil || IsRefusal(err) {
		t.Fatalf("Prepare with a 404 artifact = %v, want a non-refusal error", err)
	}
	if n := srv.requestCount(srv.path(rel, pack.RoleAgent)); n != 1 {
		t.Errorf("a 404 was retried: %d requests", n)
	}
	if err := u.Abort("o"); err != nil {
		t.Fatal(err)
	}
	if st, _ := u.State(); st.Phase != PhaseAborted {
		t.Errorf("phase %s", st.Phase)
	}
	if c := cacheEntries(t, h); len(c) != 0 {
		t.Errorf("cache after abort: %v", c)
	}
	if err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)}); err == nil {
		t.Error("Prepare of an aborted order succeeded")
	}
}

func TestOrderChecks(t *testing.T) {
	u := New(testOptions(testHome(t, t.TempDir())))
	for _, o := range []Order{
		{ID: "", Version: "1.0.0", Source: HTTPSource("http://x/")},
		{ID: "a\nb", Version: "1.0.0", Source: HTTPSource("http://x/")},
		{ID: "o", Version: "../1", Source: HTTPSource("http://x/")},
		{ID: "o", Version: "1.0.0", Source: HTTPSource("ftp://x/")},
		{ID: "o", Version: "1.0.0", Source: Source{}},
		{ID: "o", Version: "1.0.0", Source: Source{URL: "http://x/", Pack: "/p"}},
	} {
		if err := u.Prepare(context.Background(), o); !errors.Is(err, ErrBadOrder) {
			t.Errorf("Prepare(%+v) = %v, want ErrBadOrder", o, err)
		}
	}
}

// TestAbsoluteArtifactURL: a manifest may point an artifact at another
// store by absolute URL.
func TestAbsoluteArtifactURL(t *testing.T) {
	pub, sk := newKey(t)
	h := testHome(t, t.TempDir())
	srv := newServer(t)
	fs := files("1.1.0", 0, 2000)
	rel := newRelease(t, sk, "1.1.0", fs, func(m *pack.Manifest) {
		a := m.Artifacts[testPlatform][pack.RoleAgent]
		a.Path = srv.URL + "/store/blob-1"
		m.Artifacts[testPlatform][pack.RoleAgent] = a
	})
	base := srv.publish(rel)
	srv.setFile("/store/blob-1", fs[testPlatform][pack.RoleAgent])
	u := New(testOptions(h, pub))
	if err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)}); err != nil {
		t.Fatal(err)
	}
	if n := srv.requestCount("/store/blob-1"); n != 1 {
		t.Errorf("%d requests to the store", n)
	}
	if err := u.Switch("o"); err != nil {
		t.Fatal(err)
	}
	checkHomeInvariants(t, h)
}

// TestUnreadableState: an upgrade.json a power cut left broken is ignored;
// the order starts over from the files on disk.
func TestUnreadableState(t *testing.T) {
	pub, sk := newKey(t)
	h := testHome(t, t.TempDir())
	srv := newServer(t)
	base := srv.publish(newRelease(t, sk, "1.1.0", files("1.1.0", 0, 100), nil))
	if err := os.WriteFile(h.UpgradePath(), []byte(`{"order": "o", "pha`), 0o644); err != nil {
		t.Fatal(err)
	}
	u := New(testOptions(h, pub))
	if st, err := u.State(); err != nil || st.Phase != PhaseNone {
		t.Errorf("State = %+v, %v", st, err)
	}
	if err := u.Prepare(context.Background(), Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)}); err != nil {
		t.Fatal(err)
	}
	if err := u.Switch("o"); err != nil {
		t.Fatal(err)
	}
}

// TestBusyHome: while another process holds the home's upgrade lock,
// every mutating call fails with ErrBusy and changes nothing.
func TestBusyHome(t *testing.T) {
	pub, sk := newKey(t)
	h := testHome(t, t.TempDir())
	srv := newServer(t)
	base := srv.publish(newRelease(t, sk, "1.1.0", files("1.1.0", 0, 100), nil))
	stop := filepath.Join(t.TempDir(), "stop")
	cmd := helperCmd(t, "lock", envHome+"="+h.Dir, envStop+"="+stop)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(stop, nil, 0o644); cmd.Wait() })
	line := make([]byte, 7)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "locked\n" {
		t.Fatalf("helper: %q %v", line, err)
	}

	u := New(testOptions(h, pub))
	order := Order{ID: "o", Version: "1.1.0", Source: HTTPSource(base)}
	err = u.Prepare(context.Background(), order)
	if !errors.Is(err, ErrBusy) || IsRefusal(err) {
		t.Fatalf("Prepare = %v, want ErrBusy", err)
	}
	t.Logf("busy: %v", err)
	if _, err := u.Cleanup(); !errors.Is(err, ErrBusy) {
		t.Errorf("Cleanup = %v, want ErrBusy", err)
	}
	if err := u.Switch("o"); !errors.Is(err, ErrBusy) {
		t.Errorf("Switch = %v, want ErrBusy", err)
	}
	if _, err := os.Stat(h.UpgradePath()); !os.IsNotExist(err) {
		t.Errorf("upgrade.json written while busy: %v", err)
	}

	os.WriteFile(stop, nil, 0o644)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := u.Prepare(context.Background(), order); err != nil {
		t.Fatal(err)
	}
}

// TestRevertToInstalledVersion: going back to the previous version, still
// installed and valid with the manifest's files, downloads nothing.
func TestRevertToInstalledVersion(t *testing.T) {
	pub, sk := newKey(t)
	h := testHome(t, t.TempDir())
	srv := newServer(t)
	up := newRelease(t, sk, "1.1.0", files("1.1.0", 0, 100), nil)
	back := newRelease(t, sk, "1.0.0", packtest.Files{testPlatform: {pack.RoleAgent: script("1.0.0", 0)}}, nil)
	u := New(testOptions(h, pub))
	ctx := context.Background()
	if err := u.Prepare(ctx, Order{ID: "up", Version: "1.1.0", Source: HTTPSource(srv.publish(up))}); err != nil {
		t.Fatal(err)
	}
	if err := u.Switch("up"); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteActive(home.Active{Current: "1.1.0", Previous: "1.0.0"}); err != nil { // trial committed
		t.Fatal(err)
	}
	if err := u.Prepare(ctx, Order{ID: "back", Version: "1.0.0", Source: HTTPSource(srv.publish(back))}); err != nil {
		t.Fatal(err)
	}
	if n := srv.requestCount(srv.path(back, pack.RoleAgent)); n != 0 {
		t.Errorf("the installed version was downloaded again (%d requests)", n)
	}
	if err := u.Switch("back"); err != nil {
		t.Fatal(err)
	}
	if a, _ := h.ReadActive(); a.Current != "1.0.0" || a.Previous != "1.1.0" || a.Trial == nil {
		t.Errorf("active %+v", a)
	}
	checkHomeInvariants(t, h)
}
