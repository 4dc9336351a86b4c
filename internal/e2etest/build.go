package e2etest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/atomicfile"
	"github.com/moltfleet/molt/internal/e2etest/gobuild"
	"github.com/moltfleet/molt/updater/pack"
)

const modulePath = "github.com/moltfleet/molt"

// BuildTags are the build tags of every binary the harness builds (e.g.
// "faults" for the crash points). Set it in TestMain, before any build.
var BuildTags string

// cache is what this test process built: one entry per version (and per
// test-agent mode), made once and shared by every test.
var cache struct {
	mu      sync.Mutex
	dir     string
	err     error
	entries map[string]*entry
	key     *keyPair
}

type entry struct {
	once sync.Once
	path string
	err  error
}

type keyPair struct {
	pub, sec string
	sk       pack.SecretKey
}

// Main runs the tests of a package that uses the harness and removes what
// the harness built afterwards (kept when MOLT_E2E_KEEP is set and a test
// failed). Call it from TestMain: os.Exit(e2etest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	removeBuilds(code)
	return code
}

// removeBuilds removes the harness's build directory after a run that
// ended with code.
func removeBuilds(code int) {
	cache.mu.Lock()
	dir := cache.dir
	cache.mu.Unlock()
	if dir != "" {
		if code != 0 && os.Getenv("MOLT_E2E_KEEP") != "" {
			fmt.Fprintf(os.Stderr, "e2etest: kept %s (MOLT_E2E_KEEP)\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}
}

// buildDir is the process-wide directory for binaries, keys and packs.
func buildDir() (string, error) {
	cache.mu.Lock()
	defer cache.mu.Unlock()
	if cache.dir == "" && cache.err == nil {
		cache.dir, cache.err = os.MkdirTemp("", "molt-e2etest-")
		cache.entries = map[string]*entry{}
	}
	return cache.dir, cache.err
}

// once runs make for key the first time anyone asks and returns its
// result to everyone.
func once(key string, make func(dir string) (string, error)) (string, error) {
	dir, err := buildDir()
	if err != nil {
		return "", err
	}
	cache.mu.Lock()
	e := cache.entries[key]
	if e == nil {
		e = &entry{}
		cache.entries[key] = e
	}
	cache.mu.Unlock()
	e.once.Do(func() { e.path, e.err = make(dir) })
	return e.path, e.err
}

// ModuleRoot is the directory of molt's go.mod, found upwards from the
// working directory (a test runs in its package's directory).
func ModuleRoot(tb testing.TB) string {
	tb.Helper()
	root, err := moduleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("e2etest: no go.mod of " + modulePath + " above the working directory")
		}
		dir = parent
	}
}

// PlatformDir is the <goos>_<goarch> directory name of this machine, as
// scripts/build.sh and packs name it.
func PlatformDir() string { return runtime.GOOS + "_" + runtime.GOARCH }

func exe(name string) string {
	if runtime.GOOS == "windows" {
		return name + ".exe"
	}
	return name
}

// goBuild builds pkgs into out with version stamped in (and more -X
// flags), without -race whatever the test process was built with,
// through the build cache that every test process shares (see gobuild):
// a build another package's tests made from the same source is copied.
func goBuild(out, version string, extraX []string, pkgs ...string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	ld := "-X " + modulePath + "/internal/buildinfo.Version=" + version
	for _, x := range extraX {
		ld += " -X " + x
	}
	r, err := gobuild.Build(out, gobuild.Options{
		Pkgs: pkgs, LDFlags: ld, Tags: BuildTags, Dir: root, Env: []string{"CGO_ENABLED=0"},
	})
	if err != nil {
		return err
	}
	if r.Built {
		fmt.Fprintf(os.Stderr, "e2etest: built %s at %s in %s\n", strings.Join(pkgs, " "), version, r.Took.Round(time.Millisecond))
	}
	return nil
}

// Binaries returns a directory holding molt, molt-agent and
// molt-supervisor built at version, built once per test process. Its
// parent is a bin dir in the layout of scripts/build.sh
// (<parent>/<goos>_<goarch>/...), which pack.Build takes.
func Binaries(tb testing.TB, version string) string {
	tb.Helper()
	dir, err := once("bin "+version, func(root string) (string, error) {
		out := filepath.Join(root, "bin-"+version, PlatformDir())
		if err := os.MkdirAll(out, 0o755); err != nil {
			return "", err
		}
		return out, goBuild(out, version, nil, "./cmd/molt", "./cmd/molt-agent", "./cmd/molt-supervisor")
	})
	if err != nil {
		tb.Fatal(err)
	}
	return dir
}

// TestAgent returns the path of testdata/testagent built in mode (see its
// doc: healthy, crash-at-start, never-ready, crash-after=D, ...) and
// stamped as version, built once per test process.
func TestAgent(tb testing.TB, version, mode string) string {
	tb.Helper()
	p, err := once("testagent "+version+" "+mode, func(root string) (string, error) {
		out := filepath.Join(root, "testagent-"+version+"-"+sanitize(mode), exe("molt-agent"))
		return out, goBuild(out, version, []string{"main.mode=" + mode}, "./testdata/testagent")
	})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, s)
}

