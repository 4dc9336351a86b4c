package pack_test

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/buildinfo"
	"github.com/moltfleet/molt/internal/e2etest/gobuild"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/updater/pack/packtest"
)

const testVersion = "1.5.0"

// binDirs holds real molt-agent and molt-supervisor binaries of
// testVersion for the host platform (as scripts/build.sh lays them out),
// built once by the first test that needs them: tests of manifests and
// readers do not wait for (or depend on) a build of the programs.
var binDirs struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDirs.dir != "" {
		os.RemoveAll(binDirs.dir)
	}
	os.Exit(code)
}

func realBins(t testing.TB) string {
	t.Helper()
	binDirs.once.Do(func() {
		dir, err := os.MkdirTemp("", "molt-pack-test")
		if err != nil {
			binDirs.err = err
			return
		}
		binDirs.dir = dir
		host := filepath.Join(dir, runtime.GOOS+"_"+runtime.GOARCH)
		// Stripped, as scripts/build.sh builds them: smaller packs, quicker tests.
		_, err = gobuild.Build(host+string(filepath.Separator), gobuild.Options{
			Pkgs:    []string{"./cmd/molt-agent", "./cmd/molt-supervisor"},
			LDFlags: "-s -w -X github.com/moltfleet/molt/internal/buildinfo.Version=" + testVersion,
			Flags:   []string{"-trimpath"},
			Dir:     filepath.Join("..", ".."),
			// As scripts/build.sh builds, so both share the build cache.
			Env: []string{"CGO_ENABLED=0"},
		})
		if err != nil {
			binDirs.err = fmt.Errorf("build binaries: %w", err)
		}
	})
	if binDirs.err != nil {
		t.Fatal(binDirs.err)
	}
	return binDirs.dir
}

func newKey(t *testing.T) (pack.Key, pack.SecretKey) {
	t.Helper()
	pub, sec, err := pack.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, sec
}

