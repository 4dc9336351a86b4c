package release

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/internal/testtool"
)

func TestMain(m *testing.M) { os.Exit(e2etest.Main(m)) }

// testMTime is the file time inside test artifacts.
var testMTime = time.Unix(1700000000, 0).UTC()

// hostPlatform is this machine's platform: the one tests build for.
func hostPlatform() Platform { return Platform{runtime.GOOS, runtime.GOARCH} }

// needPackagePlatform skips a test that needs this machine to be one the
// deb and rpm packages are made for (their binaries must run here).
func needPackagePlatform(t *testing.T) {
	t.Helper()
	if p := hostPlatform(); p.OS != "linux" || !linuxArch(p.Arch) {
		t.Skipf("packages are made for linux/amd64 and linux/arm64, not %s", p)
	}
}

// realOptions are Options for version's real binaries of this machine
// (built once per test process), writing into a new temporary directory.
func realOptions(t *testing.T, version string) Options {
	t.Helper()
	bin := e2etest.Binaries(t, version)
	return Options{
		Version: version, BinDir: filepath.Dir(bin), Out: t.TempDir(),
		Platforms: []string{hostPlatform().String()}, Root: e2etest.ModuleRoot(t),
		MTime: testMTime, Now: time.Now(),
	}
}

// fakeOptions are Options over small stand-in binaries for plats, for
// what does not run them (archives, the MSI, sums).
func fakeOptions(t *testing.T, version string, plats ...string) Options {
	t.Helper()
	bin := t.TempDir()
	for _, s := range plats {
		p, err := ParsePlatform(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, prog := range Programs {
			path := p.Binary(bin, prog)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte("stand-in "+prog+" "+version+" for "+s+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return Options{
		Version: version, BinDir: bin, Out: t.TempDir(), Platforms: plats,
		Root: e2etest.ModuleRoot(t), MTime: testMTime, Now: time.Now(),
	}
}

// debs caches the packages this test process made: version+name+format
// -> path.
var debs struct {
	mu    sync.Mutex
	paths map[string]string
}

// linuxPackage returns spec's package of version in format for this
// machine, made once per test process from the real binaries.
func linuxPackage(t *testing.T, version string, spec PackageSpec, format string) string {
	t.Helper()
	needPackagePlatform(t)
	key := version + " " + spec.Name + " " + format
	debs.mu.Lock()
	defer debs.mu.Unlock()
	if p, ok := debs.paths[key]; ok {
		return p
	}
	o := realOptions(t, version)
	// Stored, not compressed: deflating 20 MB of binaries takes a minute
	// under the race detector, and what these packages are for (files,
	// modes, scripts) does not depend on it. TestMakeReproducibleAndSigned
	// makes packages with the release's compression.
	o.Compression = "gzip:0"
	// The cache outlives this test: write where e2etest keeps its builds.
	o.Out = filepath.Join(filepath.Dir(o.BinDir), "pkg-"+version)
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		t.Fatal(err)
	}
	a, err := LinuxPackage(o, hostPlatform(), spec, format)
	if err != nil {
		t.Fatal(err)
	}
	if debs.paths == nil {
		debs.paths = map[string]string{}
	}
	debs.paths[key] = a.Path
	return a.Path
}

func dpkgDeb(t *testing.T) string {
	t.Helper()
	return testtool.Need(t, "dpkg-deb", "apt-get install dpkg (Debian's own)")
}

// run runs a program and returns its output, failing t on an error.
func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