// Key returns the signing key pair of this test process: the public key
// file (for --trusted-key and agent.yaml's trusted_keys) and the secret
// key file (unencrypted), made once with pack.GenerateKey.
func Key(tb testing.TB) (pubFile, secFile string) {
	tb.Helper()
	k, err := key()
	if err != nil {
		tb.Fatal(err)
	}
	return k.pub, k.sec
}

func key() (*keyPair, error) {
	dir, err := buildDir()
	if err != nil {
		return nil, err
	}
	cache.mu.Lock()
	defer cache.mu.Unlock()
	if cache.key != nil {
		return cache.key, nil
	}
	pub, sk, err := pack.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	secText, err := pack.MarshalSecretKey(sk, "", pack.CostInteractive)
	if err != nil {
		return nil, err
	}
	pubText, err := pub.MarshalText()
	if err != nil {
		return nil, err
	}
	k := &keyPair{pub: filepath.Join(dir, "molt.pub"), sec: filepath.Join(dir, "molt.key"), sk: sk}
	if err := atomicfile.WriteFile(k.sec, secText, 0o600); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(k.pub, pubText, 0o644); err != nil {
		return nil, err
	}
	cache.key = k
	return k, nil
}

// PackOptions describe a pack for this machine's platform.
type PackOptions struct {
	// Version of the pack.
	Version string
	// AgentMode, when set, puts testdata/testagent built in that mode in
	// the pack as molt-agent (a broken release); the supervisor is the
	// real one at Version.
	AgentMode string
	// Floor is the pack's floor (optional).
	Floor string
	// Workloads are carried in the pack besides molt-agent (laid out and
	// specified as for molt pack build: workloads/<name>/ trees and
	// pack.yaml).
	Workloads []Workload
	// DeltaFrom are packs of earlier versions to add patches from
	// (molt pack build --delta-from).
	DeltaFrom []string
}

// Pack returns a signed pack (zip, as `molt pack build` writes it) of
// o.Version for this machine's platform, signed with Key, built once per
// test process and options.
func Pack(tb testing.TB, o PackOptions) string {
	tb.Helper()
	bin := Binaries(tb, o.Version)
	agentBin := filepath.Join(bin, exe("molt-agent"))
	if o.AgentMode != "" {
		agentBin = TestAgent(tb, o.Version, o.AgentMode)
	}
	k, err := key()
	if err != nil {
		tb.Fatal(err)
	}
	name := "pack-" + o.Version + "-" + sanitize(o.AgentMode) + "-" + o.Floor + "-" + workloadsKey(o.Workloads)
	if len(o.DeltaFrom) > 0 {
		sum := sha256.Sum256([]byte(strings.Join(o.DeltaFrom, "\x00")))
		name += fmt.Sprintf("-delta-%x", sum[:6])
	}
	p, err := once(name, func(root string) (string, error) {
		src := filepath.Join(root, name, PlatformDir())
		if err := os.MkdirAll(src, 0o755); err != nil {
			return "", err
		}
		for dst, from := range map[string]string{
			exe("molt-agent"):      agentBin,
			exe("molt-supervisor"): filepath.Join(bin, exe("molt-supervisor")),
		} {
			if err := copyFile(from, filepath.Join(src, dst)); err != nil {
				return "", err
			}
		}
		if len(o.Workloads) > 0 {
			if err := layWorkloads(src, filepath.Join(root, name, "pack.yaml"), o.Workloads); err != nil {
				return "", err
			}
		}
		out := filepath.Join(root, name+".zip")
		err := pack.Build(pack.BuildOptions{
			Version: o.Version, BinDir: filepath.Dir(src), Key: k.sk, Floor: o.Floor, Out: out,
			SkipVersionCheck: o.AgentMode != "", DeltaFrom: o.DeltaFrom,
		})
		return out, err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// copyFile links (else copies) a binary. A link opens nothing for
// writing: a copy's write descriptor, inherited for a moment by a process
// that a parallel test forks, makes running the copy fail with "text file
// busy" (ETXTBSY).
func copyFile(from, to string) error {
	if err := os.Link(from, to); err == nil {
		return nil
	}
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}