// withFakePlatform copies the real binaries' directory and adds a second
// platform of small fake files (their version cannot be checked here).
func withFakePlatform(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	host := runtime.GOOS + "_" + runtime.GOARCH
	if err := os.CopyFS(filepath.Join(dir, host), os.DirFS(filepath.Join(realBins(t), host))); err != nil {
		t.Fatal(err)
	}
	fake := "windows_arm64"
	if host == fake {
		fake = "linux_riscv64"
	}
	exe := ""
	if strings.HasPrefix(fake, "windows") {
		exe = ".exe"
	}
	if err := os.MkdirAll(filepath.Join(dir, fake), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"molt-agent", "molt-supervisor"} {
		if err := os.WriteFile(filepath.Join(dir, fake, n+exe), []byte("fake "+n+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Noise a build directory may hold: ignored.
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBuildVerifyRoundTrip(t *testing.T) {
	pub, sec := newKey(t)
	bins := withFakePlatform(t)
	out := filepath.Join(t.TempDir(), "molt-1.5.0.zip")
	released := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	err := pack.Build(pack.BuildOptions{
		Version: testVersion, BinDir: bins, Key: sec, Floor: "1.2.0", Released: released, Out: out,
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := pack.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, err := r.VerifyAll([]pack.Key{pub})
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != testVersion || m.Floor != "1.2.0" || !m.Released.Equal(released) || len(m.Artifacts) != 2 {
		t.Fatalf("manifest %+v", m)
	}
	files, err := m.PlatformArtifacts(buildinfo.Platform())
	if err != nil {
		t.Fatal(err)
	}
	// The packed agent is the real binary: extract it and run it.
	a := files[pack.RoleAgent]
	if a.Path != runtime.GOOS+"_"+runtime.GOARCH+"/molt-agent"+exeSuffix() {
		t.Fatalf("agent path %q", a.Path)
	}
	rc, err := r.OpenArtifact(a)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(t.TempDir(), "molt-agent"+exeSuffix())
	f, err := os.OpenFile(exe, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	f.Close()
	got, err := exec.Command(exe, "version").Output()
	if err != nil || !strings.Contains(string(got), testVersion) {
		t.Fatalf("extracted agent says %q, %v", got, err)
	}
	if id, err := pack.SignatureKeyID(r.SignatureBytes()); err != nil || id != pub.ID() {
		t.Fatalf("key id %q %v", id, err)
	}
	// No temporary file is left beside the pack.
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 1 {
		t.Fatalf("output directory holds %d files, want only the pack", len(entries))
	}
}

func exeSuffix() string {
	if runtime.GOOS == "windows" {
		return ".exe"
	}
	return ""
}

func TestBuildRefuses(t *testing.T) {
	_, sec := newKey(t)
	binDir := realBins(t)
	host := runtime.GOOS + "_" + runtime.GOARCH
	wrongVersion := t.TempDir()
	if err := os.CopyFS(filepath.Join(wrongVersion, host), os.DirFS(filepath.Join(binDir, host))); err != nil {
		t.Fatal(err)
	}
	halfBuilt := t.TempDir()
	if err := os.MkdirAll(filepath.Join(halfBuilt, "linux_arm64"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(halfBuilt, "linux_arm64", "molt-agent"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts pack.BuildOptions
		want string
	}{
		{"binaries of another version", pack.BuildOptions{Version: "1.6.0", BinDir: wrongVersion}, "is version 1.5.0, the pack is 1.6.0"},
		{"platform without supervisor", pack.BuildOptions{Version: testVersion, BinDir: halfBuilt}, "linux/arm64: no molt-supervisor"},
		{"empty directory", pack.BuildOptions{Version: testVersion, BinDir: t.TempDir()}, "no platform directories"},
		{"platform not built", pack.BuildOptions{Version: testVersion, BinDir: binDir, Platforms: []string{"plan9/386"}}, "no plan9_386 directory"},
		{"floor above version", pack.BuildOptions{Version: testVersion, BinDir: binDir, Floor: "2.0.0"}, "floor 2.0.0 is above"},
		{"bad version", pack.BuildOptions{Version: "../1", BinDir: binDir}, "not a valid version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.opts.Key = sec
			tc.opts.Out = filepath.Join(dir, "out.zip")
			err := pack.Build(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("a failed build left %s", entries[0].Name())
			}
		})
	}
}

func TestBadPacksRefused(t *testing.T) {
	pub, sec := newKey(t)
	seen := map[string]string{}
	cases := packtest.BadPacks(t, t.TempDir(), sec)
	cases = append(cases, packtest.BadWorkloadPacks(t, t.TempDir(), sec)...)
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			err := verifyLikeCLI(tc, []pack.Key{pub})
			if err == nil {
				t.Fatal("bad pack accepted")
			}
			if !errors.Is(err, tc.Want) || !strings.Contains(err.Error(), tc.Text) {
				t.Fatalf("error %q, want %v containing %q", err, tc.Want, tc.Text)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			if other, dup := seen[err.Error()]; dup {
				t.Fatalf("same message as case %q: %s", other, err)
			}
			seen[err.Error()] = tc.Name
		})
	}
}

func verifyLikeCLI(tc packtest.Case, keys []pack.Key) error {
	limit := pack.DefaultMaxPackSize
	if tc.MaxSize != 0 {
		limit = tc.MaxSize
	}
	r, err := pack.OpenLimit(tc.Path, limit)
	if err != nil {
		return err
	}
	defer r.Close()
	m, err := r.VerifyAll(keys)
	if err != nil {
		return err
	}
	if tc.Platform != "" {
		_, err = m.PlatformArtifacts(tc.Platform)
	}
	return err
}

func TestVerifyingReader(t *testing.T) {
	data := []byte("the artifact's bytes")
	m := packtest.Manifest("1.0.0", packtest.Files{"linux/amd64": {pack.RoleAgent: data}})
	a := m.Artifacts["linux/amd64"][pack.RoleAgent]
	for _, tc := range []struct {
		name  string
		input string
		want  error
	}{
		{"exact", string(data), nil},
		{"short", string(data[:5]), pack.ErrSizeMismatch},
		{"endless", strings.Repeat("x", 1<<20), pack.ErrSizeMismatch},
		{"one byte more", string(data) + "!", pack.ErrSizeMismatch},
		{"same size, other bytes", strings.ToUpper(string(data)), pack.ErrHashMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &countingReader{r: strings.NewReader(tc.input)}
			n, err := io.Copy(io.Discard, pack.NewVerifyingReader(src, a))
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			// An endless stream is cut off just past the manifest's size.
			if src.n > a.Size+1 || n > a.Size {
				t.Fatalf("read %d bytes from the source, passed %d; limit %d", src.n, n, a.Size)
			}
		})
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestResign(t *testing.T) {
	oldPub, oldSec := newKey(t)
	newPub, newSec := newKey(t)
	path := filepath.Join(t.TempDir(), "p.zip")
	packtest.Good(t, path, "2.0.0", packtest.SmallFiles(), oldSec)
	if err := pack.Resign(path, newSec, time.Now()); err != nil {
		t.Fatal(err)
	}
	r, err := pack.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.VerifyAll([]pack.Key{newPub}); err != nil {
		t.Fatalf("after re-signing: %v", err)
	}
	if _, err := r.Verify([]pack.Key{oldPub}); !errors.Is(err, pack.ErrUntrustedKey) {
		t.Fatalf("old key still verifies: %v", err)
	}
	// A pack whose files do not match its manifest is not re-signed.
	bad := packtest.BadPacks(t, t.TempDir(), oldSec)
	for _, c := range bad {
		if c.Name == "hash mismatch" {
			before, _ := os.ReadFile(c.Path)
			if err := pack.Resign(c.Path, newSec, time.Now()); !errors.Is(err, pack.ErrHashMismatch) {
				t.Fatalf("re-sign of a tampered pack: %v", err)
			}
			after, _ := os.ReadFile(c.Path)
			if string(before) != string(after) {
				t.Fatal("refused re-sign changed the pack")
			}
		}
	}
}

func TestPackLayout(t *testing.T) {
	_, sec := newKey(t)
	out := filepath.Join(t.TempDir(), "p.zip")
	bins := t.TempDir()
	host := runtime.GOOS + "_" + runtime.GOARCH
	if err := os.MkdirAll(filepath.Join(bins, host), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"molt-agent", "molt-supervisor"} {
		write(t, filepath.Join(bins, host, n+exeSuffix()), []byte(n))
	}
	if err := pack.Build(pack.BuildOptions{Version: testVersion, BinDir: bins, Key: sec, Out: out, SkipVersionCheck: true}); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	want := []string{host + "/molt-agent" + exeSuffix(), host + "/molt-supervisor" + exeSuffix(), pack.ManifestName, pack.SignatureName}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("entries %v, want %v", names, want)
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o644 {
		t.Fatalf("pack mode %v", st.Mode())
	}
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestSpoolAndExtract(t *testing.T) {
	pub, sec := newKey(t)
	src := filepath.Join(t.TempDir(), "p.zip")
	files := packtest.SmallFiles()
	packtest.Good(t, src, "1.5.0", files, sec)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	spool := t.TempDir()
	if _, err := pack.Spool(strings.NewReader(string(data)), spool, int64(len(data)-1)); !errors.Is(err, pack.ErrTooLarge) {
		t.Fatalf("oversized upload: %v", err)
	}
	if left, _ := os.ReadDir(spool); len(left) != 0 {
		t.Fatalf("refused upload left %s", left[0].Name())
	}
	r, err := pack.Spool(strings.NewReader(string(data)), spool, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := r.Extract(out); err == nil {
		t.Fatal("extracted an unverified pack")
	}
	if _, err := r.Verify([]pack.Key{pub}); err != nil {
		t.Fatal(err)
	}
	if err := r.Extract(out); err != nil {
		t.Fatal(err)
	}
	for plat, roles := range files {
		for role, want := range roles {
			got, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(packtest.ArtifactPath(plat, role))))
			if err != nil || string(got) != string(want) {
				t.Fatalf("%s %s: %q, %v", plat, role, got, err)
			}
		}
	}
	if got, _ := os.ReadFile(filepath.Join(out, pack.ManifestName)); string(got) != string(r.ManifestBytes()) {
		t.Fatal("manifest not extracted as signed")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(spool); len(left) != 0 {
		t.Fatalf("closed spool left %s", left[0].Name())
	}

	// A tampered file is refused while it is written, and never lands.
	for _, c := range packtest.BadPacks(t, t.TempDir(), sec) {
		if c.Name != "hash mismatch" {
			continue
		}
		r, err := pack.Open(c.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if _, err := r.Verify([]pack.Key{pub}); err != nil {
			t.Fatal(err)
		}
		out := t.TempDir()
		if err := r.Extract(out); !errors.Is(err, pack.ErrHashMismatch) {
			t.Fatalf("extract of a tampered pack: %v", err)
		}
		if _, err := os.Stat(filepath.Join(out, "linux_amd64", "molt-agent")); !os.IsNotExist(err) {
			t.Fatalf("tampered artifact landed: %v", err)
		}
		if left, _ := os.ReadDir(filepath.Join(out, "linux_amd64")); len(left) != 0 {
			t.Fatalf("refused extraction left %s", left[0].Name())
		}
		if _, err := os.Stat(filepath.Join(out, pack.ManifestName)); !os.IsNotExist(err) {
			t.Fatalf("manifest written for a refused pack: %v", err)
		}
	}
}

// TestWorkloadPackExtract: a pack with workloads verifies in full and
// extracts every workload file, the empty one too, at its pack path.
func TestWorkloadPackExtract(t *testing.T) {
	pub, sec := newKey(t)
	src := filepath.Join(t.TempDir(), "p.zip")
	ws := packtest.SampleWorkloads()
	packtest.GoodWithWorkloads(t, src, "1.5.0", packtest.SmallFiles(), ws, sec)
	r, err := pack.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, err := r.VerifyAll([]pack.Key{pub})
	if err != nil {
		t.Fatal(err)
	}
	got := m.PlatformWorkloads("linux/amd64")
	if len(got) != 1 || len(got[0].Files) != 3 || got[0].Files[0].Path != "bin/run.sh" || got[0].Files[0].Mode != "0755" {
		t.Fatalf("workloads %+v", got)
	}
	out := t.TempDir()
	if err := r.Extract(out); err != nil {
		t.Fatal(err)
	}
	for p, want := range ws["linux/amd64"][0].Files {
		b, err := os.ReadFile(filepath.Join(out, "linux_amd64", "workloads", "exporter", filepath.FromSlash(p)))
		if err != nil || string(b) != string(want) {
			t.Fatalf("%s: %q, %v", p, b, err)
		}
	}
	r.Close()
	// A key rotation keeps the workloads: every file is checked and copied.
	pub2, sec2 := newKey(t)
	if err := pack.Resign(src, sec2, time.Now()); err != nil {
		t.Fatal(err)
	}
	r2, err := pack.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if m2, err := r2.VerifyAll([]pack.Key{pub2}); err != nil || len(m2.PlatformWorkloads("linux/amd64")) != 1 {
		t.Fatalf("re-signed pack: %v", err)
	}
}
