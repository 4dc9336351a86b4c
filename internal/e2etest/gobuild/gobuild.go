// Package gobuild builds the module's programs for tests through a cache
// that every test process of the machine shares, so that a `go test
// ./...` links each (toolchain, platform, tags, flags, packages, source
// tree) once instead of once per test package.
//
// The cache lives in $MOLT_TEST_CACHE, else os.UserCacheDir()/molt-test/bin
// (not under TMPDIR: CI checks that TMPDIR is empty after the tests). It
// holds one directory per generation (digest of the module's source tree),
// each holding one directory per build. Removing the directory at any time
// is safe.
package gobuild

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Options describe one `go build`.
type Options struct {
	// Pkgs are the packages, as go build takes them (import paths, or
	// paths relative to Dir).
	Pkgs []string
	// LDFlags is the -ldflags string, exactly as given to go build.
	LDFlags string
	// Tags is the -tags list.
	Tags string
	// Flags are other build flags (e.g. "-trimpath"); not -o, -ldflags or -tags.
	Flags []string
	// Env is added to the environment of the build (GOOS=, GOARCH=,
	// CGO_ENABLED=, ...).
	Env []string
	// Dir is the directory go build runs in; "" is the working
	// directory. The module root (whose tree is hashed) is found upwards
	// from it.
	Dir string
}

// Result says how Build got its binaries.
type Result struct {
	// Built is true when this call ran go build (false: the cache had them).
	Built bool
	// Took is how long the build took (zero when not built).
	Took time.Duration
	// Key is the cache key (hex).
	Key string
}

// EnvCache names the cache directory when set.
const EnvCache = "MOLT_TEST_CACHE"

// CacheDir is the cache's root: $MOLT_TEST_CACHE, else
// os.UserCacheDir()/molt-test/bin.
func CacheDir() (string, error) {
	if d := os.Getenv(EnvCache); d != "" {
		return filepath.Abs(d)
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("gobuild: no cache directory (set %s): %w", EnvCache, err)
	}
	return filepath.Join(d, "molt-test", "bin"), nil
}

// beforeBuild, when set (by tests), runs with the key's lock held just
// before go build.
var beforeBuild func()

// Build writes the executables of o.Pkgs to out, from the cache or built
// there first. out is a file when one package is built and out is not an
// existing directory nor ends in a separator; else a directory, which
// gets every executable under go build's own names. Files are copies: a
// test may damage them without harming the cache.
func Build(out string, o Options) (Result, error) {
	if len(o.Pkgs) == 0 {
		return Result{}, errors.New("gobuild: no packages")
	}
	dir := o.Dir
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return Result{}, err
		}
		dir = wd
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return Result{}, err
	}
	root, err := moduleRoot(dir)
	if err != nil {
		return Result{}, err
	}
	tree, err := treeHash(root)
	if err != nil {
		return Result{}, fmt.Errorf("gobuild: hash %s: %w", root, err)
	}
	goenv, err := goEnv(o.Env)
	if err != nil {
		return Result{}, err
	}
	rel, err := filepath.Rel(root, dir)
	if err != nil {
		return Result{}, err
	}
	key := cacheKey(tree, goenv, rel, o)
	cacheDir, err := CacheDir()
	if err != nil {
		return Result{}, err
	}
	gen, err := generation(cacheDir, tree)
	if err != nil {
		return Result{}, fmt.Errorf("gobuild: cache %s: %w", cacheDir, err)
	}
	res := Result{Key: key}
	err = withLock(filepath.Join(gen, key+".lock"), func() error {
		entry := filepath.Join(gen, key)
		if copyEntry(entry, out, len(o.Pkgs)) == nil {
			return nil
		}
		// Missing or damaged: whatever is there goes first.
		discard(entry)
		if beforeBuild != nil {
			beforeBuild()
		}
		start := time.Now()
		if err := buildEntry(gen, entry, dir, o); err != nil {
			return err
		}
		res.Built, res.Took = true, time.Since(start)
		return copyEntry(entry, out, len(o.Pkgs))
	})
	return res, err
}

// cacheKey digests everything a build's output depends on.
func cacheKey(tree, goenv, rel string, o Options) string {
	h := sha256.New()
	field := func(s string) { fmt.Fprintf(h, "%d:%s\n", len(s), s) }
	field("gobuild 1")
	field(tree)
	field(goenv)
	field(filepath.ToSlash(rel))
	field(o.Tags)
	field(o.LDFlags)
	field(strings.Join(o.Flags, "\x00"))
	field(strings.Join(o.Env, "\x00"))
	field(strings.Join(o.Pkgs, "\x00"))
	return hex.EncodeToString(h.Sum(nil))[:32]
}

var goEnvs sync.Map // env string -> string

// goEnv is what of the go command's environment changes its output:
// toolchain version, platform, cgo, GOFLAGS, GOEXPERIMENT.
func goEnv(extra []string) (string, error) {
	k := strings.Join(extra, "\x00")
	if v, ok := goEnvs.Load(k); ok {
		return v.(string), nil
	}
	cmd := exec.Command("go", "env", "-json", "GOVERSION", "GOOS", "GOARCH", "CGO_ENABLED", "GOFLAGS", "GOEXPERIMENT", "GOAMD64", "GOARM64")
	cmd.Env = append(os.Environ(), extra...)
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("gobuild: go env: %w", err)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return "", fmt.Errorf("gobuild: go env: %w", err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var s strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&s, "%s=%s\n", k, m[k])
	}
	goEnvs.Store(k, s.String())
	return s.String(), nil
}

// buildEntry runs go build into a temporary directory beside entry, writes
// its manifest and renames it to entry: an entry exists only complete.
func buildEntry(gen, entry, dir string, o Options) error {
	tmp, err := os.MkdirTemp(gen, ".tmp-"+filepath.Base(entry)+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "bin")
	args := []string{"build", "-o", bin + string(filepath.Separator)}
	if o.Tags != "" {
		args = append(args, "-tags", o.Tags)
	}
	if o.LDFlags != "" {
		args = append(args, "-ldflags", o.LDFlags)
	}
	args = append(args, o.Flags...)
	args = append(args, o.Pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), o.Env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	m, err := manifestOf(bin)
	if err != nil {
		return err
	}
	if len(m) == 0 {
		return fmt.Errorf("go %s wrote no executable", strings.Join(args, " "))
	}
	if err := writeManifest(filepath.Join(tmp, "manifest.json"), m); err != nil {
		return err
	}
	if err := os.Rename(tmp, entry); err != nil {
		// Without locks (not unix) another process may have published
		// the same build first: its entry is as good.
		if _, serr := os.Stat(filepath.Join(entry, "manifest.json")); serr == nil {
			return nil
		}
		return err
	}
	return nil
}

// manifest maps each executable of an entry to its sha256.
type manifest map[string]string

func manifestOf(bin string) (manifest, error) {
	des, err := os.ReadDir(bin)
	if err != nil {
		return nil, err
	}
	m := manifest{}
	for _, de := range des {
		f, err := os.Open(filepath.Join(bin, de.Name()))
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		m[de.Name()] = hex.EncodeToString(h.Sum(nil))
	}
	return m, nil
}

func writeManifest(path string, m manifest) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Must is Build for a test: it fails tb on error and logs a build to
// stderr ("gobuild: built ... in ...").
func Must(tb testing.TB, out string, o Options) {
	tb.Helper()
	r, err := Build(out, o)
	if err != nil {
		tb.Fatal(err)
	}
	if r.Built {
		fmt.Fprintf(os.Stderr, "gobuild: built %s in %s\n", strings.Join(o.Pkgs, " "), r.Took.Round(time.Millisecond))
	}
}

// errBadEntry is an entry that is missing, incomplete or damaged.
var errBadEntry = errors.New("gobuild: no valid cache entry")

// copyEntry copies entry's executables to out, checking each against the
// manifest while copying; a mismatch removes the copies and returns
// errBadEntry.
func copyEntry(entry, out string, npkgs int) error {
	b, err := os.ReadFile(filepath.Join(entry, "manifest.json"))
	if err != nil {
		return errBadEntry
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil || len(m) == 0 {
		return errBadEntry
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	toDir := npkgs > 1 || strings.HasSuffix(out, "/") || strings.HasSuffix(out, string(filepath.Separator))
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		toDir = true
	}
	if !toDir && len(names) != 1 {
		return fmt.Errorf("gobuild: %d executables for one output file %s", len(names), out)
	}
	for _, n := range names {
		to := out
		if toDir {
			to = filepath.Join(out, n)
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		sum, err := copyExe(filepath.Join(entry, "bin", n), to)
		if errors.Is(err, os.ErrNotExist) {
			return errBadEntry
		}
		if err != nil {
			return err
		}
		if sum != m[n] {
			os.Remove(to)
			return errBadEntry
		}
	}
	return nil
}

// copyExe copies an executable to a temporary name beside to and renames
// it, returning its sha256. The write descriptor is open only while
// syscall.ForkLock is held: a process that a parallel test forks in that
// moment would inherit it and running the copy would fail with "text
// file busy" (ETXTBSY).
func copyExe(from, to string) (string, error) {
	src, err := os.Open(from)
	if err != nil {
		return "", err
	}
	defer src.Close()
	tmp := filepath.Join(filepath.Dir(to), "."+filepath.Base(to)+".tmp")
	h := sha256.New()
	err = func() error {
		syscall.ForkLock.RLock()
		defer syscall.ForkLock.RUnlock()
		dst, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.MultiWriter(dst, h), src)
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
		return err
	}()
	if err == nil {
		err = os.Rename(tmp, to)
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// discard moves a (damaged) entry out of the way, then removes it.
func discard(entry string) {
	if _, err := os.Lstat(entry); err != nil {
		return
	}
	trash := fmt.Sprintf("%s.trash-%d-%d", entry, os.Getpid(), time.Now().UnixNano())
	if os.Rename(entry, trash) == nil {
		os.RemoveAll(trash)
	}
}

// moduleRoot is the directory of the nearest go.mod at or above dir.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; {
		if fi, err := os.Stat(filepath.Join(d, "go.mod")); err == nil && fi.Mode().IsRegular() {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("gobuild: no go.mod above %s", dir)
		}
		d = parent
	}
}
